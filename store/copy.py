"""``tandem db copy SRC DST``: move a store to another database (SQLite -> PostgreSQL).

Every table of the current schema is copied row for row with its ids (the feed's ids are
the followers' cursors, and messages, drafts and ratings point at each other by id), in the
order of the foreign keys, in one write transaction on the destination: a copy that fails
leaves the destination as it was. The destination must hold no conversations yet. The
source is only read; stop every writer of it (``tandem serve``, consoles) first, or the copy
is of the moment it started.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from itertools import islice
from typing import Any

from store.db import Store
from store.errors import InvalidInput

BATCH = 5000

# Tables of the schema that are not the store's data: the migrations' own records and
# SQLite's full-text index (PostgreSQL's is an index of kb_articles, kept by the server).
_SKIP_PREFIXES = ("sqlite_", "_sqlite_migrations", "kb_fts", "tandem_migrations")


def _tables(store: Store) -> list[str]:
    """The data tables, parents before children (by their foreign keys)."""
    if store.backend == "sqlite":
        names = [
            str(r[0])
            for r in store.query(
                "SELECT name FROM sqlite_master WHERE type = 'table' ORDER BY name"
            )
        ]
        names = [n for n in names if not n.startswith(_SKIP_PREFIXES)]
        parents = {
            n: {str(r[2]) for r in store.query(f"PRAGMA foreign_key_list({n})")} for n in names
        }
    else:
        names = [
            str(r[0])
            for r in store.query(
                "SELECT table_name FROM information_schema.tables"
                " WHERE table_schema = current_schema() AND table_type = 'BASE TABLE'"
                " ORDER BY table_name"
            )
        ]
        names = [n for n in names if not n.startswith(_SKIP_PREFIXES)]
        parents = {n: set() for n in names}
        for child, parent in store.query(
            "SELECT tc.table_name, ccu.table_name FROM information_schema.table_constraints tc"
            " JOIN information_schema.constraint_column_usage ccu"
            " ON ccu.constraint_name = tc.constraint_name"
            " WHERE tc.constraint_type = 'FOREIGN KEY' AND tc.table_schema = current_schema()"
        ):
            if str(child) in parents:
                parents[str(child)].add(str(parent))
    ordered: list[str] = []
    while len(ordered) < len(names):
        ready = [
            n for n in names if n not in ordered and all(p == n or p in ordered for p in parents[n])
        ]
        if not ready:  # a cycle between tables: none in this schema; keep going in name order
            ready = [n for n in names if n not in ordered][:1]
        ordered.extend(ready)
    return ordered


def _columns(store: Store, table: str) -> list[str]:
    if store.backend == "sqlite":
        return [str(r[1]) for r in store.query(f"PRAGMA table_info({table})")]
    return [
        str(r[0])
        for r in store.query(
            "SELECT column_name FROM information_schema.columns WHERE table_schema ="
            " current_schema() AND table_name = ? AND is_generated = 'NEVER' ORDER BY ordinal_position",
            (table,),
        )
    ]


def _batches(rows: Iterator[Any], size: int) -> Iterator[list[tuple[Any, ...]]]:
    while True:
        batch = [tuple(r) for r in islice(rows, size)]
        if not batch:
            return
        yield batch


def copy(
    src: Store, dst: Store, *, progress: Callable[[str, int], None] | None = None
) -> dict[str, int]:
    """Copy every row of ``src`` into ``dst``; the rows copied per table.

    :param progress: called with a table's name and its rows so far, after each batch
    :raises InvalidInput: ``dst`` already holds conversations, or its schema lacks a table or
        column of ``src`` (a destination older than the source: open it with this tandem first)
    """
    row = dst.one("SELECT count(*) FROM conversations")
    if row is not None and row[0]:
        raise InvalidInput(
            f"{dst.path} already holds {row[0]} conversation(s): copy into an empty database"
        )
    tables = _tables(src)
    theirs = set(_tables(dst))
    missing = [t for t in tables if t not in theirs]
    if missing:
        raise InvalidInput(f"{dst.path} has no table {', '.join(missing)}")
    counts: dict[str, int] = {}
    with dst.write() as conn:
        # What the destination may hold without conversations (agents, articles, cursors)
        # is replaced by the source's, children first.
        for table in reversed(tables):
            conn.execute(f"DELETE FROM {table}")
        for table in tables:
            columns = _columns(src, table)
            absent = set(columns) - set(_columns(dst, table))
            if absent:
                raise InvalidInput(f"{dst.path}: table {table} has no column {', '.join(absent)}")
            names = ", ".join(columns)
            order = " ORDER BY id" if "id" in columns else ""
            sql = f"INSERT INTO {table} ({names}) VALUES ({', '.join('?' * len(columns))})"
            done = 0
            for batch in _batches(src.rows(f"SELECT {names} FROM {table}{order}"), BATCH):
                conn.executemany(sql, batch)
                done += len(batch)
                if progress is not None:
                    progress(table, done)
            counts[table] = done
        if dst.backend == "postgresql":
            # Rows came with their ids: the sequences must go on after the largest one.
            for (table,) in conn.execute(
                "SELECT table_name FROM information_schema.columns WHERE column_name = 'id'"
                " AND is_identity = 'YES' AND table_schema = current_schema()"
            ).fetchall():
                if table in counts:
                    conn.execute(
                        f"SELECT setval(pg_get_serial_sequence('{table}', 'id'),"
                        f" coalesce((SELECT max(id) FROM {table}), 0) + 1, false)"
                    )
    return counts
