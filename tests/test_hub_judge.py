"""The hub asks the LLM judge before the bot answers (issue 12): budget, late verdicts, floors."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

from fake_openai import FakeOpenAI

from console.config import LLMConfig
from console.hub import make_hub
from console.llm import LLM
from console.triage.judge import Judge
from store import Store
from store import lifecycle as lc
from store.queries import get_conversation, transcript


def _judge(fake: FakeOpenAI) -> Judge:
    return Judge(LLM(LLMConfig(base_url=fake.base_url, model="fake", timeout=5)))


async def _until(check, timeout: float = 8.0) -> None:  # noqa: ANN001 - a zero-argument predicate
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return
        await asyncio.sleep(0.02)
    raise AssertionError("condition not met within the deadline")


async def _run(hub, body) -> None:  # noqa: ANN001 - the hub and a coroutine function
    stop = asyncio.Event()
    runner = asyncio.create_task(hub.run(stop, idle_sleep=0.01))
    try:
        await body()
    finally:
        stop.set()
        await runner


def _has_bot(store: Store, cid: int) -> bool:
    return any(m["role"] == "bot" for m in transcript(store, cid))


async def test_an_opinion_within_the_budget_raises_before_the_bot_answers(
    db_path: Path, store: Store, fake_openai: FakeOpenAI
) -> None:
    fake_openai.judge_args = {
        "level": "empathy",
        "reasons": ["vulnerability"],
        "why": "Sounds hopeless and alone.",
    }
    judge = _judge(fake_openai)
    hub = make_hub(db_path, judge=judge, judge_budget=30.0)
    cid = lc.open_conversation(store, "Robin")
    lc.add_customer_message(
        store, cid, "whatever, nothing really matters anymore. card 4111 1111 1111 1111"
    )

    async def body() -> None:
        await _until(lambda: get_conversation(store, cid)["state"] == "waiting")

    await _run(hub, body)
    conv = get_conversation(store, cid)
    assert conv["level"] == "empathy" and "vulnerability" in conv["reasons"]
    assert conv["model_reasons"] == ["vulnerability"]
    assert conv["model_why"] == "Sounds hopeless and alone."
    assert conv["lang"] == "en"
    assert not _has_bot(store, cid)  # a person answers, not the bot
    assert "4111 1111 1111 1111" not in fake_openai.judge_text()
    assert judge.stats.asked == 1 and judge.stats.raised == 1


async def test_a_late_opinion_still_raises_the_conversation(
    db_path: Path, store: Store, fake_openai: FakeOpenAI
) -> None:
    fake_openai.judge_args = {"level": "empathy", "reasons": ["financial_hardship"], "why": "Rent."}
    fake_openai.judge_delay = 2.0
    hub = make_hub(db_path, judge=_judge(fake_openai), judge_budget=0.1)
    cid = lc.open_conversation(store, "Sam")
    lc.add_customer_message(store, cid, "how do I see what I owe this month?")

    async def body() -> None:
        # The bot did not wait for the slow model...
        await _until(lambda: _has_bot(store, cid))
        # ...and the opinion, when it came, still sent the customer to a person.
        await _until(lambda: get_conversation(store, cid)["state"] == "waiting")

    await _run(hub, body)
    conv = get_conversation(store, cid)
    assert conv["level"] == "empathy" and conv["model_reasons"] == ["financial_hardship"]
    assert hub.stats.judge_late == 1


async def test_urgent_is_not_sent_and_a_calm_opinion_lowers_nothing(
    db_path: Path, store: Store, fake_openai: FakeOpenAI
) -> None:
    fake_openai.judge_args = {"level": "calm", "reasons": [], "why": "routine"}
    judge = _judge(fake_openai)
    hub = make_hub(db_path, judge=judge, judge_budget=30.0)
    fraud = lc.open_conversation(store, "Alex")
    lc.add_customer_message(store, fraud, "someone stole my card and emptied my account")
    person = lc.open_conversation(store, "Kim")
    lc.add_customer_message(store, person, "I want to speak to a real person please")

    async def body() -> None:
        await _until(
            lambda: all(get_conversation(store, c)["state"] == "waiting" for c in (fraud, person))
        )

    await _run(hub, body)
    assert get_conversation(store, fraud)["level"] == "urgent"
    assert get_conversation(store, person)["level"] == "empathy"
    # The offline engine already escalates both: the bot was never about to answer, and the
    # urgent fraud report was never sent to the model.
    assert all("stole" not in str(b) for b in fake_openai.judge_requests)


async def test_malformed_opinions_are_ignored_and_the_bot_answers(
    db_path: Path, store: Store, fake_openai: FakeOpenAI
) -> None:
    fake_openai.judge_reply = "Honestly, I would say the customer seems fine."
    judge = _judge(fake_openai)
    hub = make_hub(db_path, judge=judge, judge_budget=30.0)
    cid = lc.open_conversation(store, "Ana")
    lc.add_customer_message(store, cid, "what are the fees for paying in euros?")

    async def body() -> None:
        await _until(lambda: _has_bot(store, cid))

    await _run(hub, body)
    assert get_conversation(store, cid)["state"] == "bot"
    assert judge.stats.malformed == 1 and judge.stats.raised == 0


def test_the_budget_is_configurable() -> None:
    from console.config import ConfigError, load_config

    assert load_config(env={}).judge_budget == 1.5
    assert load_config(env={"TANDEM_JUDGE_BUDGET": "0.4"}).judge_budget == 0.4
    for bad in ("soon", "-1", "999"):
        try:
            load_config(env={"TANDEM_JUDGE_BUDGET": bad})
        except ConfigError as exc:
            assert "TANDEM_JUDGE_BUDGET" in str(exc)
        else:
            raise AssertionError(f"{bad!r} was accepted")
