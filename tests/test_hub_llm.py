"""The hub with the LLM bot against a fake OpenAI-compatible server (real client, real HTTP)."""

from __future__ import annotations

import asyncio
import json
import re
import threading
import time
from pathlib import Path
from typing import Any

from fake_openai import FakeOpenAI
from waiting import wait_until_async

from console.config import LLMConfig
from console.hub import make_hub
from console.hub.conversation import STALE_AFTER_S
from store import Store
from store import lifecycle as lc
from store.queries import get_conversation, transcript


def _llm(fake: FakeOpenAI, timeout: float = 30.0) -> LLMConfig:
    return LLMConfig(base_url=fake.base_url, api_key="k", model="fake-1", timeout=timeout)


def _first_article(body: dict[str, Any]) -> list[str]:
    """The first article id the bot's prompt offered (a grounded reply cites what it was given)."""
    found = re.search(r"\[(KB-\d+)\]", body["messages"][0]["content"])
    return [found.group(1)] if found else []


def _user_text(body: dict[str, Any]) -> str:
    return " ".join(m.get("content") or "" for m in body["messages"] if m["role"] == "user")


def _bot_replied(store: Store, cid: int) -> bool:
    return any(m["role"] == "bot" for m in transcript(store, cid))


async def _wait_for_bot(store: Store, cid: int) -> None:
    await wait_until_async(lambda: _bot_replied(store, cid), what=f"the bot's reply in #{cid}")


async def test_a_slow_answer_does_not_hold_up_other_conversations(
    db_path: Path, store: Store, fake_openai: FakeOpenAI
) -> None:
    # The slow answer is held by the model until the test lets it go: no clock decides.
    slow_asked, slow_may_answer = threading.Event(), threading.Event()

    def respond(body: dict[str, Any]) -> dict[str, Any]:
        if "exchange rate" in _user_text(body):
            slow_asked.set()
            slow_may_answer.wait(timeout=60)
        return {
            "reply": "Here is what I found.",
            "handoff": False,
            "known": True,
            "kb_ids": _first_article(body),
        }

    fake_openai.responder = respond
    hub = make_hub(db_path, llm=_llm(fake_openai))
    slow = lc.open_conversation(store, "Slow")
    fast = lc.open_conversation(store, "Fast")
    lc.add_customer_message(
        store, slow, "What exchange rate do you use when I pay abroad with my card?"
    )
    stop = asyncio.Event()
    runner = asyncio.create_task(hub.run(stop, idle_sleep=0.01))
    await wait_until_async(slow_asked.is_set, what="the slow question reaching the model")
    lc.add_customer_message(store, fast, "What fees do you charge for paying abroad with my card?")
    await _wait_for_bot(store, fast)  # answered while the slow one is still held
    assert not _bot_replied(store, slow)
    slow_may_answer.set()
    await _wait_for_bot(store, slow)
    stop.set()
    await runner
    for cid in (slow, fast):
        bot = transcript(store, cid)[-1]
        assert bot["meta"]["engine"] == "llm" and bot["meta"]["model"] == "fake-1"
    # Both answered, and the cursor went past both.
    saved = store.one("SELECT event_id FROM cursors WHERE name = 'hub'")[0]
    assert (
        saved
        >= store.one("SELECT max(id) FROM events WHERE kind = 'message' AND actor = 'bot'")[0] - 1
    )


async def test_the_llm_handoff_field_escalates_with_its_reason(
    db_path: Path, store: Store, fake_openai: FakeOpenAI
) -> None:
    fake_openai.tool_args = {
        "reply": "Let me bring in a colleague who can look at this properly.",
        "handoff": True,
        "handoff_reason": "complaint_threat",
    }
    hub = make_hub(db_path, llm=_llm(fake_openai))
    cid = lc.open_conversation(store, "Maya")
    lc.add_customer_message(store, cid, "Could you have a look at the fee on my last statement?")
    await hub.drain()
    hub.close()
    assert get_conversation(store, cid)["state"] == "waiting"
    data = json.loads(
        store.one(
            "SELECT data FROM events WHERE conversation_id = ? AND kind = 'escalated'", (cid,)
        )[0]
    )
    assert data["reasons"][0] == "complaint_threat"
    assert [m["role"] for m in transcript(store, cid)] == ["customer", "system"]
    assert fake_openai.requests, "the model was asked"


async def test_an_llm_timeout_still_answers_from_the_embedded_bot(
    db_path: Path, store: Store, fake_openai: FakeOpenAI
) -> None:
    fake_openai.hold()  # the model never answers in time
    hub = make_hub(db_path, llm=_llm(fake_openai, timeout=0.5))
    cid = lc.open_conversation(store, "Maya")
    lc.add_customer_message(store, cid, "What fees do you charge for paying abroad with my card?")
    await hub.drain()
    hub.close()
    bot = transcript(store, cid)[-1]
    assert (
        bot["role"] == "bot" and bot["meta"]["engine"] == "embedded" and bot["meta"].get("notice")
    )


async def test_the_bot_sees_the_conversation_so_far_even_after_a_restart(
    db_path: Path, store: Store, fake_openai: FakeOpenAI
) -> None:
    replies = iter(
        [
            "Pay-in-3 splits a purchase into three payments.",
            "Yes, you can pay it off early.",
            "Late fees are capped.",
        ]
    )
    fake_openai.responder = lambda body: {
        "reply": next(replies),
        "handoff": False,
        "known": True,
        "kb_ids": _first_article(body),
    }
    cid = lc.open_conversation(store, "Maya")
    lc.add_customer_message(store, cid, "How does pay in 3 work?")
    hub = make_hub(db_path, llm=_llm(fake_openai))
    await hub.drain()
    lc.add_customer_message(store, cid, "Can I pay it off early?")
    await hub.drain()
    hub.close()
    seen = json.dumps(fake_openai.last["messages"])
    assert (
        "How does pay in 3 work?" in seen
        and "three payments" in seen
        and "pay it off early" in seen
    )
    # A new hub (cold cache) builds the same context from the store.
    lc.add_customer_message(store, cid, "And if I miss a payment?")
    again = make_hub(db_path, llm=_llm(fake_openai))
    await again.drain()
    again.close()
    seen = json.dumps(fake_openai.last["messages"])
    assert (
        "How does pay in 3 work?" in seen
        and "pay it off early" in seen
        and "miss a payment" in seen
    )
    assert [m["role"] for m in transcript(store, cid)] == ["customer", "bot"] * 3


async def test_a_slow_answer_overtaken_by_the_customer_is_replaced_by_one_to_the_newest(
    db_path: Path, store: Store, fake_openai: FakeOpenAI
) -> None:
    first_asked, overtaken = threading.Event(), threading.Event()

    def respond(body: dict[str, Any]) -> dict[str, Any]:
        if "Actually" not in _user_text(body) and "Actually" not in json.dumps(body["messages"]):
            first_asked.set()
            overtaken.wait(timeout=60)  # the customer writes again while this one is written
            time.sleep(STALE_AFTER_S)  # and it comes back late enough to count as slow
        return {"reply": "Here is what I found.", "handoff": False, "known": True}

    fake_openai.responder = respond
    hub = make_hub(db_path, llm=_llm(fake_openai))
    cid = lc.open_conversation(store, "Maya")
    lc.add_customer_message(store, cid, "What fees do you charge for paying abroad with my card?")
    stop = asyncio.Event()
    runner = asyncio.create_task(hub.run(stop, idle_sleep=0.01))
    await wait_until_async(first_asked.is_set, what="the first answer being written")
    lc.add_customer_message(store, cid, "Actually, what about cash withdrawals abroad?")
    overtaken.set()
    await _wait_for_bot(store, cid)
    stop.set()
    await runner
    # Everything the hub had in hand or still to read is done: a second answer would be here.
    await hub.drain()
    hub.close()
    assert len(fake_openai.requests) == 2
    msgs = transcript(store, cid)
    assert [m["role"] for m in msgs] == ["customer", "customer", "bot"]
    assert msgs[2]["reply_to"] == msgs[1]["id"]
