"""A misbehaving LLM through the hub (real client, real HTTP, a real SQLite file).

Each misbehaviour is scripted on the fake OpenAI-compatible server; each must be caught: the
customer gets a grounded answer or a person, and the agent sees why (the turn's annotation,
the conversation's count and badge, one log line).
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import pytest
from fake_openai import FakeOpenAI

from console.config import LLMConfig
from console.hub import make_hub
from store import Store
from store import lifecycle as lc
from store.queries import get_conversation, transcript

ROUTINE = "I lost my card"  # the knowledge base answers it (KB-008); triage calm
UNCOVERED = "my landlord says my rent payment bounced"  # no article answers it


async def _ask(
    db_path: Path, store: Store, fake: FakeOpenAI, text: str, caplog: pytest.LogCaptureFixture
) -> tuple[int, list[dict[str, Any]]]:
    hub = make_hub(
        db_path, llm=LLMConfig(base_url=fake.base_url, api_key="k", model="fake-1", timeout=30)
    )
    cid = lc.open_conversation(store, "Maya")
    lc.add_customer_message(store, cid, text)
    with caplog.at_level(logging.INFO, logger="tandem.hub.llm"):
        await hub.drain()
    hub.close()
    return cid, transcript(store, cid)


@pytest.mark.parametrize(
    ("text", "llm", "finish", "why", "problem"),
    [
        pytest.param(
            ROUTINE,
            {"reply": "A colleague will sort this out.", "handoff": True},
            "stop",
            "handoff_overruled",
            None,
            id="hand-off without a reason",
        ),
        pytest.param(
            ROUTINE,
            {"reply": "Pass me on.", "handoff": True, "handoff_reason": "out_of_scope"},
            "stop",
            "handoff_overruled",
            None,
            id="hand-off on a question the KB answers",
        ),
        pytest.param(
            "how much can I top up by debit card",
            {"reply": "You can top up £2,000 a month.", "handoff": False, "kb_ids": ["KB-015"]},
            "stop",
            "ungrounded",
            "amount £2,000 is not in KB-015",
            id="ungrounded amount",
        ),
        pytest.param(
            "How do I add my card to Google Pay?",
            {
                "reply": "Open the Wallet app and add your card to Apple Pay.",
                "handoff": False,
                "kb_ids": ["KB-011"],
            },
            "stop",
            "ungrounded",
            "answers about Apple Pay; the customer asked about Google Pay",
            id="wrong product steps",
        ),
        pytest.param(
            "How do I freeze my card?",
            {"reply": "Tap Freeze in the Card tab.", "handoff": False, "kb_ids": ["KB-031"]},
            "stop",
            "ungrounded",
            "cites KB-031, which it was not given",
            id="invented citation",
        ),
        pytest.param(
            "How do I freeze my card?",
            {"reply": "Tap Freeze in the", "handoff": False, "kb_ids": ["KB-007"]},
            "length",
            "incomplete",
            None,
            id="truncated reply",
        ),
    ],
)
async def test_the_customer_gets_a_grounded_answer_and_the_agent_sees_why(
    db_path: Path,
    store: Store,
    fake_openai: FakeOpenAI,
    caplog: pytest.LogCaptureFixture,
    text: str,
    llm: dict[str, Any],
    finish: str,
    why: str,
    problem: str | None,
) -> None:
    fake_openai.tool_args = llm
    fake_openai.finish_reason = finish
    cid, messages = await _ask(db_path, store, fake_openai, text, caplog)
    assert fake_openai.requests, "the model was asked"
    bot = messages[-1]
    # The customer got the embedded bot's answer from an article, never the model's words.
    assert [m["role"] for m in messages] == ["customer", "bot"]
    assert bot["meta"]["engine"] == "embedded" and bot["meta"]["kb"]
    assert bot["text"] != llm["reply"] and llm["reply"] not in bot["text"]
    # The agent sees why: on the turn, as a count on the conversation, in the hub's log.
    assert bot["meta"]["llm_fallback"] == why and bot["meta"]["notice"]
    if problem:
        assert problem in bot["meta"]["problems"]
    conv = get_conversation(store, cid)
    assert conv["state"] == "bot" and conv["llm_fallbacks"] == 1
    lines = [r.getMessage() for r in caplog.records if r.name == "tandem.hub.llm"]
    assert len(lines) == 1 and lines[0].startswith(f"conversation {cid}: ") and "sent" in lines[0]


async def test_ungrounded_where_the_embedded_bot_does_not_know_either_goes_to_a_person(
    db_path: Path, store: Store, fake_openai: FakeOpenAI, caplog: pytest.LogCaptureFixture
) -> None:
    fake_openai.tool_args = {
        "reply": "Your landlord will get a refund within 3 days.",
        "handoff": False,
        "known": True,
    }
    cid, messages = await _ask(db_path, store, fake_openai, UNCOVERED, caplog)
    assert [m["role"] for m in messages] == ["customer", "system"]
    notice = messages[-1]
    assert "refund" not in notice["text"] and "person" in notice["text"]
    assert notice["meta"]["llm_fallback"] == "ungrounded"
    assert "a promise (refund) is not in any cited article" in notice["meta"]["problems"]
    conv = get_conversation(store, cid)
    assert conv["state"] == "waiting" and conv["llm_fallbacks"] == 1
    assert "bot_fallback" in conv["reasons"]
    lines = [r.getMessage() for r in caplog.records if r.name == "tandem.hub.llm"]
    assert len(lines) == 1 and "to a person (bot_fallback" in lines[0]


async def test_a_hand_off_with_a_reason_and_the_evidence_reaches_the_badge(
    db_path: Path, store: Store, fake_openai: FakeOpenAI, caplog: pytest.LogCaptureFixture
) -> None:
    fake_openai.tool_args = {
        "reply": "A colleague can look at your account.",
        "handoff": True,
        "handoff_reason": "needs_account_action",
    }
    cid, messages = await _ask(db_path, store, fake_openai, UNCOVERED, caplog)
    conv = get_conversation(store, cid)
    assert conv["state"] == "waiting" and conv["reasons"][0] == "account_action"
    assert conv["llm_fallbacks"] == 0  # the model's decision was used
    notice = messages[-1]
    assert notice["role"] == "system" and notice["meta"]["notice"] == (
        "LLM handed off: needs account action"
    )
    lines = [r.getMessage() for r in caplog.records if r.name == "tandem.hub.llm"]
    assert lines == [
        f"conversation {cid}: LLM handed off (account_action); to a person (account_action)"
    ]


async def test_a_grounded_answer_is_sent_and_logged(
    db_path: Path, store: Store, fake_openai: FakeOpenAI, caplog: pytest.LogCaptureFixture
) -> None:
    fake_openai.tool_args = {
        "reply": "Freeze it straight away in the app, then report it lost or stolen.",
        "handoff": False,
        "kb_ids": ["KB-008"],
    }
    cid, messages = await _ask(db_path, store, fake_openai, ROUTINE, caplog)
    bot = messages[-1]
    assert bot["text"] == fake_openai.tool_args["reply"] and bot["meta"]["engine"] == "llm"
    assert bot["meta"]["kb"] == ["KB-008"] and "llm_fallback" not in bot["meta"]
    assert get_conversation(store, cid)["llm_fallbacks"] == 0
    lines = [r.getMessage() for r in caplog.records if r.name == "tandem.hub.llm"]
    assert lines == [f"conversation {cid}: LLM answer, grounded in KB-008; sent"]
