"""``tandem db init|status|check|copy``."""

from __future__ import annotations

import argparse
import json

from console.commands.options import add_db_option


def register(sub: argparse._SubParsersAction) -> None:
    parser = sub.add_parser(
        "db",
        help="create, inspect and check the database",
        description="Create, inspect and check the Tandem database. Every command creates a missing "
        "database and migrates an old one, so `db init` is only for scripts.",
        epilog="Example: tandem db status --db /var/lib/tandem/tandem.db; tandem db copy tandem.db"
        " postgresql://tandem@db.example/tandem",
    )
    dsub = parser.add_subparsers(dest="db_command", metavar="ACTION", required=True)
    p = dsub.add_parser("init", help="create the database (or migrate it) and print its version")
    add_db_option(p)
    p.set_defaults(func=_init)
    p = dsub.add_parser(
        "status", help="conversations per state, table sizes, webhook deliveries and dead letters"
    )
    add_db_option(p)
    p.add_argument("--json", action="store_true", help="print JSON")
    p.set_defaults(func=_status)
    p = dsub.add_parser(
        "check", help="integrity check and lifecycle invariants (exit 1 on problems)"
    )
    add_db_option(p)
    p.set_defaults(func=_check)
    p = dsub.add_parser(
        "copy",
        help="copy a whole store into an empty database (SQLite -> PostgreSQL), then check it",
        description="Copy every table of SRC into DST, ids included, in one transaction on DST "
        "(a failed copy leaves DST as it was). DST is created or migrated first and must hold no "
        "conversations. Stop every writer of SRC (tandem serve, consoles) before copying.",
    )
    p.add_argument("src", metavar="SRC", help="the store to read (a SQLite file or a URL)")
    p.add_argument(
        "dst", metavar="DST", help="the empty store to fill (postgresql://... or a file)"
    )
    p.set_defaults(func=_copy)


def _init(args: argparse.Namespace) -> int:
    from store import migrations, open_store

    store = open_store(args.db)
    print(
        f"{store.path}: schema {migrations.current_version()} ({len(migrations.applied(store))} migrations)"
    )
    return 0


def _status(args: argparse.Namespace) -> int:
    import time

    from console.hub.shards import SHARDS
    from store import leases, open_reader
    from store import webhooks as outbox
    from store.queries import status_counts, table_counts

    store = open_reader(args.db)
    states, tables, hooks = status_counts(store), table_counts(store), outbox.counts(store)
    held = leases.held(store, at=time.time())
    hub = {"workers": held, "unheld": SHARDS - sum(held.values())}
    if args.json:
        print(json.dumps({"states": states, "tables": tables, "webhooks": hooks, "hub": hub}))
        return 0
    print(f"{store.path}")
    print("conversations  " + "  ".join(f"{k} {v}" for k, v in states.items()))
    print("tables         " + "  ".join(f"{k} {v}" for k, v in tables.items()))
    # Dead letters are deliveries that ran out of retries: an integration missed them.
    print(
        f"webhooks       pending {hooks['pending']}  delivered {hooks['delivered']}"
        f"  dead letters {hooks['dead']}"
    )
    # Shards nobody holds are handled by no hub: none runs, or a dead one's leases expired.
    print(
        "hub workers    "
        + "".join(f"{name} {n} shards  " for name, n in held.items())
        + f"unheld {hub['unheld']} of {SHARDS}"
    )
    return 0


def _check(args: argparse.Namespace) -> int:
    from store import open_reader
    from store.check import check

    store = open_reader(args.db)
    problems = check(store)
    for line in problems:
        print(line)
    if problems:
        print(f"{store.path}: {len(problems)} problem(s)")
        return 1
    print(f"{store.path}: ok")
    return 0


def _copy(args: argparse.Namespace) -> int:
    import time

    from store import InvalidInput, Store, open_reader
    from store.check import check
    from store.copy import copy

    if str(args.src) == str(args.dst):
        raise InvalidInput("SRC and DST are the same database")
    src = open_reader(args.src)
    dst = Store(args.dst)
    started = time.perf_counter()
    counts = copy(src, dst)  # a StoreError is the CLI's one line on stderr
    took = time.perf_counter() - started
    total = sum(counts.values())
    print(f"{src.path} -> {dst.path}: {total} rows in {took:.1f} s")
    print("  " + "  ".join(f"{t} {n}" for t, n in counts.items() if n))
    problems = check(dst)
    for line in problems:
        print(line)
    if problems:
        print(f"{dst.path}: {len(problems)} problem(s) after the copy")
        return 1
    print(f"{dst.path}: ok")
    return 0
