"""Agent protection: abusive customer text is read on purpose, and counted per agent.

A customer message whose triage reasons include ``abuse`` is shown masked; an agent who
chooses to read it reveals it, and :func:`reveal` records that as a ``revealed`` event (the
actor, the message) in the feed. :func:`abuse_shown` counts per agent how many abusive
messages reached them in a time window, for supervisors. :func:`final_notice` is a
supervisor's last word to a customer who keeps abusing: a fixed, polite system message and
the close, in one transaction.

No migration: the ``events`` table already holds a kind, an actor and a message id, and
``events_kind_at`` serves the window's reads. It is a partial index: each read says
``kind != 'message'``, without which SQLite scans the whole feed (on a store of 1M messages
:func:`abuse_shown` took 233 ms that way, 17 ms with the index).
"""

from __future__ import annotations

import json
from collections import defaultdict
from typing import Any

from store.accounts import check_active
from store.db import Store, now
from store.errors import InvalidInput, InvalidTransition, NotFound
from store.lifecycle import _event, _insert_plain, _load, _name, _refuse, _require_supervisor

ABUSE = "abuse"
# The hub marks each customer message (meta.abusive, from the engine's reasons for that
# message alone); without the mark, `abuse` among its stored reasons (a JSON list) decides.
_ABUSIVE = (
    "m.role = 'customer' AND coalesce(json_extract(m.meta, '$.abusive'),"
    " m.reasons LIKE '%\"abuse\"%')"
)
# Moves that put a conversation in an agent's hands (the owner is in data.owner).
_HOLDS = ("claimed", "assigned", "transferred")

FINAL_NOTICE_TEXT = (
    "We want to help, but we cannot continue a conversation with abusive language. "
    "As you were warned earlier, this conversation is now closed. "
    "You are welcome to contact us again when you are ready to talk respectfully."
)


def is_abusive(message: dict[str, Any]) -> bool:
    """Whether a message (``role``, decoded ``reasons`` and ``meta``) is abusive customer text."""
    if message.get("role") != "customer":
        return False
    mark = (message.get("meta") or {}).get("abusive")
    if isinstance(mark, bool):
        return mark
    return ABUSE in (message.get("reasons") or ())


def reveal(store: Store, message_id: int, *, by: str, at: float | None = None) -> int:
    """Record that ``by`` chose to read an abusive message; return the event's id.

    Revealing the same message again records nothing new and returns the first event's id:
    the feed says who read it first, the count stays one.

    :raises NotFound: no such message
    :raises InvalidInput: the message is not abusive customer text (nothing to reveal)
    """
    by = _name(by)
    at = at or now()
    with store.write() as conn:
        check_active(conn, by)
        row = conn.execute(
            "SELECT conversation_id, role, reasons, meta FROM messages WHERE id = ?",
            (message_id,),
        ).fetchone()
        if row is None:
            raise NotFound(f"message {message_id} not found")
        reasons = json.loads(row[2]) if row[2] else []
        meta = json.loads(row[3]) if row[3] else {}
        if not is_abusive({"role": row[1], "reasons": reasons, "meta": meta}):
            raise InvalidInput(f"message {message_id} is not masked (not abusive customer text)")
        seen = conn.execute(
            "SELECT id FROM events WHERE kind = 'revealed' AND kind != 'message'"
            " AND message_id = ? AND actor = ?",
            (message_id, by),
        ).fetchone()
        if seen is not None:
            return int(seen[0])
        return _event(conn, at, row[0], "revealed", by, message_id=message_id)


def revealed_ids(store: Store, conversation_id: int, agent: str) -> set[int]:
    """The messages of a conversation that ``agent`` has revealed (they stay readable to them)."""
    rows = store.query(
        "SELECT message_id FROM events WHERE conversation_id = ? AND kind = 'revealed'"
        " AND actor = ?",
        (conversation_id, agent),
    )
    return {int(r[0]) for r in rows}


def abuse_shown(store: Store, *, since: float) -> dict[str, int]:
    """Per agent, how many distinct abusive customer messages reached them since ``since``.

    A message counts for an agent who revealed it since then, or who held its conversation
    (claimed, was assigned or transferred it) since then or holds it now: masked, it was still
    in front of them. Messages from before the hold count too, since the transcript shows them.
    Agents with none are left out.
    """
    holds = ",".join(f"'{k}'" for k in _HOLDS)
    rows = store.query(
        f"""
        WITH held(agent, cid) AS (
            SELECT json_extract(e.data, '$.owner'), e.conversation_id FROM events e
             WHERE e.kind IN ({holds}) AND e.kind != 'message' AND e.at >= :since
            UNION
            SELECT owner, id FROM conversations WHERE state = 'human'
        ),
        shown(agent, mid) AS (
            SELECT h.agent, m.id FROM held h JOIN messages m ON m.conversation_id = h.cid
             WHERE {_ABUSIVE}
            UNION
            SELECT e.actor, e.message_id FROM events e
             WHERE e.kind = 'revealed' AND e.kind != 'message' AND e.at >= :since
        )
        SELECT agent, count(*) FROM shown WHERE agent IS NOT NULL GROUP BY agent
        """,
        {"since": since},
    )
    out: dict[str, int] = defaultdict(int)
    for agent, n in rows:
        out[str(agent)] = int(n)
    return dict(out)


def final_notice(
    store: Store,
    conversation_id: int,
    *,
    by: str,
    text: str = FINAL_NOTICE_TEXT,
    at: float | None = None,
) -> int:
    """A supervisor's final notice to an abusive customer, then the close; one transaction.

    The customer sees ``text`` as a system message; the conversation is resolved with ``by``
    as the actor of both events. Returns the notice's message id.

    :raises Forbidden: ``by`` is not a supervisor
    :raises InvalidTransition: the conversation is already resolved, or no customer message
        in it was flagged abusive (a final notice needs the abuse on record)
    """
    at = at or now()
    with store.write() as conn:
        _require_supervisor(conn, by, "give a final notice")
        check_active(conn, by)
        state, owner = _load(conn, conversation_id)
        if state == "resolved":
            raise _refuse(conversation_id, state, owner, "give a final notice in")
        abusive = conn.execute(
            f"SELECT 1 FROM messages m WHERE m.conversation_id = ? AND {_ABUSIVE} LIMIT 1",
            (conversation_id,),
        ).fetchone()
        if abusive is None:
            raise InvalidTransition(
                f"no abusive message in conversation {conversation_id}: no final notice",
                state=state,
            )
        mid = _insert_plain(
            conn,
            conversation_id,
            "system",
            "tandem",
            text,
            at,
            meta={"final_notice": True, "by": by},
        )
        conn.execute(
            "UPDATE conversations SET state = 'resolved', owner = NULL, resolved_at = ?,"
            " waiting_since = NULL, updated_at = ?, version = version + 1 WHERE id = ?",
            (at, at, conversation_id),
        )
        _event(
            conn,
            at,
            conversation_id,
            "resolved",
            by,
            state,
            "resolved",
            data={"final_notice": mid, "from": owner} if owner else {"final_notice": mid},
        )
    return mid
