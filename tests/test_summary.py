"""The hand-over summary: extractive offline, checked when an LLM writes it."""

from __future__ import annotations

from fake_openai import FakeOpenAI

from console.assist.context import RECENT_MESSAGES, DraftContext, Turn
from console.assist.summary import embedded_summary, key_sentences, summarize, summary_for
from console.config import LLMConfig
from console.llm import LLM
from store import Store, lifecycle


def _ctx(
    turns: list[tuple[str, str]],
    reasons: tuple[str, ...] = (),
    level: str = "calm",
    kb: tuple[str, ...] = (),
) -> DraftContext:
    return DraftContext(
        conversation_id=1,
        customer_name="Maya",
        agent="ana",
        turns=tuple(
            Turn(role, text, i, kb if role == "bot" else ()) for i, (role, text) in enumerate(turns)
        ),
        reasons=reasons,
        level=level,
    )


FRAUD = _ctx(
    [
        ("customer", "hi"),
        ("bot", "Hi Maya! How can I help?"),
        ("customer", "There is a payment of 49.99 I did not make. Can you stop it?"),
        ("bot", "I'm not sure about that one, and I'd rather not guess."),
        ("customer", "this is really worrying, please hurry"),
    ],
    reasons=("fraud", "negative_sentiment"),
    level="urgent",
    kb=("KB-007",),
)


def test_embedded_names_the_request_and_the_reasons_in_the_customers_words() -> None:
    s = embedded_summary(FRAUD, {"KB-007": "Card payments you don't recognise"})
    assert "49.99 I did not make" in s.wants  # quoted, not paraphrased
    assert "hi" not in s.quotes  # a greeting is never the request
    assert "2 replies" in s.tried and "Card payments you don't recognise" in s.tried
    assert "did not know 1 time" in s.tried
    assert s.feeling.startswith("reporting fraud, unhappy") and "(urgent)" in s.feeling
    assert s.engine == "embedded" and s.reasons == ("fraud", "negative_sentiment")


def test_embedded_never_invents_every_quote_is_the_customers() -> None:
    ctx = _ctx(
        [
            ("customer", "My husband died last month. I need to close his account."),
            ("bot", "I'm sorry for your loss."),
            ("customer", "How do I do that? Nobody answers the phone."),
        ],
        reasons=("bereavement",),
        level="empathy",
    )
    s = embedded_summary(ctx)
    customer_text = " ".join(t.text for t in ctx.turns if t.role == "customer")
    assert s.quotes and all(q in customer_text for q in s.quotes)
    assert "bereaved" in s.feeling
    assert "1 reply" in s.tried and "citing" not in s.tried  # the bot cited nothing


def test_empty_and_hostile_text() -> None:
    empty = embedded_summary(_ctx([]))
    assert empty.wants == "nothing written yet" and empty.tried == "the bot has not answered"
    hostile = embedded_summary(
        _ctx([("customer", "I need help with [b]this[/b] \x1b[31mnow\x1b[0m please?")])
    )
    assert "\x1b" not in hostile.wants and "[b]this[/b]" in hostile.wants  # shown as text
    assert len(embedded_summary(_ctx([("customer", "why " * 500 + "?")])).wants) <= 240


def test_key_sentences_prefers_requests_over_chatter() -> None:
    texts = ["hello", "ok", "I want to move money to my savings account. It says error 5."]
    assert key_sentences(texts) == [
        "I want to move money to my savings account.",
        "It says error 5.",
    ]
    # Seen in the demo: the customer's last words while waiting were quoted as their request.
    waiting = ["What should I do if someone is using my card?", "ok I'll wait"]
    assert key_sentences(waiting) == ["What should I do if someone is using my card?"]


async def test_llm_summary_is_used_when_it_checks_out(fake_openai: FakeOpenAI) -> None:
    fake_openai.tool_args = {
        "wants": "to stop a payment of 49.99 they did not make",
        "tried": "the bot said it was not sure",
        "feeling": "worried, wants it fast",
    }
    llm = LLM(LLMConfig(base_url=fake_openai.base_url, api_key="k", model="m", timeout=5))
    s = await summarize(FRAUD, llm=llm)
    assert s.engine == "llm" and s.wants.startswith("to stop a payment of 49.99")
    assert s.reasons == ("fraud", "negative_sentiment")


async def test_llm_summary_with_an_invented_amount_falls_back(fake_openai: FakeOpenAI) -> None:
    fake_openai.tool_args = {
        "wants": "a refund of 120 pounds",
        "tried": "nothing",
        "feeling": "angry",
    }
    llm = LLM(LLMConfig(base_url=fake_openai.base_url, api_key="k", model="m", timeout=5))
    s = await summarize(FRAUD, llm=llm)
    assert s.engine == "embedded"
    assert s.notice and "120" in s.notice
    assert "49.99 I did not make" in s.wants


async def test_llm_summary_malformed_or_failing_falls_back(fake_openai: FakeOpenAI) -> None:
    llm = LLM(LLMConfig(base_url=fake_openai.base_url, api_key="k", model="m", timeout=5))
    fake_openai.tool_args = {"wants": "", "tried": "x", "feeling": "y"}
    s = await summarize(FRAUD, llm=llm)
    assert s.engine == "embedded" and "empty" in (s.notice or "")

    fake_openai.tool_args = {"wants": "only this"}  # missing keys
    s = await summarize(FRAUD, llm=llm)
    assert s.engine == "embedded" and s.notice

    fake_openai.status = 500
    s = await summarize(FRAUD, llm=llm)
    assert s.engine == "embedded" and "unavailable" in (s.notice or "")


async def test_what_is_sent_to_the_llm_is_redacted(fake_openai: FakeOpenAI) -> None:
    ctx = _ctx([("customer", "my card 4111 1111 1111 1111 was charged twice, can you help?")])
    fake_openai.tool_args = {
        "wants": "help with a double charge",
        "tried": "none",
        "feeling": "annoyed",
    }
    llm = LLM(LLMConfig(base_url=fake_openai.base_url, api_key="k", model="m", timeout=5))
    await summarize(ctx, llm=llm)
    sent = str(fake_openai.requests[-1])
    assert "4111 1111 1111 1111" not in sent


def _hub_fallback(store: Store, cid: int, mid: int, text: str) -> None:
    """A reply in which the bot did not know, posted as the hub posts it (counted, marked)."""
    meta = {"engine": "embedded", "intent": "fallback", "fallback": True}
    lifecycle.bot_reply(store, cid, text, reply_to=mid, fallback=True, meta=meta)


def _escalate(store: Store, cid: int, mid: int, reasons: list[str]) -> None:
    mark = lifecycle.TriageMark("watch", 0.5, reasons)
    lifecycle.escalate(
        store,
        cid,
        reasons=reasons,
        level="watch",
        triage=mark,
        message_id=mid,
        message="I'm passing you to a person on our team.",
    )


def test_bot_so_far_counts_a_fallback_the_header_counts(store: Store) -> None:
    # Seen in the demo: the header said "bot fallbacks 1" and the panel did not. The bot's
    # other fallback wording has none of the words the summary looked for.
    cid = lifecycle.open_conversation(store, "Maya")
    mid = lifecycle.add_customer_message(store, cid, "ok and then what do I press?").message_id
    _hub_fallback(
        store,
        cid,
        mid,
        "I don't have a reliable answer to that, I'm afraid. Could you put it another way?",
    )
    mid = lifecycle.add_customer_message(store, cid, "sorry I don't follow").message_id
    _escalate(store, cid, mid, ["bot_fallback"])
    assert summary_for(store, cid, agent="ana").tried == "1 reply; said it did not know 1 time"

    # Posted without the mark, in words of its own: the conversation's count still says it.
    other = lifecycle.open_conversation(store, "Ben")
    mid = lifecycle.add_customer_message(store, other, "can I pay my rent with pay in 3").message_id
    lifecycle.bot_reply(
        store, other, "That one is outside what I can do.", reply_to=mid, fallback=True
    )
    assert "said it did not know 1 time" in summary_for(store, other, agent="ana").tried


def test_bot_so_far_when_its_replies_are_older_than_the_transcript_read(store: Store) -> None:
    cid = lifecycle.open_conversation(store, "Maya")
    mid = lifecycle.add_customer_message(
        store, cid, "where is my transfer to my landlord?"
    ).message_id
    _hub_fallback(store, cid, mid, "I'm not sure about that one, and I'd rather not guess.")
    mid = lifecycle.add_customer_message(store, cid, "hello??").message_id
    _escalate(store, cid, mid, ["bot_fallback"])
    for i in range(RECENT_MESSAGES):
        lifecycle.add_customer_message(store, cid, f"still waiting ({i})")
    tried = summary_for(store, cid, agent="ana").tried
    assert "has not answered" not in tried and "said it did not know 1 time" in tried, tried


def test_bot_so_far_when_the_bot_never_replied(store: Store) -> None:
    asked = lifecycle.open_conversation(store, "Maya")
    mid = lifecycle.add_customer_message(
        store, asked, "I'm fed up. I want a real person now"
    ).message_id
    _escalate(store, asked, mid, ["frustration", "human_request"])
    assert summary_for(store, asked, agent="ana").tried == "the bot has not answered"

    # The hand-over notice said it could not answer, in place of the bot's reply.
    unsure = lifecycle.open_conversation(store, "Ben")
    mid = lifecycle.add_customer_message(
        store, unsure, "what is the IBAN of my Plus pot"
    ).message_id
    _escalate(store, unsure, mid, ["bot_fallback"])
    assert (
        summary_for(store, unsure, agent="ana").tried == "the bot could not answer and handed over"
    )
