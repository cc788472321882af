"""Scratch databases for benchmarks: a file in a temporary directory, or a new database on a
PostgreSQL server, created for one run and dropped after it.

A benchmark never writes into a database it was pointed at: on a server it creates
``tandem_scratch_<pid>_<n>`` (the user needs the CREATEDB right), migrates it, and drops it
when done, even if the run failed.
"""

from __future__ import annotations

import itertools
import os
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

from store.db import is_url

_numbers = itertools.count(1)


def _with_database(url: str, name: str) -> str:
    parts = urlsplit(url)
    return urlunsplit(parts._replace(path=f"/{name}"))


@contextmanager
def scratch_database(
    server: str | None, *, directory: str | None = None, name: str = "scratch.db"
) -> Iterator[Path | str]:
    """A fresh, empty database for the ``with`` block: SQLite ``name`` in a temporary
    directory (under ``directory``), or, with ``server`` a PostgreSQL URL, a new database there.

    :param server: ``None`` for SQLite; a ``postgresql://`` URL of any database on the server
    """
    if server is None:
        with tempfile.TemporaryDirectory(dir=directory) as tmp:
            yield Path(tmp) / name
        return
    if not is_url(server):
        raise ValueError(f"not a PostgreSQL URL: {server!r}")
    import psycopg

    from store.pg import close_pool

    dbname = f"tandem_scratch_{os.getpid()}_{next(_numbers)}"
    with psycopg.connect(server, autocommit=True) as admin:
        admin.execute(f'CREATE DATABASE "{dbname}"')
    url = _with_database(server, dbname)
    try:
        yield url
    finally:
        close_pool(url)
        with psycopg.connect(server, autocommit=True) as admin:
            admin.execute(f'DROP DATABASE IF EXISTS "{dbname}" WITH (FORCE)')
