"""Bulk loading: rows straight into the public tables, bypassing the lifecycle.

For building scenery (benchmarks of a store with a million messages, demos), never for live
data: nothing here checks a move, appends to the feed on its own or keeps counters in step.
The caller supplies every row as the schema wants it.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

from store.db import Store

# Tables and columns are spliced into SQL text, so only the schema's own names pass.
_COLUMNS: dict[str, frozenset[str]] = {
    "agents": frozenset({"name", "display_name", "role", "created_at", "last_seen_at"}),
    "customers": frozenset({"id", "external_id", "name", "created_at"}),
    "conversations": frozenset(
        {
            "id",
            "customer_id",
            "channel",
            "state",
            "owner",
            "level",
            "score",
            "reasons",
            "subject",
            "message_count",
            "bot_fallbacks",
            "created_at",
            "updated_at",
            "last_message_at",
            "last_customer_at",
            "waiting_since",
            "claimed_at",
            "first_human_reply_at",
            "resolved_at",
        }
    ),
    "messages": frozenset(
        {"id", "conversation_id", "role", "author", "text", "created_at", "reply_to", "meta"}
    ),
    "events": frozenset(
        {
            "at",
            "conversation_id",
            "kind",
            "actor",
            "from_state",
            "to_state",
            "message_id",
            "data",
        }
    ),
}


def insert_rows(
    store: Store, table: str, columns: Sequence[str], rows: Iterable[Sequence[Any]]
) -> None:
    """Insert ``rows`` into ``table`` in one transaction (all or none).

    :param table: ``agents``, ``customers``, ``conversations``, ``messages`` or ``events``
    :param columns: the column each value of a row goes to, in order
    :param rows: one sequence of values per row
    :raises ValueError: an unknown table or column
    """
    known = _COLUMNS.get(table)
    if known is None:
        raise ValueError(f"bulk loading into {table!r} is not supported")
    unknown = [c for c in columns if c not in known]
    if unknown or not columns:
        raise ValueError(f"unknown columns for {table}: {unknown or 'none given'}")
    sql = f"INSERT INTO {table} ({', '.join(columns)}) VALUES ({', '.join('?' * len(columns))})"
    with store.write() as conn:
        conn.executemany(sql, rows)


def analyze(store: Store) -> None:
    """Refresh the query planner's statistics (after a bulk load changed the tables' shape)."""
    store.conn.execute("ANALYZE")
