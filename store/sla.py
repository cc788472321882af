"""Service-level figures over time: how long people take, and conversations gone quiet.

Durations are seconds between two ``conversations`` timestamps (``waiting_since``,
``claimed_at``, ``first_human_reply_at``, ``resolved_at``), read for one window of time.
"""

from __future__ import annotations

from typing import NamedTuple

from store.db import Store


class Handling(NamedTuple):
    """Conversations people resolved in a window, and their mean time from claim to close."""

    conversations: int
    mean_seconds: float | None


def handling_time(store: Store, *, since: float) -> Handling:
    """How long agents took per conversation, claim to resolution, for those resolved since ``since``.

    :param since: wall-clock seconds; conversations resolved at or after it count
    """
    row = store.one(
        "SELECT count(*), avg(resolved_at - claimed_at) FROM conversations WHERE resolved_at >= ?"
        " AND claimed_at IS NOT NULL AND resolved_at > claimed_at",
        (since,),
    )
    if row is None:
        return Handling(0, None)
    return Handling(int(row[0]), None if row[1] is None else float(row[1]))


def claim_waits(store: Store, *, since: float) -> list[float]:
    """Seconds each customer waited in the queue before a person claimed them (claims since ``since``)."""
    return [
        float(r[0])
        for r in store.query(
            "SELECT claimed_at - waiting_since FROM conversations WHERE claimed_at >= ?"
            " AND waiting_since IS NOT NULL AND claimed_at >= waiting_since",
            (since,),
        )
    ]


def first_reply_waits(store: Store, *, since: float) -> list[float]:
    """Seconds from a claim to the person's first reply (first replies since ``since``)."""
    return [
        float(r[0])
        for r in store.query(
            "SELECT first_human_reply_at - claimed_at FROM conversations WHERE first_human_reply_at >= ?"
            " AND claimed_at IS NOT NULL",
            (since,),
        )
    ]


def quiet_bot_conversations(store: Store, *, before: float, limit: int = 200) -> list[int]:
    """Bot conversations with no activity since ``before`` whose customer is not owed an answer.

    :param before: wall-clock seconds; the last message (or the opening) came earlier
    :param limit: at most this many ids
    """
    return [
        int(r[0])
        for r in store.query(
            "SELECT id FROM conversations WHERE state = 'bot' AND coalesce(last_message_at, created_at) < ?"
            " AND (last_customer_at IS NULL OR last_customer_at < last_message_at) LIMIT ?",
            (before, limit),
        )
    ]
