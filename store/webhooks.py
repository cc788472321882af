"""The webhook outbox: what is owed to each endpoint, and what became of it.

A dispatcher reads the change feed and queues one delivery per event per endpoint; the queue
and the feed cursor move in one transaction, and ``(endpoint, event_id)`` is unique, so a
restart never queues an event twice and never skips one. Each delivery keeps the exact body
it is sent with (its signature is computed over those bytes on every attempt) and one
delivery id for all its attempts, so a receiver can drop the repeats of a retry.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass

from store.db import Store, now

STATUSES = ("pending", "delivered", "dead")


@dataclass(frozen=True, slots=True)
class NewDelivery:
    """A delivery to queue: ``body`` is the JSON text to send as is (it carries ``delivery_id``)."""

    endpoint: str
    event_id: int
    kind: str
    body: str
    delivery_id: str


@dataclass(frozen=True, slots=True)
class Delivery:
    """A queued delivery as the sender sees it."""

    id: int
    delivery_id: str
    endpoint: str
    event_id: int
    kind: str
    body: str
    attempts: int


def new_delivery_id() -> str:
    """A fresh delivery id (random, so two databases never hand out the same one)."""
    return uuid.uuid4().hex


def enqueue(store: Store, deliveries: list[NewDelivery], *, cursor: str, upto: int) -> int:
    """Queue ``deliveries`` and move the reader ``cursor`` to ``upto``, in one transaction.

    An event already queued for an endpoint is skipped (a replay after a crash).

    :return: how many deliveries were queued
    """
    at = now()
    queued = 0
    with store.write() as conn:
        for d in deliveries:
            cur = conn.execute(
                "INSERT INTO webhook_deliveries"
                " (delivery_id, endpoint, event_id, kind, body, next_at, created_at)"
                " VALUES (?, ?, ?, ?, ?, ?, ?) ON CONFLICT (endpoint, event_id) DO NOTHING",
                (d.delivery_id, d.endpoint, d.event_id, d.kind, d.body, at, at),
            )
            queued += cur.rowcount
        conn.execute(
            "INSERT INTO cursors (name, event_id, updated_at) VALUES (?, ?, ?)"
            " ON CONFLICT(name) DO UPDATE SET event_id = max(event_id, excluded.event_id),"
            " updated_at = excluded.updated_at",
            (cursor, upto, at),
        )
    return queued


def due(store: Store, *, at: float | None = None, limit: int = 50) -> list[Delivery]:
    """Pending deliveries whose next attempt is due, oldest event first."""
    rows = store.query(
        "SELECT id, delivery_id, endpoint, event_id, kind, body, attempts FROM webhook_deliveries"
        " WHERE status = 'pending' AND next_at <= ? ORDER BY event_id, id LIMIT ?",
        (now() if at is None else at, limit),
    )
    return [Delivery(r[0], r[1], r[2], r[3], r[4], r[5], r[6]) for r in rows]


def next_due_at(store: Store) -> float | None:
    """When the earliest pending delivery is due, or ``None`` when nothing is pending."""
    row = store.one("SELECT min(next_at) FROM webhook_deliveries WHERE status = 'pending'")
    return None if row is None or row[0] is None else float(row[0])


def delivered(store: Store, row_id: int, *, http_status: int, at: float | None = None) -> None:
    """The endpoint answered 2xx: the delivery is done."""
    at = now() if at is None else at
    with store.write() as conn:
        conn.execute(
            "UPDATE webhook_deliveries SET status = 'delivered', attempts = attempts + 1,"
            " last_status = ?, last_error = NULL, finished_at = ? WHERE id = ? AND status = 'pending'",
            (http_status, at, row_id),
        )


def failed(
    store: Store,
    row_id: int,
    *,
    error: str,
    http_status: int | None,
    retry_at: float | None,
    at: float | None = None,
) -> None:
    """An attempt failed: try again at ``retry_at``, or give up (a dead letter) when ``None``."""
    at = now() if at is None else at
    with store.write() as conn:
        if retry_at is None:
            conn.execute(
                "UPDATE webhook_deliveries SET status = 'dead', attempts = attempts + 1,"
                " last_status = ?, last_error = ?, finished_at = ? WHERE id = ? AND status = 'pending'",
                (http_status, error[:500], at, row_id),
            )
        else:
            conn.execute(
                "UPDATE webhook_deliveries SET attempts = attempts + 1, next_at = ?,"
                " last_status = ?, last_error = ? WHERE id = ? AND status = 'pending'",
                (retry_at, http_status, error[:500], row_id),
            )


def counts(store: Store) -> dict[str, int]:
    """Deliveries per status (``pending``, ``delivered``, ``dead``), zeros included."""
    out = dict.fromkeys(STATUSES, 0)
    for status, n in store.query("SELECT status, count(*) FROM webhook_deliveries GROUP BY status"):
        out[str(status)] = int(n)
    return out


def dead_letters(store: Store, *, limit: int = 20) -> list[dict[str, object]]:
    """The newest dead letters: where, which event, how many attempts, the last error."""
    return [
        dict(r)
        for r in store.query(
            "SELECT delivery_id, endpoint, event_id, kind, attempts, last_status, last_error,"
            " finished_at FROM webhook_deliveries WHERE status = 'dead' ORDER BY id DESC LIMIT ?",
            (limit,),
        )
    ]
