"""The customer's rating of a closed conversation: 1 to 5, and a comment if they want.

One rating per closing: a conversation reopened and closed again can be rated again, and a
second rating of the same closing replaces the first (the customer changed their mind). The
rating remembers the person who held the conversation when it closed, for per-agent
satisfaction, and appends a ``rated`` event so consoles and webhooks hear of it.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from store.db import Store, now
from store.errors import InvalidInput, InvalidTransition, NotFound
from store.history import last_closing

MAX_COMMENT = 1000


@dataclass(frozen=True, slots=True)
class Rating:
    """A stored rating; ``replaced`` when it overwrote an earlier one for the same closing."""

    conversation_id: int
    score: int
    comment: str | None
    agent: str | None
    replaced: bool


def _score(score: object) -> int:
    if isinstance(score, bool) or not isinstance(score, int) or not 1 <= score <= 5:
        raise InvalidInput("score must be a whole number from 1 to 5")
    return score


def _comment(comment: object) -> str | None:
    if comment is None:
        return None
    if not isinstance(comment, str):
        raise InvalidInput("comment must be a string")
    if len(comment) > MAX_COMMENT:
        raise InvalidInput(f"comment is too long ({len(comment)} characters, limit {MAX_COMMENT})")
    try:
        comment.encode("utf-8")
    except UnicodeEncodeError:
        raise InvalidInput("comment is not valid Unicode") from None
    if "\x00" in comment:
        raise InvalidInput("comment contains a NUL character")
    return comment.strip() or None


def rate(
    store: Store,
    conversation_id: int,
    score: int,
    comment: str | None = None,
    *,
    at: float | None = None,
) -> Rating:
    """Store the customer's rating of the conversation's latest closing.

    :raises InvalidTransition: the conversation is not closed
    :raises InvalidInput: a score outside 1-5, an oversized or malformed comment
    """
    score = _score(score)
    comment = _comment(comment)
    with store.write() as conn:
        at = now() if at is None else at
        row = conn.execute(
            "SELECT state FROM conversations WHERE id = ?", (conversation_id,)
        ).fetchone()
        if row is None:
            raise NotFound(f"conversation {conversation_id} not found")
        closing = last_closing(conn, conversation_id) if row[0] == "resolved" else None
        if closing is None:
            raise InvalidTransition(
                f"conversation {conversation_id} is still open: it can be rated once it is closed",
                state=row[0],
            )
        replaced = (
            conn.execute(
                "SELECT 1 FROM ratings WHERE conversation_id = ? AND resolved_event = ?",
                (conversation_id, closing.event_id),
            ).fetchone()
            is not None
        )
        conn.execute(
            "INSERT INTO ratings (conversation_id, resolved_event, score, comment, agent, created_at)"
            " VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT (conversation_id, resolved_event) DO UPDATE"
            " SET score = excluded.score, comment = excluded.comment, created_at = excluded.created_at",
            (conversation_id, closing.event_id, score, comment, closing.agent, at),
        )
        data: dict[str, Any] = {"score": score, "comment": comment is not None}
        conn.execute(
            "INSERT INTO events (at, conversation_id, kind, actor, data) VALUES (?, ?, 'rated', ?, ?)",
            (at, conversation_id, "customer", json.dumps(data, separators=(",", ":"))),
        )
    return Rating(conversation_id, score, comment, closing.agent, replaced)


def rating_of(store: Store, conversation_id: int) -> dict[str, Any] | None:
    """The rating of the conversation's latest closing (``score``, ``comment``, ``agent``,
    ``created_at``), or ``None`` when it is open or not rated."""
    row = store.one(
        "SELECT r.score, r.comment, r.agent, r.created_at FROM ratings r"
        " JOIN conversations c ON c.id = r.conversation_id AND c.state = 'resolved'"
        " WHERE r.conversation_id = ? AND r.resolved_event = (SELECT max(id) FROM events"
        " WHERE conversation_id = ? AND kind IN ('resolved', 'abandoned'))",
        (conversation_id, conversation_id),
    )
    return None if row is None else dict(row)
