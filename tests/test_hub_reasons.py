"""Every conversation the hub sends to people shows why, on the conversation itself."""

from __future__ import annotations

import asyncio
import random
from pathlib import Path

from console.channels.personas import PERSONAS, fill
from console.hub import make_hub
from console.policy import PolicySettings
from store import Store
from store import lifecycle as lc
from store.queries import list_conversations


def test_every_waiting_conversation_carries_reasons(db_path: Path) -> None:
    hub = make_hub(db_path)
    rng = random.Random(11)
    with Store(db_path) as store:
        for persona in PERSONAS:
            for opener in persona.openers:
                cid = lc.open_conversation(store, "Sam", channel="sim")
                lc.add_customer_message(store, cid, fill(opener, rng))
        # The bot's own hand-off path: a request the phrase cues may not know.
        cid = lc.open_conversation(store, "Sam", channel="sim")
        lc.add_customer_message(store, cid, "please put me through to someone")
    asyncio.run(hub.drain())
    hub.close()
    with Store(db_path) as store:
        waiting = list_conversations(store, states=("waiting",))
        assert waiting, "some openers must reach the queue"
        bare = [(c["id"], c["subject"]) for c in waiting if not c["reasons"]]
        assert bare == []
        assert all(c["level"] in ("empathy", "urgent") or c["reasons"] for c in waiting)


def test_an_escalation_on_bot_fallbacks_shows_them(db_path: Path) -> None:
    # Triage sees nothing wrong in a calm question; the bot not knowing is the only reason.
    hub = make_hub(db_path, settings=PolicySettings(max_fallbacks=1))
    with Store(db_path) as store:
        cid = lc.open_conversation(store, "Sam", channel="sim")
        lc.add_customer_message(store, cid, "what is my points total for my membership?")
    asyncio.run(hub.drain())
    hub.close()
    with Store(db_path) as store:
        (conv,) = list_conversations(store, states=None)
        assert conv["state"] == "waiting"
        assert "bot_fallback" in conv["reasons"]


def test_a_calm_ping_while_waiting_keeps_the_badge_that_sent_it_to_the_queue(db_path: Path) -> None:
    hub = make_hub(db_path)
    with Store(db_path) as store:
        cid = lc.open_conversation(store, "Sam", channel="sim")
        lc.add_customer_message(store, cid, "why is my account restricted?? this is ridiculous, I need my money")
    asyncio.run(hub.drain())
    with Store(db_path) as store:
        (conv,) = list_conversations(store, states=None)
        assert conv["state"] == "waiting"
        sent_with, why = conv["level"], set(conv["reasons"])
        assert sent_with in ("empathy", "urgent") and why
        lc.add_customer_message(store, cid, "hello??")
    asyncio.run(hub.drain())
    with Store(db_path) as store:
        (conv,) = list_conversations(store, states=None)
        assert conv["level"] == sent_with
        assert why <= set(conv["reasons"])
        # Once a person has it, the badge follows the customer again.
        lc.claim(store, cid, "ana")
        lc.add_customer_message(store, cid, "ok thanks, all good now")
    asyncio.run(hub.drain())
    hub.close()
    with Store(db_path) as store:
        (conv,) = list_conversations(store, states=None)
        assert conv["state"] == "human"
        assert conv["level"] in ("calm", "watch")
