"""Options several subcommands share."""

from __future__ import annotations

import argparse


def add_db_option(parser: argparse.ArgumentParser) -> None:
    """The ``--db`` option every store-using command shares."""
    parser.add_argument(
        "--db",
        metavar="PATH|URL",
        help="SQLite file or postgresql://user@host/dbname (default: $TANDEM_DB or ./tandem.db)",
    )
