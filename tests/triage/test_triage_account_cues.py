"""Account takeover, phishing, a bare request for a person, and amounts that are not slang."""

from __future__ import annotations

import pytest

from console.triage import TriageEngine

ENGINE = TriageEngine()


def _verdict(text: str):  # noqa: ANN202 - console.triage.Verdict
    return ENGINE.observe(ENGINE.new_state(), "customer", text)


@pytest.mark.parametrize(
    "text",
    [
        "someone has got into my account and changed my email, I can't log in",
        "somebody reset my password overnight",
        "I did not change my PIN but the app says it was changed",
        "got a text about a refund and entered my card details on the link",
        "I gave them the code they asked for and now money is gone",
    ],
)
def test_takeover_and_phishing_are_fraud(text: str) -> None:
    v = _verdict(text)
    assert "fraud" in v.reasons and v.level == "urgent"


@pytest.mark.parametrize(
    "text",
    [
        "where do I enter my card details on the website?",
        "how do I change my email address?",
        "I want to reset my PIN",
    ],
)
def test_routine_account_questions_stay_calm(text: str) -> None:
    assert "fraud" not in _verdict(text).reasons


@pytest.mark.parametrize(
    "text",
    [
        "agent",
        "AGENT!!",
        "real person",
        "human please",
        "operator",
        "hey agent",
        "I asked for a person",
        "I already asked for a real person twice",
        "please put me through to someone",
        "who can I talk to about this",
        "can I chat with a team member",
        "can a colleague of yours look at this?",
    ],
)
def test_a_message_that_is_only_a_person_asks_for_one(text: str) -> None:
    v = _verdict(text)
    assert "human_request" in v.reasons and v.needs_human


@pytest.mark.parametrize(
    "text",
    [
        "travel agent",
        "estate agent fees",
        "the person",
        "I didn't ask for an agent",
        "I asked for a refund last week",
        "I sent money to a colleague",
        "who can I send money to?",
    ],
)
def test_other_two_word_people_are_not_requests(text: str) -> None:
    assert "human_request" not in _verdict(text).reasons


def test_amounts_are_not_read_as_slang() -> None:
    # "86" is slang for "get rid of" in the general lexicon: an amount must not upset the score.
    assert _verdict("is my payment of £86.15 still pending?").level == "calm"
