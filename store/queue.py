"""The queue of conversations waiting for a person.

The waiting list the hub's SLA timers walk (who could take them: :mod:`store.presence`). The
order people take the queue in is a policy, not a query: it lives in ``console.policy`` (the
rows it orders come from ``store.views.waiting_queue``).
"""

from __future__ import annotations

from typing import NamedTuple

from store.db import Store


class Waiting(NamedTuple):
    """One conversation in the queue, as the SLA timers see it."""

    id: int
    waiting_since: float
    triage_state: str | None


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
