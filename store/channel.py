"""Reads for the channel API: one conversation's feed, to replay it to a customer's stream."""

from __future__ import annotations

from store.db import Store
from store.feed import Event, _to_event

_SELECT = (
    "SELECT id, at, conversation_id, kind, actor, from_state, to_state, message_id, data"
    " FROM events WHERE conversation_id = ? AND id > ? ORDER BY id LIMIT ?"
)


def conversation_events(
    store: Store, conversation_id: int, *, after: int = 0, limit: int = 500
) -> list[Event]:
    """The conversation's feed events with ``id > after``, oldest first (at most ``limit``)."""
    return [
        _to_event(tuple(r)) for r in store.conn.execute(_SELECT, (conversation_id, after, limit))
    ]
