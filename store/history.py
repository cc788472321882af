"""What a conversation's feed says about how it was last closed, and by whom it was held.

Read inside the caller's transaction (``conn``), so a rating or a reopening acts on the
closing that is current when it commits.
"""

from __future__ import annotations

import json
import sqlite3
from dataclasses import dataclass
from typing import TYPE_CHECKING

from store.moves import MOVES

if TYPE_CHECKING:
    # Annotations only: console.policy reads Closing and Reopening without loading the
    # database layer (sqlite-utils).
    from store.db import Store

_HANDOVERS = ("claimed", "assigned", "transferred")


@dataclass(frozen=True, slots=True)
class Closing:
    """The event that closed a conversation the last time.

    :param event_id: its ``events.id`` (a rating belongs to one closing)
    :param kind: ``resolved`` or ``abandoned``
    :param from_state: the state it was closed from (``human``: a person had it)
    :param by: who closed it (an agent, ``bot``, ``hub``, an integration)
    :param agent: the person who held it when it was closed, if one did
    :param at: when
    """

    event_id: int
    kind: str
    from_state: str | None
    by: str | None
    agent: str | None
    at: float


@dataclass(frozen=True, slots=True)
class Reopening:
    """Where a closed conversation goes when its customer writes again (the policy decides).

    :param state: ``bot``, ``waiting`` or ``human``
    :param agent: the person it goes back to (``state == "human"``)
    :param note: for the agents, stored as a note with the reopening
    """

    state: str
    agent: str | None = None
    note: str | None = None

    def __post_init__(self) -> None:
        if self.state not in ("bot", "waiting", "human"):
            raise ValueError(f"a conversation cannot reopen to {self.state!r}")
        if (self.state == "human") != (self.agent is not None):
            raise ValueError("a conversation reopens to an agent exactly when its state is human")


def last_closing(conn: sqlite3.Connection, conversation_id: int) -> Closing | None:
    """The newest ``resolved``/``abandoned`` event of the conversation, or ``None``."""
    row = conn.execute(
        "SELECT id, kind, from_state, actor, at FROM events WHERE conversation_id = ?"
        " AND kind IN ('resolved', 'abandoned') ORDER BY id DESC LIMIT 1",
        (conversation_id,),
    ).fetchone()
    if row is None:
        return None
    agent = holder_before(conn, conversation_id, row[0]) if row[2] == "human" else None
    return Closing(row[0], row[1], row[2], row[3], agent, row[4])


def holder_before(conn: sqlite3.Connection, conversation_id: int, event_id: int) -> str | None:
    """The agent the last hand-over before ``event_id`` gave the conversation to."""
    marks = ",".join("?" * len(_HANDOVERS))
    row = conn.execute(
        f"SELECT data FROM events WHERE conversation_id = ? AND id < ? AND kind IN ({marks})"
        " ORDER BY id DESC LIMIT 1",
        (conversation_id, event_id, *_HANDOVERS),
    ).fetchone()
    if row is None or not row[0]:
        return None
    owner = json.loads(row[0]).get("owner")
    return owner if isinstance(owner, str) else None


def reopen_noticed(store: Store, conversation_id: int, event_id: int) -> bool:
    """Whether the customer was already told where the reopening ``event_id`` took them (a
    system line whose meta names it): a replayed feed must not tell them twice."""
    row = store.one(
        "SELECT 1 FROM messages WHERE conversation_id = ? AND role = 'system'"
        " AND json_extract(meta, '$.reopened') = ? LIMIT 1",
        (conversation_id, event_id),
    )
    return row is not None


def talking_to_before(store: Store, conversation_id: int, agent: str) -> str | None:
    """Who the customer was last talking to before ``agent`` had the conversation.

    ``"bot"``, another agent's login, or ``None`` (nobody: not opened yet). The customer's
    side is told of every hand-over ("Ana joined"), so an agent who took it and never wrote
    still counts: a supervisor who barges in then takes over from Ana, not from the bot. A
    trip through the queue or a closing changes nothing (the customer heard nobody new).
    When ``agent`` does not hold it, whoever holds it (or last did) is the answer.
    """
    kinds = ("opened", *MOVES)
    marks = ",".join("?" * len(kinds))
    holder: str | None = None
    before: str | None = None
    for to_state, raw in store.query(
        f"SELECT to_state, data FROM events WHERE conversation_id = ? AND kind IN ({marks})"
        " ORDER BY id",
        (conversation_id, *kinds),
    ):
        if to_state == "human":
            owner = json.loads(raw).get("owner") if raw else None
            new = owner if isinstance(owner, str) else None
        elif to_state == "bot":
            new = "bot"
        else:
            continue
        if new == agent and holder != agent:
            before = holder
        holder = new
    return before if holder == agent else holder
