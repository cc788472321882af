"""Fill a store with made-up live conversations through the lifecycle API.

For tests, benchmarks and trying the console without a hub. All text here is written for
Tandem (no public data is copied). No Textual import: the benchmark's writer process uses it.
"""

from __future__ import annotations

import random

from store import Store, lifecycle
from store.lifecycle import TriageMark

NAMES = (
    "Maya Ortiz",
    "Jonas Berg",
    "Priya Nair",
    "Tomás Silva",
    "Lena Fischer",
    "Omar Haddad",
    "Chen Wei",
    "Aoife Byrne",
    "Kwame Mensah",
    "Sofia Rossi",
    "Dmitri Volkov",
    "Amara Obi",
)
ASKS = (
    "my card was declined at the supermarket but I have money in the account",
    "how long does a transfer to another bank take?",
    "I was charged twice for the same order",
    "can I change the pin on my card in the app?",
    "where do I find my account statement for last month?",
    "the exchange rate you gave me looks wrong",
)
BOT = (
    "I can help with that. Could you tell me the date and amount of the payment?",
    "Transfers to other banks usually arrive within one working day.",
    "I see two pending payments; the duplicate is released automatically within 3 days.",
    "Yes: open Cards, choose the card, then Change PIN.",
)
FLAGS = (
    (
        "urgent",
        0.95,
        ["fraud"],
        "someone is using my card right now, I did not make these payments",
    ),
    ("empathy", 0.8, ["bereavement"], "my husband passed away and I need to close his account"),
    (
        "empathy",
        0.72,
        ["human_request", "frustration"],
        "this is the third time I ask, let me talk to a person",
    ),
    ("watch", 0.45, ["negative_sentiment"], "honestly this is pretty annoying"),
)


def seed(
    store: Store,
    n: int = 30,
    *,
    seed_value: int = 7,
    turns: int = 3,
    other_agents: tuple[str, ...] = ("ana",),
) -> list[int]:
    """Open ``n`` live conversations with a few turns each; some flagged, waiting or claimed.

    :return: the new conversation ids
    """
    rng = random.Random(seed_value)
    ids = []
    for i in range(n):
        cid = lifecycle.open_conversation(
            store, rng.choice(NAMES), external_id=f"seed-{seed_value}-{i}", channel="sim"
        )
        ids.append(cid)
        for t in range(turns):
            mid = lifecycle.add_customer_message(
                store, cid, rng.choice(ASKS), idempotency_key=f"s{i}-{t}"
            ).message_id
            lifecycle.bot_reply(store, cid, rng.choice(BOT), reply_to=mid, meta={"kb": ["KB-001"]})
        roll = rng.random()
        if roll < 0.25:
            level, score, reasons, text = rng.choice(FLAGS)
            mid = lifecycle.add_customer_message(
                store, cid, text, idempotency_key=f"s{i}-flag"
            ).message_id
            lifecycle.record_triage(store, cid, TriageMark(level, score, reasons), message_id=mid)
            if level in ("empathy", "urgent") and rng.random() < 0.7:
                lifecycle.escalate(store, cid, reasons=reasons, level=level, score=score)
        elif roll < 0.32 and other_agents:
            lifecycle.claim(store, cid, rng.choice(other_agents))
    return ids
