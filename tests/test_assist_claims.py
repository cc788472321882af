"""A draft says only what the transcript shows: "the assistant couldn't help" needs a bot that
answered (or said it could not), "you've had to explain this more than once" needs a customer
who did. Conversations are built the way the hub builds them (store.lifecycle), and the drafts
come from the public draft functions, over many seeds."""

from __future__ import annotations

import re

import pytest
from test_assist_helpers import seed_kb

from console.assist import phrases as P
from console.assist.context import build_context
from console.assist.embedded import write
from console.assist.llm_engine import build_messages
from store import Store, lifecycle

SEEDS = range(40)
# What only a bot that answered (and did not sort it out) allows a draft to say.
BOT_CLAIM = re.compile(
    r"assistant|taken longer than it should|resolved this time|read the whole conversation",
    re.IGNORECASE,
)
# What only a customer who said it again allows.
REPEAT_CLAIM = re.compile(r"more than once|repeat", re.IGNORECASE)
FALLBACK = "I'm not sure about that one, and I'd rather not guess. Could you tell me a bit more?"
NOTICE = "I'm passing you to a person on our team; you'll get a reply here."


def _customer(store: Store, cid: int, text: str) -> int:
    return lifecycle.add_customer_message(store, cid, text).message_id


def _fallback(store: Store, cid: int, mid: int) -> None:
    # As the hub posts it: counted on the conversation, marked in the message's meta.
    lifecycle.bot_reply(
        store,
        cid,
        FALLBACK,
        reply_to=mid,
        fallback=True,
        meta={"engine": "embedded", "intent": "fallback", "fallback": True},
    )


def _hand_over(store: Store, cid: int, mid: int, reasons: list[str]) -> None:
    mark = lifecycle.TriageMark("empathy", 0.7, reasons)
    lifecycle.escalate(
        store, cid, reasons=reasons, level="empathy", triage=mark, message=NOTICE, message_id=mid
    )
    lifecycle.claim(store, cid, "ana")


def _drafts(store: Store, cid: int, instruction: str | None = None) -> list[str]:
    return [
        write(build_context(store, cid, agent="ana", seed=s, instruction=instruction)).text
        for s in SEEDS
    ]


def _acks(texts: list[str], bank: tuple[str, ...]) -> set[str]:
    return {line for text in texts for line in bank if line in text}


@pytest.fixture
def kb(store: Store) -> Store:
    seed_kb(store)
    return store


def test_bot_never_answered_no_draft_says_it_failed_or_that_they_repeated(kb: Store) -> None:
    # Frustrated in the first message and asking for a person at once: the bot never spoke.
    cid = lifecycle.open_conversation(kb, "Maya Patel")
    mid = _customer(
        kb, cid, "This is ridiculous, my refund STILL isn't here. I want to talk to a real person"
    )
    _hand_over(kb, cid, mid, ["frustration", "human_request"])
    texts = _drafts(kb, cid)
    for text in texts:
        assert not BOT_CLAIM.search(text), text
        assert not REPEAT_CLAIM.search(text), text
        assert "frustrat" in text.lower(), text  # the feeling is still acknowledged
    assert len(_acks(texts, P.ACK["frustration"])) >= 2  # and not always in the same words


def test_bot_answered_with_a_fallback_the_draft_may_say_so_but_not_that_they_repeated(
    kb: Store,
) -> None:
    cid = lifecycle.open_conversation(kb, "Maya Patel")
    mid = _customer(kb, cid, "How do I get a letter confirming my address for my landlord?")
    _fallback(kb, cid, mid)
    mid = _customer(kb, cid, "this is useless, I need it today")
    _hand_over(kb, cid, mid, ["frustration", "bot_fallback"])
    texts = _drafts(kb, cid)
    for text in texts:
        assert not REPEAT_CLAIM.search(text), text
    # What happened is said (the bot fell short), in more than one wording.
    acks = _acks(texts, P.ACK["frustration"])
    assert acks <= {P.BOT_FELL_SHORT, P.TOOK_LONGER} and len(acks) == 2, acks


def test_customer_repeated_the_draft_may_say_so_and_not_blame_a_bot_that_never_spoke(
    kb: Store,
) -> None:
    # Asked twice before anyone answered; triage's reason is not needed to see it.
    cid = lifecycle.open_conversation(kb, "Maya Patel")
    _customer(kb, cid, "Where is the refund from the shoe shop, it was due last week?")
    mid = _customer(kb, cid, "hello?? where is my refund from the shoe shop, due last week")
    _hand_over(kb, cid, mid, ["frustration"])
    assert build_context(kb, cid, agent="ana").customer_repeated
    texts = _drafts(kb, cid)
    for text in texts:
        assert "assistant" not in text.lower(), text
    acks = _acks(texts, P.ACK["frustration"])
    assert acks <= {P.REPEATED, P.REPEATED_NO_SORRY, P.TOOK_LONGER} and len(acks) >= 2, acks
    # "no apologies" still finds a line that says what happened.
    for text in _drafts(kb, cid, instruction="no apologies"):
        assert P.REPEATED_NO_SORRY in text and "sorry" not in text.lower(), text


def test_repeat_reason_and_a_bot_that_answered_allow_every_line(kb: Store) -> None:
    cid = lifecycle.open_conversation(kb, "Maya Patel")
    mid = _customer(kb, cid, "my refund never came")
    lifecycle.bot_reply(
        kb,
        cid,
        "Merchant refunds usually reach your account within 3 to 5 working days.",
        reply_to=mid,
        meta={"engine": "embedded", "intent": "answer", "kb": ["KB-T01"]},
    )
    mid = _customer(kb, cid, "It's been two weeks, where is it")
    _hand_over(kb, cid, mid, ["frustration", "repeat_question"])
    acks = _acks(_drafts(kb, cid), P.ACK["frustration"])
    assert acks <= {P.REPEATED, P.REPEATED_NO_SORRY, P.BOT_FELL_SHORT, P.TOOK_LONGER}
    assert len(acks) >= 3, acks


def test_frustration_as_the_second_situation_claims_nothing_the_bot_did_not_do(
    kb: Store,
) -> None:
    cid = lifecycle.open_conversation(kb, "Maya Patel")
    mid = _customer(
        kb, cid, "Someone used my card for payments I didn't make, this is so frustrating"
    )
    _hand_over(kb, cid, mid, ["fraud", "frustration"])
    texts = _drafts(kb, cid)
    for text in texts:
        assert not BOT_CLAIM.search(text) and not REPEAT_CLAIM.search(text), text
    assert _acks(texts, P.SECONDARY["frustration"]) == {"I'll make sure this gets sorted."}


def test_every_bank_with_a_claim_has_a_line_that_claims_nothing() -> None:
    # Otherwise a conversation that shows none of it would have no true line to pick from.
    banks = [*P.ACK.values(), *P.SECONDARY.values(), *P.CLOSING.values()]
    claimed = [bank for bank in banks if any(line in P.CLAIMS for line in bank)]
    assert claimed
    for bank in claimed:
        plain = [line for line in bank if line not in P.CLAIMS]
        assert plain and any("sorry" not in line.lower() for line in plain), bank


def test_the_llm_is_told_what_did_not_happen(kb: Store) -> None:
    never = lifecycle.open_conversation(kb, "Maya Patel")
    mid = _customer(kb, never, "I'm fed up, put me through to a human now")
    _hand_over(kb, never, mid, ["frustration", "human_request"])
    prompt = build_messages(build_context(kb, never, agent="ana"))[1]["content"]
    assert "The bot has not answered" in prompt
    assert "has not had to repeat" in prompt

    fell_short = lifecycle.open_conversation(kb, "Ben Okafor")
    mid = _customer(kb, fell_short, "How do I get a letter confirming my address?")
    _fallback(kb, fell_short, mid)
    mid = _customer(kb, fell_short, "sorry, I mean: how do I get a letter confirming my address?")
    _hand_over(kb, fell_short, mid, ["bot_fallback", "repeat_question"])
    prompt = build_messages(build_context(kb, fell_short, agent="ana"))[1]["content"]
    assert "The bot has not answered" not in prompt and "has not had to repeat" not in prompt
