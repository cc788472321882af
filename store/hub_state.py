"""What the hub reads about one conversation while it works on it.

The hub keeps each conversation's triage state in memory and catches up from the store: the
conversation's row, the messages it has not observed yet, whether the customer is still owed
an answer, and which triage findings a person has already dealt with. Each function is one or
two indexed queries (``messages(conversation_id, id)``, ``events(conversation_id, id)``), sized
to run once per conversation per feed batch.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any, NamedTuple

from store.db import Store

# Feed events after which a person has dealt with what triage had found: a hand-back, a
# supervisor's release from the queue, or an agent closing the conversation (the customer may
# write again; what was handled then is not new evidence).
_SETTLED_SQL = (
    "(kind IN ('handed_back', 'released') OR (kind = 'resolved' AND from_state = 'human'))"
)


@dataclass(frozen=True, slots=True)
class HubConversation:
    """The columns of one conversation that the hub decides on."""

    state: str
    bot_fallbacks: int
    triage_state: str | None
    customer_name: str
    version: int


class Turn(NamedTuple):
    """One message the triage engine observes (notes are never turns)."""

    id: int
    role: str
    text: str
    created_at: float
    meta: str | None  # raw JSON, parsed only when the hub needs it (a bot's ``fallback``)


class LastTurn(NamedTuple):
    """The newest message of a conversation that is not a note."""

    id: int
    role: str
    created_at: float


def conversation(store: Store, conversation_id: int) -> HubConversation | None:
    """The hub's view of one conversation, or ``None`` when there is no such conversation.

    :param conversation_id: the conversation
    """
    row = store.one(
        "SELECT c.state, c.bot_fallbacks, c.triage_state, cu.name, c.version FROM conversations c"
        " JOIN customers cu ON cu.id = c.customer_id WHERE c.id = ?",
        (conversation_id,),
    )
    if row is None:
        return None
    return HubConversation(row[0], row[1], row[2], row[3], row[4])


def turns_after(store: Store, conversation_id: int, after: int) -> list[Turn]:
    """Messages of ``conversation_id`` with ``id > after``, oldest first, notes left out.

    :param after: the last message id already observed (0 for the whole conversation)
    """
    return [
        Turn(*r)
        for r in store.query(
            "SELECT id, role, text, created_at, meta FROM messages"
            " WHERE conversation_id = ? AND id > ? AND role IN ('customer', 'bot', 'agent', 'system')"
            " ORDER BY id",
            (conversation_id, after),
        )
    ]


def conversations(store: Store, conversation_ids: list[int]) -> dict[int, HubConversation]:
    """:func:`conversation` for several at once (one query); the missing ones are left out."""
    if not conversation_ids:
        return {}
    marks = ",".join("?" * len(conversation_ids))
    return {
        r[0]: HubConversation(r[1], r[2], r[3], r[4], r[5])
        for r in store.query(
            "SELECT c.id, c.state, c.bot_fallbacks, c.triage_state, cu.name, c.version"
            " FROM conversations c JOIN customers cu ON cu.id = c.customer_id"
            f" WHERE c.id IN ({marks})",
            conversation_ids,
        )
    }


_TURNS_OF_ONE = (
    "SELECT conversation_id, id, role, text, created_at, meta FROM messages"
    " WHERE conversation_id = ? AND id > ? AND role IN ('customer', 'bot', 'agent', 'system')"
)


def turns_after_each(store: Store, after: dict[int, int]) -> dict[int, list[Turn]]:
    """:func:`turns_after` for several conversations at once (one statement).

    :param after: conversation id -> the last message id already observed there
    :return: conversation id -> its new turns, oldest first (every conversation asked about)
    """
    out: dict[int, list[Turn]] = {cid: [] for cid in after}
    if not after:
        return out
    # One indexed range per conversation, each from its own place: a conversation new to
    # the hub (from 0) never makes the others' histories be read again.
    sql = " UNION ALL ".join([_TURNS_OF_ONE] * len(after)) + " ORDER BY 1, 2"
    params = [x for pair in after.items() for x in pair]
    for r in store.query(sql, params):
        out[r[0]].append(Turn(r[1], r[2], r[3], r[4], r[5]))
    return out


def customer_wrote_after(store: Store, conversation_id: int, message_id: int) -> bool:
    """Whether the customer posted anything after message ``message_id``."""
    return (
        store.one(
            "SELECT 1 FROM messages WHERE conversation_id = ? AND id > ? AND role = 'customer' LIMIT 1",
            (conversation_id, message_id),
        )
        is not None
    )


def last_turn(store: Store, conversation_id: int) -> LastTurn | None:
    """The newest message that is not a note, or ``None`` for a conversation without one.

    A conversation whose last turn is the customer's still owes them an answer.
    """
    row = store.one(
        "SELECT id, role, created_at FROM messages WHERE conversation_id = ? AND role != 'note'"
        " ORDER BY id DESC LIMIT 1",
        (conversation_id,),
    )
    return None if row is None else LastTurn(row[0], row[1], row[2])


def waiting_escalation(store: Store, conversation_id: int) -> dict[str, Any] | None:
    """What the latest escalation recorded (``level``, ``reasons``, ``note``), while it waits.

    :return: the ``escalated`` event's data when the conversation is in the queue now;
        ``None`` when it is not waiting (or its escalation recorded nothing)
    """
    row = store.one(
        "SELECT e.data FROM conversations c JOIN events e ON e.conversation_id = c.id"
        " WHERE c.id = ? AND c.state = 'waiting' AND e.kind = 'escalated' ORDER BY e.id DESC LIMIT 1",
        (conversation_id,),
    )
    return None if row is None else escalation_data(row[0])


class WaitingTurn(NamedTuple):
    """A conversation in the queue as the SLA timers see it."""

    id: int
    waiting_since: float
    triage_state: str | None
    escalated: str | None  # the latest ``escalated`` event's data (raw JSON), if any
    level: str | None = None
    reasons: str | None = None  # raw JSON, as stored

    def badge(self) -> tuple[str, tuple[str, ...]] | None:
        """The level and reasons stored on the conversation (what agents see), if any."""
        if self.level is None:
            return None
        try:
            reasons = json.loads(self.reasons) if self.reasons else []
        except ValueError:
            return None
        return self.level, tuple(str(r) for r in reasons)


def waiting_longest_first(store: Store, *, limit: int = 500) -> list[WaitingTurn]:
    """Conversations in the queue, the longest wait first, each with what its latest
    escalation recorded (:func:`waiting_escalation`'s data, unparsed), in one query.

    The SLA timers look at every waiting conversation each tick; one query per conversation
    for its escalation was most of a busy hub's statements on PostgreSQL.

    :param limit: at most this many
    """
    return [
        WaitingTurn(*r)
        for r in store.query(
            "SELECT c.id, c.waiting_since, c.triage_state,"
            " (SELECT e.data FROM events e WHERE e.conversation_id = c.id"
            " AND e.kind = 'escalated' ORDER BY e.id DESC LIMIT 1), c.level, c.reasons"
            " FROM conversations c WHERE c.state = 'waiting' AND c.waiting_since IS NOT NULL"
            " ORDER BY c.waiting_since LIMIT ?",
            (limit,),
        )
    ]


def escalation_data(raw: str | None) -> dict[str, Any] | None:
    """An ``escalated`` event's data as :func:`waiting_escalation` gives it (``None`` for none)."""
    if not raw:
        return None
    data: dict[str, Any] = json.loads(raw)
    return data


def settled_findings_of(
    store: Store, conversation_ids: list[int]
) -> dict[int, list[dict[str, Any]]]:
    """:func:`settled_findings` of many conversations, in one query per 500 of them.

    For the SLA timers, which look at up to 500 waiting conversations a tick: those not in
    the hub's memory (after a restart, or shards taken over from another worker) each cost
    one or two queries for what a person had settled.

    :return: conversation id -> findings before its last settling event, oldest first; a
        conversation nothing was ever settled for is absent
    """
    out: dict[int, list[dict[str, Any]]] = {}
    for start in range(0, len(conversation_ids), 500):
        chunk = conversation_ids[start : start + 500]
        marks = ",".join("?" * len(chunk))
        rows = store.query(
            "SELECT s.conversation_id, e.data FROM (SELECT conversation_id, max(id) AS upto"
            f" FROM events WHERE conversation_id IN ({marks}) AND {_SETTLED_SQL}"
            " GROUP BY conversation_id) s LEFT JOIN events e ON e.conversation_id ="
            " s.conversation_id AND e.id < s.upto AND e.kind IN ('triaged', 'escalated')"
            " AND e.data IS NOT NULL ORDER BY s.conversation_id, e.id",
            chunk,
        )
        for cid, data in rows:
            found = out.setdefault(int(cid), [])
            if data is not None:
                found.append(json.loads(data))
    return out


def settled_findings(store: Store, conversation_id: int) -> list[dict[str, Any]] | None:
    """Triage findings a person has dealt with: those recorded before the last settling event.

    Settling events: a hand-back to the bot, a release from the queue, or a person resolving
    the conversation.

    :return: the data (``level``, ``reasons``) of every ``triaged`` and ``escalated`` event
        before the last settling one, oldest first; ``None`` when nothing was ever settled
    """
    row = store.one(
        f"SELECT max(id) FROM events WHERE conversation_id = ? AND {_SETTLED_SQL}",
        (conversation_id,),
    )
    if row is None or row[0] is None:
        return None
    return [
        json.loads(data)
        for (data,) in store.query(
            "SELECT data FROM events WHERE conversation_id = ? AND id < ?"
            " AND kind IN ('triaged', 'escalated') AND data IS NOT NULL ORDER BY id",
            (conversation_id, row[0]),
        )
    ]
