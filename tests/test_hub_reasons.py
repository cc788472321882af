"""Every conversation the hub sends to people shows why, on the conversation itself."""

from __future__ import annotations

import asyncio
import random
from pathlib import Path

from console.channels.personas import PERSONAS, fill
from console.hub import Hub, make_hub
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


def _say(hub: Hub, db_path: Path, text: str, cid: int | None = None) -> tuple[int, dict]:
    """The customer writes (in a new conversation unless ``cid``); the hub catches up."""
    with Store(db_path) as store:
        if cid is None:
            cid = lc.open_conversation(store, "Sam", channel="sim")
        lc.add_customer_message(store, cid, text)
    asyncio.run(hub.drain())
    with Store(db_path) as store:
        (conv,) = [c for c in list_conversations(store, states=None) if c["id"] == cid]
    return cid, conv


def test_an_escalation_on_bot_fallbacks_shows_them(db_path: Path) -> None:
    # Triage sees nothing wrong in a calm question; the bot not knowing is the only reason.
    hub = make_hub(db_path, settings=PolicySettings(max_fallbacks=1))
    _, conv = _say(hub, db_path, "what is my points total for my membership?")
    hub.close()
    assert conv["state"] == "waiting"
    assert "bot_fallback" in conv["reasons"]


def test_a_calm_ping_while_waiting_keeps_the_badge_that_sent_it_to_the_queue(db_path: Path) -> None:
    hub = make_hub(db_path)
    cid, conv = _say(
        hub, db_path, "why is my account restricted?? this is ridiculous, I need my money"
    )
    assert conv["state"] == "waiting"
    sent_with, why = conv["level"], set(conv["reasons"])
    assert sent_with in ("empathy", "urgent") and why
    _, conv = _say(hub, db_path, "hello??", cid)
    assert conv["level"] == sent_with
    assert why <= set(conv["reasons"])
    # Once a person has it, the badge follows the customer again.
    with Store(db_path) as store:
        lc.claim(store, cid, "ana")
    _, conv = _say(hub, db_path, "ok thanks, all good now", cid)
    hub.close()
    assert conv["state"] == "human"
    assert conv["level"] in ("calm", "watch")
