"""``tandem db check``: SQLite's integrity check plus Tandem's own invariants."""

from __future__ import annotations

import json

from store.db import Store

# The state each kind of transition event must start from; replaying the feed per
# conversation proves every recorded move was legal and every bot message was posted
# while the bot owned the conversation (invariants 1, 3, 5).
_MOVES = {
    "escalated": ({"bot"}, "waiting"),
    "claimed": ({"bot", "waiting"}, "human"),
    "assigned": ({"waiting"}, "human"),
    "released": ({"waiting"}, "bot"),
    "handed_back": ({"human"}, "bot"),
    "transferred": ({"human"}, "human"),
    "resolved": ({"bot", "waiting", "human"}, "resolved"),
    "abandoned": ({"waiting"}, "resolved"),
    # Where a reopened conversation goes is the policy's choice (the assistant, the queue, or
    # the person who closed it): any live state, as recorded.
    "reopened": ({"resolved"}, None),
}
_REOPEN_TARGETS = frozenset({"bot", "waiting", "human"})


def check(store: Store, *, limit: int = 20) -> list[str]:
    """Every problem found, as one line each; an empty list means the store is sound.

    :param limit: stop collecting after this many problems
    """
    problems: list[str] = []
    ok = store.one("PRAGMA integrity_check")
    if ok is None or ok[0] != "ok":
        problems.append(f"integrity_check: {ok[0] if ok else 'no answer'}")
    for row in store.query("PRAGMA foreign_key_check"):
        problems.append(f"foreign key: {row[0]} row {row[1]} points to a missing {row[2]}")
        if len(problems) >= limit:
            return problems

    for cid, bad_state, bad_owner in store.query(
        "SELECT id, state, owner FROM conversations WHERE (state = 'human') != (owner IS NOT NULL)"
    ):
        problems.append(f"conversation {cid}: state {bad_state} with owner {bad_owner!r}")

    for cid, n, counted in store.query(
        "SELECT c.id, count(m.id), c.message_count FROM conversations c"
        " LEFT JOIN messages m ON m.conversation_id = c.id AND m.role != 'note'"
        " GROUP BY c.id HAVING count(m.id) != c.message_count LIMIT ?",
        (limit,),
    ):
        problems.append(f"conversation {cid}: {n} messages stored, {counted} counted")

    missing = store.one(
        "SELECT count(*) FROM messages m WHERE NOT EXISTS"
        " (SELECT 1 FROM events e WHERE e.message_id = m.id AND e.kind = 'message')"
    )
    if missing and missing[0]:
        problems.append(f"{missing[0]} messages have no feed event")

    state: dict[int, str] = {}
    owner: dict[int, str | None] = {}
    cursor = store.conn.execute(
        "SELECT id, conversation_id, kind, actor, from_state, to_state, data FROM events ORDER BY id"
    )
    for eid, cid, kind, actor, from_state, to_state, data in cursor:
        if len(problems) >= limit:
            break
        if cid is None:
            continue
        if kind == "opened":
            state[cid] = "bot"
            continue
        current = state.get(cid)
        if kind in _MOVES:
            allowed, fixed = _MOVES[kind]
            target = fixed or (to_state if to_state in _REOPEN_TARGETS else "bot")
            if current not in allowed:
                problems.append(f"event {eid}: {kind} from {current} in conversation {cid}")
            if from_state != current or to_state != target:
                problems.append(
                    f"event {eid}: recorded {from_state}->{to_state}, replay says {current}->{target}"
                )
            state[cid] = target
            if target == "human":
                owner[cid] = (json.loads(data) if data else {}).get("owner")
        elif kind == "message" and actor == "bot" and current != "bot":
            problems.append(f"event {eid}: bot posted in conversation {cid} while it was {current}")

    for cid, db_state in store.query("SELECT id, state FROM conversations"):
        if len(problems) >= limit:
            break
        if cid in state and state[cid] != db_state:
            problems.append(f"conversation {cid}: state {db_state}, feed replay says {state[cid]}")
    return problems[:limit]
