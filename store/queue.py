"""The queue of conversations waiting for a person, and the people who could take them.

Who could answer a customer joining the queue (for the hand-off notice: "2 people ahead of
you, ~4 min"), and the waiting list the hub's SLA timers walk. The order people take the
queue in is a policy, not a query: it lives in ``console.policy`` (the rows it orders come
from ``store.views.waiting_queue``).
"""

from __future__ import annotations

from typing import NamedTuple

from store.db import Store


class Waiting(NamedTuple):
    """One conversation in the queue, as the SLA timers see it."""

    id: int
    waiting_since: float
    triage_state: str | None


def agents_online(store: Store, *, since: float) -> int:
    """How many agents are at work: seen since ``since``, or holding a conversation now.

    :param since: wall-clock seconds; an agent last seen before it counts only while they
        own a conversation
    """
    row = store.one(
        "SELECT count(*) FROM agents WHERE last_seen_at >= ? OR name IN"
        " (SELECT owner FROM conversations WHERE state = 'human')",
        (since,),
    )
    return int(row[0]) if row else 0


def waiting_longest_first(store: Store, *, limit: int = 500) -> list[Waiting]:
    """Conversations in the queue, the longest wait first, with their saved triage state.

    :param limit: at most this many (the longest waits are the ones a timer must not miss)
    """
    return [
        Waiting(*r)
        for r in store.query(
            "SELECT id, waiting_since, triage_state FROM conversations WHERE state = 'waiting'"
            " AND waiting_since IS NOT NULL ORDER BY waiting_since LIMIT ?",
            (limit,),
        )
    ]


def oldest_waiting_since(store: Store) -> float | None:
    """When the longest-waiting customer joined the queue; ``None`` for an empty queue."""
    row = store.one("SELECT min(waiting_since) FROM conversations WHERE state = 'waiting'")
    return None if row is None or row[0] is None else float(row[0])
