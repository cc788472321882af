"""``tandem``: the command-line entry point.

Each subcommand lives in ``console/commands/<name>.py`` with a ``register(subparsers)``
function; heavy imports (Textual, the hub) happen inside the command, so ``tandem --help``
and ``tandem triage`` start fast. Errors the user can fix are one line on stderr and a
non-zero exit code, never a traceback.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Sequence

from console import __version__
from console.errors import UsageError

# Order is the order in `tandem --help`.
COMMANDS = (
    "demo",
    "console",
    "login",
    "serve",
    "agent",
    "triage",
    "kb",
    "conv",
    "db",
    "report",
    "whatif",
    "bench",
)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="tandem",
        description="Tandem: a terminal console for hybrid customer support. "
        "The bot does the volume, people do the empathy.",
        epilog="Database: --db PATH, else $TANDEM_DB, else ./tandem.db (created and migrated on first use).",
    )
    parser.add_argument("--version", action="version", version=f"tandem {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", title="commands")
    for name in COMMANDS:
        module = importlib.import_module(f"console.commands.{name}")
        module.register(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    from store.errors import StoreError

    args_list = list(sys.argv[1:] if argv is None else argv)
    parser = build_parser()
    args = parser.parse_args(args_list)
    if not getattr(args, "func", None):
        parser.print_help()
        return 0
    try:
        return int(args.func(args) or 0)
    except (StoreError, UsageError) as exc:
        print(f"tandem: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:
        # `tandem triage big.jsonl | head`: the reader left; that is not an error.
        sys.stderr.close()
        return 0


if __name__ == "__main__":
    sys.exit(main())
