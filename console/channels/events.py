"""The customer side's view of the change feed: messages and state changes, as the channel
stream and the webhooks report them.

Internal detail stays inside: notes and triage are never reported, agents appear by first
name only, and every id is a string (integrations store them as opaque text).
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

from console.names import first_name
from store import Store, queries
from store.feed import Event

PUBLIC_ROLES = ("customer", "bot", "agent", "system")

STATE_TYPES = {
    "opened": "opened",
    "escalated": "waiting",
    "claimed": "joined",
    "assigned": "joined",
    "transferred": "joined",
    "released": "handed_back",
    "handed_back": "handed_back",
    "resolved": "resolved",
    "abandoned": "resolved",
    "reopened": "reopened",
    "rated": "rated",
}
"""Feed event kinds a customer or an integration hears about, and the name they hear.

``joined``: a person took the conversation (from the bot, the queue, or another person);
``handed_back``: the assistant has it again; ``waiting``: it is in the queue for a person."""

TYPES = ("message", *dict.fromkeys(STATE_TYPES.values()))


def iso(ts: float) -> str:
    """A feed time as ISO 8601 UTC with milliseconds (``2026-01-31T12:00:00.000Z``)."""
    return datetime.fromtimestamp(ts, UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def public_name(name: str | None) -> str:
    """How a person on the team is shown to customers: their first name by the one rule
    (:func:`console.names.first_name`: ``ana.lopez``, ``ana_lopez`` and ``ana-lopez`` are
    Ana), or "Support" for a login that is no name."""
    return first_name(name) or "Support"


def public_message(m: dict[str, Any]) -> dict[str, Any]:
    """A stored message as the customer's side sees it.

    ``choices``: the bot's quick replies, when it asked the customer to pick one.
    """
    out: dict[str, Any] = {
        "id": str(m["id"]),
        "role": m["role"],
        "text": m["text"],
        "at": iso(m["created_at"]),
    }
    author = public_name(m["author"]) if m["role"] == "agent" and m.get("author") else ""
    if author:
        out["author"] = author
    if m["role"] == "bot" and m.get("meta"):
        choices = _choices(m["meta"])
        if choices:
            out["choices"] = choices
    return out


def _choices(meta: str | dict[str, Any]) -> list[str]:
    try:
        data = json.loads(meta) if isinstance(meta, str) else meta
        raw = data.get("choices") if isinstance(data, dict) else None
    except ValueError:
        return []
    if not isinstance(raw, list):
        return []
    return [c for c in raw if isinstance(c, str) and c.strip()][:6]


def state_event(e: Event) -> dict[str, Any] | None:
    """A state change as reported outside, or ``None`` for feed events kept inside."""
    kind = STATE_TYPES.get(e.kind)
    if kind is None or e.conversation_id is None:
        return None
    data = e.data or {}
    state = e.to_state or ("resolved" if kind == "rated" else "bot")
    out: dict[str, Any] = {
        "id": str(e.id),
        "type": kind,
        "conversation_id": str(e.conversation_id),
        "state": state,
        "at": iso(e.at),
    }
    if kind == "joined" or (kind == "reopened" and data.get("owner")):
        # Who has it now: the person who joined, or the one a reopening went back to.
        name = public_name(data.get("owner"))
        if name:
            out["agent"] = name
    elif kind == "resolved":
        out["reason"] = "abandoned" if e.kind == "abandoned" else "resolved"
    elif kind == "rated":
        out["score"] = data.get("score")
    return out


def message_of(store: Store, e: Event) -> dict[str, Any] | None:
    """The public form of a ``message`` feed event's message (``None`` for notes)."""
    if e.kind != "message" or (e.data or {}).get("role") not in PUBLIC_ROLES:
        return None
    row = queries.message(store, e.message_id or 0)
    return None if row is None else public_message(row)


def public_event(store: Store, e: Event) -> tuple[str, dict[str, Any]] | None:
    """``(type, payload)`` for a feed event reported outside: a message or a state change."""
    if e.kind == "message":
        message = message_of(store, e)
        return None if message is None else ("message", message)
    state = state_event(e)
    return None if state is None else (state["type"], state)
