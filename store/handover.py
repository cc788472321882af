"""The hand-over summary that goes with a transfer to another agent.

A supervisor's transfer can carry the summary the console showed them (``lifecycle.transfer``
with ``summary=``): it is stored, in the transfer's own transaction, as an internal note by the
supervisor whose meta holds the summary's fields under :data:`HANDOVER_KEY`. Agents read it in
the transcript like any note; the receiving agent's console also shows it above the transcript.
"""

from __future__ import annotations

import json
from typing import Any

from store.db import Store

HANDOVER_KEY = "handover"


def for_owner(store: Store, conversation_id: int) -> dict[str, Any] | None:
    """The summary that came with the conversation to the agent who holds it now.

    The newest hand-over note written when (or after) the present owner got it; ``None`` when
    nobody holds the conversation or it reached them without one (a claim, an assignment, a
    transfer from a tool that sent none).

    :return: ``{"id", "author", "text", "created_at", "summary"}``; ``summary`` is the note's
        meta under :data:`HANDOVER_KEY` (a dict, possibly empty)
    """
    row = store.one(
        "SELECT m.id, m.author, m.text, m.created_at, m.meta FROM messages m"
        " JOIN conversations c ON c.id = m.conversation_id"
        " WHERE m.conversation_id = ? AND m.role = 'note' AND c.state = 'human'"
        " AND m.created_at >= c.claimed_at AND json_extract(m.meta, '$.handover') IS NOT NULL"
        " ORDER BY m.id DESC LIMIT 1",
        (conversation_id,),
    )
    if row is None:
        return None
    meta = json.loads(row["meta"])
    summary = meta.get(HANDOVER_KEY) if isinstance(meta, dict) else None
    return {
        "id": int(row["id"]),
        "author": row["author"],
        "text": row["text"],
        "created_at": float(row["created_at"]),
        "summary": summary if isinstance(summary, dict) else {},
    }
