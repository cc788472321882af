"""A large, consistent store built fast, for benchmarks of whole-store work (``db check``).

Going through :mod:`store.lifecycle` costs one transaction per message (minutes for a
million); this writes the same rows in batches. Every conversation's history follows
:data:`store.moves.MOVES` and the posting rules, with the same feed events the lifecycle
writes, so :func:`store.check.check` must find nothing: the bench says so when it does.
"""

from __future__ import annotations

import json
import random
from typing import Any

from store.bulk import insert_rows
from store.db import Store, now
from store.moves import CLAIM, ESCALATE, HAND_BACK, OPENED, RESOLVE, Move

AGENTS = ("ana", "ben", "chloe", "dev")
_WORDS = (
    "my card was declined at the shop and I was charged twice for the same order "
    "can you tell me when the refund arrives the app says pending since Monday "
    "I want to pay in three instalments but the option is missing for this store"
).split()


def seed(
    store: Store,
    *,
    conversations: int,
    messages: int,
    rng_seed: int = 7,
    batch: int = 5_000,
) -> tuple[int, int]:
    """Append ``conversations`` conversations holding ``messages`` messages in all.

    About one conversation in five goes to the queue, most of those to an agent, some back
    to the bot; most end resolved. Returns ``(conversations, messages)`` written.
    """
    if conversations < 1 or messages < conversations:
        raise ValueError("need at least one conversation and one message per conversation")
    rng = random.Random(rng_seed)
    t0 = now() - 86_400 * 30
    with store.write() as conn:
        for name in AGENTS:
            conn.execute(
                "INSERT OR IGNORE INTO agents (name, display_name, created_at) VALUES (?, ?, ?)",
                (name, name, t0),
            )
        base = conn.execute(
            "SELECT coalesce(max(id), 0) FROM conversations"
            " UNION ALL SELECT coalesce(max(id), 0) FROM messages"
            " UNION ALL SELECT coalesce(max(id), 0) FROM customers"
        ).fetchall()
    next_cid, next_mid, next_customer = (int(r[0]) + 1 for r in base)
    per, extra = divmod(messages, conversations)
    written = 0
    for start in range(0, conversations, batch):
        rows = _Rows()
        for i in range(start, min(conversations, start + batch)):
            count = per + (1 if i < extra else 0)
            next_mid = _conversation(rows, rng, next_cid, next_customer, next_mid, count, t0 + i)
            next_cid += 1
            next_customer += 1
            written += count
        rows.write(store)
    return conversations, written


class _Rows:
    def __init__(self) -> None:
        self.customers: list[tuple[Any, ...]] = []
        self.conversations: list[tuple[Any, ...]] = []
        self.messages: list[tuple[Any, ...]] = []
        self.events: list[tuple[Any, ...]] = []

    def write(self, store: Store) -> None:
        insert_rows(store, "customers", ("id", "name", "created_at"), self.customers)
        insert_rows(
            store,
            "conversations",
            (
                "id",
                "customer_id",
                "channel",
                "state",
                "owner",
                "subject",
                "message_count",
                "created_at",
                "updated_at",
                "last_message_at",
                "waiting_since",
                "claimed_at",
                "resolved_at",
            ),
            self.conversations,
        )
        insert_rows(
            store,
            "messages",
            ("id", "conversation_id", "role", "author", "text", "created_at"),
            self.messages,
        )
        insert_rows(
            store,
            "events",
            (
                "at",
                "conversation_id",
                "kind",
                "actor",
                "from_state",
                "to_state",
                "message_id",
                "data",
            ),
            self.events,
        )


def _conversation(
    rows: _Rows, rng: random.Random, cid: int, customer: int, mid: int, count: int, at: float
) -> int:
    """One conversation's rows and events; returns the next free message id."""
    rows.customers.append((customer, f"Customer {customer}", at))
    rows.events.append((at, cid, "opened", "customer", None, OPENED, None, '{"channel":"bench"}'))
    state, owner = OPENED, None
    waiting_since = claimed_at = resolved_at = None
    subject = ""
    # Where the story turns: after which message the bot escalates, and what happens next.
    turn = rng.randrange(1, count + 1) if rng.random() < 0.2 else count + 1
    path = rng.choice(("claim", "claim", "claim", "back", "resolve"))

    def move(m: Move, actor: str, data: dict[str, Any] | None = None) -> None:
        nonlocal state
        assert m.allowed(state), (m.kind, state)
        rows.events.append(
            (
                at,
                cid,
                m.kind,
                actor,
                state,
                m.target,
                None,
                json.dumps(data, separators=(",", ":")) if data else None,
            )
        )
        state = m.target

    for n in range(count):
        at += 1.0
        if n == turn:
            move(ESCALATE, "hub", {"reasons": ["frustration"]})
            waiting_since = at
            if path in ("claim", "back"):
                owner = rng.choice(AGENTS)
                move(CLAIM, owner, {"owner": owner})
                claimed_at, waiting_since = at, None
        if state == "waiting" or n % 2 == 0:
            role, author = "customer", "customer"
        elif state == "human":
            role, author = "agent", owner or "?"
        else:
            role, author = "bot", "bot"
        text = " ".join(rng.choices(_WORDS, k=rng.randint(6, 16)))
        if not subject and role == "customer":
            subject = text[:120]
        rows.messages.append((mid, cid, role, author, text, at))
        rows.events.append(
            (
                at,
                cid,
                "message",
                author,
                None,
                None,
                mid,
                json.dumps({"role": role}, separators=(",", ":")),
            )
        )
        mid += 1
    if state == "human" and path == "back":
        move(HAND_BACK, owner or "?", {"from": owner})
        owner = None
    if rng.random() < 0.8:
        move(RESOLVE, owner or "hub")
        owner, waiting_since, resolved_at = None, None, at
    rows.conversations.append(
        (
            cid,
            customer,
            "bench",
            state,
            owner,
            subject,
            count,
            at - count,
            at,
            at,
            waiting_since,
            claimed_at,
            resolved_at,
        )
    )
    return mid
