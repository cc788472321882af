"""The hand-over summary: extractive offline, checked when an LLM writes it."""

from __future__ import annotations

from fake_openai import FakeOpenAI

from console.assist.context import DraftContext, Turn
from console.assist.summary import embedded_summary, key_sentences, summarize
from console.config import LLMConfig
from console.llm import LLM


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
    assert "2 answers" in s.tried and "Card payments you don't recognise" in s.tried
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
    assert "1 answer" in s.tried and "citing" not in s.tried  # the bot cited nothing


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
