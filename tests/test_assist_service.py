"""DraftService against the store and a fake OpenAI-compatible server (real client, real HTTP)."""

from __future__ import annotations

import json
import signal

import pytest
from fake_openai import FakeOpenAI, fake_process
from test_assist_helpers import conversation, seed_kb

from console.assist.llm_engine import CitationFilter, build_messages
from console.assist.service import DraftFinished, DraftReset, DraftService, DraftStarted, DraftText
from console.config import LLMConfig
from console.llm import CHARS_PER_TOKEN, LLM
from store import Store, drafts, lifecycle

CARD = "4111 1111 1111 1111"
IBAN = "GB82 WEST 1234 5698 7654 32"
EMAIL = "maya.patel@example.com"
PHONE = "+44 20 7946 0958"


def _llm(fake: FakeOpenAI, timeout: float = 30.0) -> LLM:
    return LLM(LLMConfig(base_url=fake.base_url, api_key="k", model="fake-model", timeout=timeout))


async def _run(service: DraftService, cid: int, **kw: object) -> list[object]:
    return [event async for event in service.draft(cid, **kw)]  # type: ignore[arg-type]


def _refund_conversation(store: Store) -> int:
    seed_kb(store)
    return conversation(
        store,
        "Maya Patel",
        [
            ("customer", f"my refund never came. card {CARD}, iban {IBAN}"),
            ("bot", "Merchant refunds usually reach your account within 3 to 5 working days."),
            (
                "customer",
                f"It's been two weeks!! email me at {EMAIL} or call {PHONE}, where is my refund",
            ),
        ],
        reasons=["frustration", "repeat_question"],
    )


async def test_embedded_draft_is_streamed_and_logged(store: Store) -> None:
    cid = _refund_conversation(store)
    service = DraftService(store, agent="ana")
    events = await _run(service, cid)
    assert isinstance(events[0], DraftStarted) and events[0].engine == "embedded"
    texts = [e.text for e in events if isinstance(e, DraftText)]
    assert len(texts) > 2  # sentence by sentence, not one blob
    done = events[-1]
    assert isinstance(done, DraftFinished) and not done.stale and done.notice is None
    assert done.text == "".join(texts) and done.kb_ids == ("KB-T01",)
    row = drafts.get_draft(store, done.draft_id)
    assert row["engine"] == "embedded" and row["text"] == done.text and row["outcome"] == "pending"
    assert row["first_text_ms"] is not None and row["total_ms"] >= row["first_text_ms"]
    assert row["based_on_message_id"] == drafts.latest_customer_message_id(store, cid)


async def test_llm_draft_streams_cites_and_hides_sources(
    store: Store, fake_openai: FakeOpenAI
) -> None:
    cid = _refund_conversation(store)
    fake_openai.reply = (
        "Hi Maya, I'm sorry it has taken this long. I'm chasing the shop's refund "
        "for you now [KB-T01].\nSources: KB-T01"
    )
    fake_openai.chunk_delay = 0.01
    service = DraftService(store, agent="ana", llm=_llm(fake_openai))
    events = await _run(service, cid)
    started, done = events[0], events[-1]
    assert (
        isinstance(started, DraftStarted)
        and started.engine == "llm"
        and started.model == "fake-model"
    )
    texts = [e.text for e in events if isinstance(e, DraftText)]
    assert len(texts) > 3
    assert isinstance(done, DraftFinished) and done.engine == "llm"
    assert (
        done.text
        == "Hi Maya, I'm sorry it has taken this long. I'm chasing the shop's refund for you now."
    )
    assert done.kb_ids == ("KB-T01",)
    row = drafts.get_draft(store, done.draft_id)
    assert (row["engine"], row["model"], row["kb_ids"]) == ("llm", "fake-model", ["KB-T01"])


async def test_request_has_kb_and_reasons_but_no_personal_data(
    store: Store, fake_openai: FakeOpenAI
) -> None:
    cid = _refund_conversation(store)
    await _run(DraftService(store, agent="ana", llm=_llm(fake_openai)), cid)
    sent = fake_openai.all_text()
    for secret in (CARD, IBAN, EMAIL, PHONE, CARD.replace(" ", ""), "7946 0958"):
        assert secret not in sent
    assert "[card]" in sent and "[iban]" in sent and "[email]" in sent and "[phone]" in sent
    assert "KB-T01" in sent and "Merchant refunds usually reach your account" in sent
    assert "frustration" in sent and "repeat_question" in sent
    assert "where is my refund" in sent  # the transcript itself is there


async def test_timeout_falls_back_with_notice(store: Store, fake_openai: FakeOpenAI) -> None:
    cid = _refund_conversation(store)
    fake_openai.delay = 2.0
    service = DraftService(store, agent="ana", llm=_llm(fake_openai), llm_timeout=0.3)
    events = await _run(service, cid)
    done = events[-1]
    assert isinstance(done, DraftFinished) and done.engine == "embedded" and done.model is None
    assert done.notice and "0.3s" in done.notice and "offline" in done.notice
    assert done.text.startswith(("Hi Maya", "Hello Maya"))
    row = drafts.get_draft(store, done.draft_id)
    assert row["engine"] == "embedded" and row["notice"] == done.notice
    # The wait on the LLM is its own figure; the embedded engine's first text is its own time.
    assert row["llm_lost_ms"] == done.llm_lost_ms and row["llm_lost_ms"] >= 300
    assert row["first_text_ms"] == done.first_text_ms < row["llm_lost_ms"]


async def test_unreachable_and_failing_endpoints_fall_back(
    store: Store, fake_openai: FakeOpenAI
) -> None:
    cid = _refund_conversation(store)
    fake_openai.status = 500
    done = (await _run(DraftService(store, agent="ana", llm=_llm(fake_openai)), cid))[-1]
    assert (
        isinstance(done, DraftFinished)
        and done.engine == "embedded"
        and "500" in (done.notice or "")
    )
    dead = LLM(LLMConfig(base_url="http://127.0.0.1:9/v1", model="m", timeout=2))
    done = (await _run(DraftService(store, agent="ana", llm=dead), cid))[-1]
    assert (
        isinstance(done, DraftFinished)
        and done.engine == "embedded"
        and "reach" in (done.notice or "")
    )


async def test_mid_stream_failure_resets_then_falls_back(
    store: Store, fake_openai: FakeOpenAI
) -> None:
    cid = _refund_conversation(store)
    # Words arrive 0.25 s apart and the gap allowed is 0.4 s: then the server stalls.
    fake_openai.reply = "Hi Maya, let me check."
    fake_openai.chunk_delay = 0.25
    service = DraftService(store, agent="ana", llm=_llm(fake_openai), llm_timeout=0.4)
    events = []
    async for event in service.draft(cid):
        events.append(event)
        if (
            isinstance(event, DraftText)
            and service.engine == "llm"
            and not any(isinstance(e, DraftReset) for e in events)
        ):
            fake_openai.chunk_delay = 1.0  # the next gap is longer than the timeout
    kinds = [type(e).__name__ for e in events]
    assert "DraftReset" in kinds, kinds
    reset_at = kinds.index("DraftReset")
    assert "DraftText" in kinds[:reset_at]  # some LLM text had been shown
    done = events[-1]
    assert isinstance(done, DraftFinished) and done.engine == "embedded"
    assert done.text == "".join(e.text for e in events[reset_at:] if isinstance(e, DraftText))


async def test_draft_goes_stale_when_the_customer_writes(
    store: Store, fake_openai: FakeOpenAI
) -> None:
    cid = _refund_conversation(store)
    fake_openai.chunk_delay = 0.02
    service = DraftService(store, agent="ana", llm=_llm(fake_openai))
    events = []
    async for event in service.draft(cid):
        events.append(event)
        if isinstance(event, DraftStarted):
            lifecycle.add_customer_message(store, cid, "hello? anyone?")
    done = events[-1]
    assert isinstance(done, DraftFinished) and done.stale
    assert drafts.get_draft(store, done.draft_id)["outcome"] == "stale"
    # A finished pending draft becomes stale on the next customer message.
    fresh = (await _run(service, cid))[-1]
    assert isinstance(fresh, DraftFinished) and not fresh.stale
    lifecycle.add_customer_message(store, cid, "still there?")
    assert service.mark_stale(cid) == [fresh.draft_id]
    assert service.is_stale(fresh.draft_id)


async def test_regenerate_changes_wording_and_logs_instruction(store: Store) -> None:
    cid = _refund_conversation(store)
    service = DraftService(store, agent="ana")
    first = (await _run(service, cid))[-1]
    assert isinstance(first, DraftFinished)
    service.discard(first.draft_id)
    short = (await _run(service, cid, instruction="shorter"))[-1]
    assert isinstance(short, DraftFinished) and len(short.text) < len(first.text)
    row = drafts.get_draft(store, short.draft_id)
    assert row["instruction"] == "shorter"
    assert drafts.get_draft(store, first.draft_id)["outcome"] == "discarded"


async def test_closing_the_stream_early_still_logs(store: Store) -> None:
    cid = _refund_conversation(store)
    service = DraftService(store, agent="ana")
    stream = service.draft(cid)
    started = await stream.__anext__()
    first = await stream.__anext__()
    await stream.aclose()
    assert isinstance(started, DraftStarted) and isinstance(first, DraftText)
    row = drafts.get_draft(store, started.draft_id)
    assert row["text"] == first.text and row["total_ms"] is not None and row["outcome"] == "pending"


async def test_sent_and_metrics(store: Store) -> None:
    cid = _refund_conversation(store)
    service = DraftService(store, agent="ana")
    done = (await _run(service, cid))[-1]
    assert isinstance(done, DraftFinished)
    mid = lifecycle.agent_reply(store, cid, "ana", done.text + " Thanks!", draft_id=done.draft_id)
    assert service.sent(done.draft_id, done.text + " Thanks!", message_id=mid) == "edited"
    m = service.metrics()
    assert m.by_outcome["edited"] == 1 and m.mean_edit_distance == 8.0 and m.acceptance_rate == 1.0
    assert "embedded" in m.first_text_by_engine


def test_prompt_carries_guidance_and_instruction(store: Store) -> None:
    from console.assist.context import build_context

    cid = _refund_conversation(store)
    ctx = build_context(store, cid, agent="ana", instruction="more formal")
    messages = build_messages(ctx)
    system, user = messages[0]["content"], messages[1]["content"]
    assert "repeat themselves" in system and "[KB-T01]" in system and "Sources:" in system
    assert "more formal" in user and "Customer: " in user and "Bot: " in user
    assert json.dumps(messages)  # plain JSON-able content


@pytest.mark.parametrize(
    "chunks,text,cited",
    [
        (["Hi", " Maya", " [KB-", "T01]", ".", "\nSour", "ces: KB-T01"], "Hi Maya.", ["KB-T01"]),
        (["Order (ref 123) is ", "fine.", "\n**Sources:** none"], "Order (ref 123) is fine.", []),
        (["So", " sorry", " about that."], "So sorry about that.", []),
    ],
)
def test_citation_filter(chunks: list[str], text: str, cited: list[str]) -> None:
    f = CitationFilter(["KB-T01"])
    out = "".join(f.feed(c) for c in chunks) + f.close()
    assert out == text and f.cited == cited


async def test_model_output_cannot_pass_terminal_escapes(
    store: Store, fake_openai: FakeOpenAI
) -> None:
    cid = _refund_conversation(store)
    # The fake streams word by word: the title's escape arrives in two pieces. Seen by hand:
    # an escape's "[31m" or the rest of a split one stayed in the draft as text.
    fake_openai.reply = "Hi \x1b[2J\x1b]0;pwned title\x07Maya, \x07all \x1b[31mgood\x1b[0m."
    done = (await _run(DraftService(store, agent="ana", llm=_llm(fake_openai)), cid))[-1]
    assert isinstance(done, DraftFinished) and done.engine == "llm"
    assert done.text == "Hi Maya, all good."


@pytest.mark.parametrize(
    "chunks,text,cited,invented",
    [
        (
            ["Hi Maya [KB-T09].", "\nSources: KB-T01, KB-T07"],
            "Hi Maya.",
            ["KB-T01"],
            ["KB-T09", "KB-T07"],
        ),
        (["Order [12345] is fine."], "Order [12345] is fine.", [], []),
    ],
)
def test_citation_filter_takes_out_ids_it_was_not_given(
    chunks: list[str], text: str, cited: list[str], invented: list[str]
) -> None:
    f = CitationFilter(["KB-T01", "KB-T02"])
    out = "".join(f.feed(c) for c in chunks) + f.close()
    assert out == text and f.cited == cited and f.invented == invented


async def test_an_invented_citation_never_reaches_the_draft(
    store: Store, fake_openai: FakeOpenAI
) -> None:
    cid = _refund_conversation(store)
    fake_openai.reply = "Refunds take 3 to 5 working days [KB-T09].\nSources: KB-T01, KB-T09"
    done = (await _run(DraftService(store, agent="ana", llm=_llm(fake_openai)), cid))[-1]
    assert isinstance(done, DraftFinished) and done.engine == "llm"
    assert "KB-T09" not in done.text and done.kb_ids == ("KB-T01",)
    assert "cited KB-T09, which it was not given" in (done.notice or "")
    assert drafts.get_draft(store, done.draft_id)["kb_ids"] == ["KB-T01"]


@pytest.mark.parametrize(
    ("knob", "value", "why"),
    [
        ("finish_reason", "length", "token limit"),
        ("finish_reason", None, "without a finish reason"),
        ("cut_after", 4, "without a finish reason"),
    ],
)
async def test_a_stream_without_a_proper_finish_is_marked_incomplete(
    store: Store, fake_openai: FakeOpenAI, knob: str, value: object, why: str
) -> None:
    cid = _refund_conversation(store)
    fake_openai.reply = (
        "Hi Maya, I'm sorry the refund is late. It usually takes 3 to 5 working days."
    )
    setattr(fake_openai, knob, value)
    events = await _run(DraftService(store, agent="ana", llm=_llm(fake_openai)), cid)
    done = events[-1]
    assert isinstance(done, DraftFinished) and done.engine == "llm"
    assert not any(isinstance(e, DraftReset) for e in events)  # the partial text stays
    assert done.text and done.incomplete and why in done.incomplete
    if knob == "cut_after":
        assert done.text == "Hi Maya, I'm sorry"
    row = drafts.get_draft(store, done.draft_id)
    assert row["incomplete"] == done.incomplete and row["text"] == done.text


async def test_an_endpoint_that_ignores_max_tokens_is_cut_and_the_draft_marked_incomplete(
    store: Store, fake_openai: FakeOpenAI
) -> None:
    # Seen by hand: a server streaming a megabyte filled the console's editor for minutes.
    cid = _refund_conversation(store)
    fake_openai.reply = "Hi Maya, " + "the refund is on its way. " * 20_000  # finishes "stop"
    events = await _run(DraftService(store, agent="ana", llm=_llm(fake_openai)), cid)
    done = events[-1]
    assert isinstance(done, DraftFinished) and done.engine == "llm"
    assert fake_openai.last["max_tokens"] == 400
    assert done.text.startswith("Hi Maya,") and len(done.text) <= 400 * CHARS_PER_TOKEN
    assert done.incomplete and "past its limit of 400 tokens" in done.incomplete
    assert drafts.get_draft(store, done.draft_id)["incomplete"] == done.incomplete


async def test_a_draft_asking_for_secrets_or_naming_an_account_says_so(
    store: Store, fake_openai: FakeOpenAI
) -> None:
    # Seen by hand: a model's draft asked for the card number and PIN and for 500 EUR to an
    # IBAN; the console showed it with no word of warning.
    cid = _refund_conversation(store)
    fake_openai.reply = (
        "Hi Maya, please send 500 EUR to IBAN GB33BUKB20201555555555 to release the refund, "
        "and reply with your full card number and PIN."
    )
    done = (await _run(DraftService(store, agent="ana", llm=_llm(fake_openai)), cid))[-1]
    assert isinstance(done, DraftFinished) and done.engine == "llm"
    assert done.text == fake_openai.reply  # the agent reads it and decides; nothing is sent
    assert done.notice == (
        "the draft asks the customer for their full card number: we never ask for it; "
        "the draft holds an IBAN no article gave: check it"
    )
    assert drafts.get_draft(store, done.draft_id)["notice"] == done.notice
    fake_openai.reply = "Hi Maya, never share your PIN: your refund is on its way."
    done = (await _run(DraftService(store, agent="ana", llm=_llm(fake_openai)), cid))[-1]
    assert isinstance(done, DraftFinished) and done.engine == "llm" and done.notice is None


async def test_a_server_killed_mid_stream_leaves_the_draft_marked_incomplete(
    store: Store,
) -> None:
    cid = _refund_conversation(store)
    words = "Hi Maya, I'm sorry the refund is late; it usually takes 3 to 5 working days."
    with fake_process(reply=words, chunk_delay=0.3) as (proc, url):
        llm = LLM(LLMConfig(base_url=url, model="m", timeout=10))
        events = []
        async for event in DraftService(store, agent="ana", llm=llm).draft(cid):
            events.append(event)
            if isinstance(event, DraftText) and len(events) == 3:
                proc.send_signal(signal.SIGTERM)  # the server stops half-way through the reply
    done = events[-1]
    assert isinstance(done, DraftFinished) and done.engine == "llm" and done.incomplete
    assert done.text and words.startswith(done.text) and done.text != words
    assert drafts.get_draft(store, done.draft_id)["incomplete"] == done.incomplete
