"""Live oversight (issue 16): whisper to the agent who holds a conversation, barge in on it,
and who has it open right now.

- :func:`whisper` writes a note addressed to the owning agent. It is a ``note`` (never shown
  to the customer: the channel side reports only public roles) whose message ``meta`` and
  feed event say ``whisper`` and ``to``, so the addressee's console can single it out the
  moment the feed carries it.
- :func:`barge` is a supervisor's transfer to themselves (one transaction of
  :func:`store.lifecycle.transfer`, the ``transferred`` move) with ``reason: barge`` in the
  event: the feed names who barged (``actor``) and who was displaced (``from``), and every
  reader of the feed (the customer's stream, webhooks, the checker) already knows the move.
- :func:`view` / :func:`leave` keep the ``viewers`` table: a console renews its row on a
  heartbeat and removes it on close; a row past ``expires_at`` is nobody, so a console that
  died stops counting without anyone cleaning up after it. Each write appends a ``viewing``
  or ``viewing_ended`` event, so every console's tile learns of it through the feed it
  already follows (and a remote one through the event stream).
"""

from __future__ import annotations

import json
from typing import Any

from store import lifecycle
from store.accounts import check_active, person_name, role_of
from store.db import Store, now
from store.errors import Forbidden, InvalidInput, InvalidTransition, NotFound
from store.text import MAX_TEXT, checked_text

VIEW_TTL_S = 90.0
"""How long a console's "I have it open" lasts without a renewal (the console renews every
30 s: two missed beats are forgiven, a dead console is gone within a minute and a half)."""

WHISPER = "whisper"
BARGE = "barge"


def _supervisor(conn: Any, by: str, action: str) -> None:
    if role_of(conn, by) != "supervisor":
        raise Forbidden(f"only a supervisor can {action} ({by} is not one)")


def _holder(conn: Any, cid: int) -> tuple[str, str | None]:
    row = conn.execute("SELECT state, owner FROM conversations WHERE id = ?", (cid,)).fetchone()
    if row is None:
        raise NotFound(f"conversation {cid} not found")
    return str(row[0]), row[1]


def _nobody_holds(cid: int, state: str, action: str) -> InvalidTransition:
    where = {"bot": "with the bot", "waiting": "waiting in the queue", "resolved": "resolved"}
    return InvalidTransition(
        f"cannot {action} conversation {cid}: no agent holds it (it is {where.get(state, state)})",
        state=state,
    )


def whisper(
    store: Store, conversation_id: int, text: str, *, by: str, at: float | None = None
) -> int:
    """A supervisor's note to the agent holding the conversation; never shown to the customer.

    :return: the note's message id
    :raises Forbidden: ``by`` is not a supervisor (or is disabled)
    :raises InvalidTransition: no agent holds it, or ``by`` holds it themselves
    """
    text = checked_text(text, "whisper", MAX_TEXT)
    by = person_name(by, "by")
    with store.write() as conn:
        at = now() if at is None else at
        check_active(conn, by)
        _supervisor(conn, by, "whisper")
        state, owner = _holder(conn, conversation_id)
        if state != "human" or owner is None:
            raise _nobody_holds(conversation_id, state, "whisper in")
        if owner == by:
            raise InvalidTransition(
                f"conversation {conversation_id} is yours: a whisper is for the agent who holds"
                " it (a note is ctrl+n)",
                state=state,
            )
        meta = {WHISPER: True, "to": owner}
        mid = conn.execute(
            "INSERT INTO messages (conversation_id, role, author, text, created_at, meta)"
            " VALUES (?, 'note', ?, ?, ?, ?)",
            (conversation_id, by, text, at, json.dumps(meta)),
        ).lastrowid
        assert mid is not None
        conn.execute(
            "INSERT INTO events (at, conversation_id, kind, actor, message_id, data)"
            " VALUES (?, ?, 'message', ?, ?, ?)",
            (
                at,
                conversation_id,
                by,
                mid,
                json.dumps({"role": "note", WHISPER: True, "to": owner}, separators=(",", ":")),
            ),
        )
    return int(mid)


def barge(store: Store, conversation_id: int, *, by: str, at: float | None = None) -> str:
    """A supervisor takes over a conversation another agent holds, in one transaction.

    :return: the agent who held it
    :raises Forbidden: ``by`` is not a supervisor
    :raises InvalidTransition: no agent holds it (take it over instead), or ``by`` does
    """
    by = person_name(by, "by")
    try:
        return lifecycle.transfer(store, conversation_id, by, by=by, reason=BARGE, at=at)
    except InvalidTransition as exc:
        if exc.state is not None and exc.state != "human":
            raise _nobody_holds(conversation_id, exc.state, "barge in on") from None
        raise


def view(
    store: Store,
    conversation_id: int,
    agent: str,
    *,
    ttl: float = VIEW_TTL_S,
    at: float | None = None,
) -> float:
    """``agent``'s console shows the conversation (or still does): record it until ``at + ttl``.

    :return: when the record runs out unless renewed
    """
    agent = person_name(agent)
    if not 0 < ttl <= 3600:
        raise InvalidInput("a view lasts between 0 and 3600 seconds")
    with store.write() as conn:
        at = now() if at is None else at
        _holder(conn, conversation_id)
        check_active(conn, agent)
        conn.execute(
            "INSERT INTO agents (name, display_name, created_at, last_seen_at) VALUES (?, ?, ?, ?)"
            " ON CONFLICT(name) DO UPDATE SET last_seen_at = excluded.last_seen_at",
            (agent, agent, at, at),
        )
        until = at + ttl
        # Rows of consoles that died: nobody reads them, so they go as others come.
        conn.execute("DELETE FROM viewers WHERE expires_at < ?", (at - ttl,))
        conn.execute(
            "INSERT INTO viewers (conversation_id, agent, since, expires_at) VALUES (?, ?, ?, ?)"
            " ON CONFLICT(conversation_id, agent) DO UPDATE SET expires_at = excluded.expires_at,"
            " since = CASE WHEN viewers.expires_at < excluded.since THEN excluded.since"
            " ELSE viewers.since END",
            (conversation_id, agent, at, until),
        )
        conn.execute(
            "INSERT INTO events (at, conversation_id, kind, actor, data) VALUES (?, ?, 'viewing', ?, ?)",
            (at, conversation_id, agent, json.dumps({"until": until}, separators=(",", ":"))),
        )
    return until


def leave(store: Store, conversation_id: int, agent: str, *, at: float | None = None) -> bool:
    """``agent``'s console closed the conversation; whether it was recorded as viewing it."""
    agent = person_name(agent)
    with store.write() as conn:
        at = now() if at is None else at
        gone = conn.execute(
            "DELETE FROM viewers WHERE conversation_id = ? AND agent = ?",
            (conversation_id, agent),
        ).rowcount
        if gone:
            conn.execute(
                "INSERT INTO events (at, conversation_id, kind, actor) VALUES (?, ?, 'viewing_ended', ?)",
                (at, conversation_id, agent),
            )
    return bool(gone)


def viewers(
    store: Store, *, ids: list[int] | None = None, at: float | None = None
) -> dict[int, list[dict[str, Any]]]:
    """Who has each conversation open: id -> ``[{"agent", "since", "until"}]``, earliest first.

    Only records not run out at ``at`` (default: now). The table holds a row per open
    conversation screen, so reading it whole is cheap; ``ids`` only narrows the answer.
    """
    at = now() if at is None else at
    wanted = None if ids is None else set(ids)
    out: dict[int, list[dict[str, Any]]] = {}
    for r in store.query(
        "SELECT conversation_id, agent, since, expires_at FROM viewers WHERE expires_at > ?"
        " ORDER BY since, agent",
        (at,),
    ):
        cid = int(r[0])
        if wanted is None or cid in wanted:
            out.setdefault(cid, []).append({"agent": r[1], "since": r[2], "until": r[3]})
    return out


def readable(data: dict[str, Any] | None, author: str | None, reader: str | None) -> bool:
    """Whether ``reader`` may read a message with this ``meta`` (or feed event ``data``) by
    ``author``: a whisper only its addressee, its author and supervisors (``reader`` None);
    every other message anyone. The SQL form is :data:`store.queries.READABLE_BY`."""
    if reader is None or not data or not data.get(WHISPER):
        return True
    return reader in (author, data.get("to"))


def reader_of(name: str, role: str) -> str | None:
    """The ``reader`` argument for an account: ``None`` (every whisper) for a supervisor."""
    return None if role == "supervisor" else name


def reader_in(store: Store, name: str, role: str = "agent") -> str | None:
    """The ``reader`` argument for ``name`` by the role the store gives them (an account's, or
    the agent's in local mode; ``role`` when it knows none yet)."""
    return reader_of(name, role_of(store.conn, name) or role)
