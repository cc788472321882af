"""``tandem db check``: SQLite's integrity check plus Tandem's own invariants (both backends).

Every step is one pass over a table or a sort (no per-row lookup without an index), so the
check grows with the store's size, not its square: `tandem bench check` times it on 100,000
conversations and 1,000,000 messages. A damaged file is one line of the report, not a
traceback: SQLite's error stops the check where it was met.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from typing import Any

from store.db import Store
from store.errors import Damaged
from store.moves import MOVES, OPENED, POSTS_IN

Steps = list[tuple[str, Callable[[Store, int], Iterator[str]]]]


def check(store: Store, *, limit: int = 20) -> list[str]:
    """Every problem found, as one line each; an empty list means the store is sound.

    A file SQLite finds damaged is also marked so (:meth:`Store.mark_damaged`): writers
    refuse it from then on. A sound result removes an earlier mark.

    :param limit: stop collecting after this many problems
    """
    problems: list[str] = []
    for name, step in STEPS:
        try:
            for line in step(store, limit):
                problems.append(line)
                if name == "integrity":
                    store.mark_damaged(line)
                if len(problems) >= limit:
                    return problems
        except Damaged as exc:
            # A damaged page: SQLite cannot read further; say so and where, once.
            store.mark_damaged(str(exc))
            problems.append(f"{name} step: {exc}")
            return problems
    if not problems:
        store.clear_damage_mark()
    return problems


def _integrity(store: Store, limit: int) -> Iterator[str]:
    if store.backend != "sqlite":
        # The server guards its own pages (and its WAL) and refuses a damaged one itself.
        return
    rows = store.query(f"PRAGMA integrity_check({max(1, limit)})")
    if not rows or rows[0][0] != "ok":
        first = rows[0][0] if rows else "no answer"
        more = f" (and {len(rows) - 1} more)" if len(rows) > 1 else ""
        yield f"integrity_check: {first}{more}"


def _foreign_keys(store: Store, limit: int) -> Iterator[str]:
    if store.backend != "sqlite":
        # PostgreSQL enforces every foreign key on every write: nothing to find afterwards.
        return
    for row in store.query("PRAGMA foreign_key_check"):
        yield f"foreign key: {row[0]} row {row[1]} points to a missing {row[2]}"


def _owners(store: Store, limit: int) -> Iterator[str]:
    for cid, state, owner in store.query(
        "SELECT id, state, owner FROM conversations"
        " WHERE (state = 'human') != (owner IS NOT NULL) LIMIT ?",
        (limit,),
    ):
        yield f"conversation {cid}: state {state} with owner {owner!r}"


def _counts(store: Store, limit: int) -> Iterator[str]:
    # Grouped once over the messages table, then joined: a correlated count per conversation
    # would read each conversation's messages through the index and then the table.
    for cid, n, counted in store.query(
        "SELECT c.id, coalesce(m.n, 0), c.message_count FROM conversations c LEFT JOIN"
        " (SELECT conversation_id, count(*) AS n FROM messages WHERE role != 'note'"
        "  GROUP BY conversation_id) m ON m.conversation_id = c.id"
        " WHERE coalesce(m.n, 0) != c.message_count LIMIT ?",
        (limit,),
    ):
        yield f"conversation {cid}: {n} messages stored, {counted} counted"


def _feed_covers_messages(store: Store, limit: int) -> Iterator[str]:
    # Set differences (one sort each) instead of NOT EXISTS per message: events.message_id
    # has no index, and a correlated lookup made this step quadratic.
    row = store.one(
        "SELECT count(*) FROM (SELECT id FROM messages"
        " EXCEPT SELECT message_id FROM events WHERE kind = 'message')"
    )
    if row and row[0]:
        yield f"{row[0]} messages have no feed event"
    row = store.one(
        "SELECT count(*) FROM (SELECT message_id FROM events WHERE kind = 'message'"
        " EXCEPT SELECT id FROM messages)"
    )
    if row and row[0]:
        yield f"{row[0]} message events point to a missing message"
    row = store.one(
        "SELECT count(*) - count(DISTINCT message_id) FROM events WHERE kind = 'message'"
    )
    if row and row[0]:
        yield f"{row[0]} messages have more than one feed event"


def _replay(store: Store, limit: int) -> Iterator[str]:
    """Replay the feed per conversation against :data:`store.moves.MOVES` (invariants 1, 3, 5)."""
    state: dict[int, str] = {}
    owner: dict[int, str | None] = {}
    parsed: dict[str, dict[str, Any]] = {}  # a few distinct payloads, read once each

    def data_of(raw: str | None) -> dict[str, Any]:
        if not raw:
            return {}
        value = parsed.get(raw)
        if value is None:
            loaded = json.loads(raw)
            value = parsed[raw] = loaded if isinstance(loaded, dict) else {}
        return value

    cursor = store.rows(
        "SELECT id, conversation_id, kind, actor, from_state, to_state, data FROM events ORDER BY id"
    )
    for eid, cid, kind, actor, from_state, to_state, data in cursor:
        if cid is None:
            continue
        if kind == "opened":
            state[cid] = OPENED
            continue
        current = state.get(cid)
        move = MOVES.get(kind)
        if move is not None:
            if not move.allowed(current):
                yield f"event {eid}: {kind} from {current} in conversation {cid}"
            # A move with a choice of ends (reopened: the policy's route) ends where recorded.
            target = to_state if to_state in move.targets else move.target
            if from_state != current or to_state != target:
                yield f"event {eid}: recorded {from_state}->{to_state}, replay says {current}->{target}"
            state[cid] = target
            owner[cid] = data_of(data).get("owner") if target == "human" else None
        elif kind == "message":
            role = data_of(data).get("role")
            needed = POSTS_IN.get(role or "")
            if needed is not None and current != needed:
                yield f"event {eid}: {role} posted in conversation {cid} while it was {current}"
            elif role == "agent" and actor != owner.get(cid):
                yield f"event {eid}: {actor} posted in conversation {cid} owned by {owner.get(cid)}"

    for cid, db_state in store.rows("SELECT id, state FROM conversations"):
        if cid in state and state[cid] != db_state:
            yield f"conversation {cid}: state {db_state}, feed replay says {state[cid]}"


STEPS: Steps = [
    ("integrity", _integrity),
    ("foreign keys", _foreign_keys),
    ("owner", _owners),
    ("message count", _counts),
    ("feed coverage", _feed_covers_messages),
    ("feed replay", _replay),
]
