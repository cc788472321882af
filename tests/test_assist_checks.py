"""The checks an LLM draft goes through once complete (console.assist.checks)."""

from __future__ import annotations

from pathlib import Path

import pytest

from console.assist.checks import warnings
from console.assist.retrieval import Article

ARTICLES = Path(__file__).resolve().parents[1] / "console" / "kb" / "articles"


@pytest.mark.parametrize(
    ("text", "secret"),
    [
        ("Please reply with your full card number and PIN.", "full card number"),
        ("Please send the one-time code you received.", "one-time code"),
        ("Tell me your password so I can log in.", "password"),
        ("Can you give me the 6-digit verification code from the text?", "verification code"),
        ("Share the card number with me please.", "card number"),
    ],
)
def test_a_draft_asking_for_a_secret_is_named(text: str, secret: str) -> None:
    assert warnings(text, []) == [
        f"the draft asks the customer for their {secret}: we never ask for it"
    ]


@pytest.mark.parametrize(
    "text",
    [
        "Never share your PIN with anyone, not even with us.",
        "We will not ask for your password.",
        "Could you confirm the last four digits of your card number?",
        "Which card was it: the one ending in 4242?",
        "Enter your PIN at the card machine.",
        "Tell us why (optional) and confirm with your passcode.",
        "Please send us a screenshot of the payment.",
        "Your refund of £45 arrives in 3 to 5 working days (reference 12345678).",
    ],
)
def test_advice_and_ordinary_questions_pass(text: str) -> None:
    assert warnings(text, []) == []


def test_account_details_no_article_gave_are_named() -> None:
    text = (
        "Send 500 EUR to IBAN GB33BUKB20201555555555, or pay sort code 12-34-56, account 12345678."
    )
    assert warnings(text, []) == [
        "the draft holds an account number no article gave: check it",
        "the draft holds an IBAN no article gave: check it",
        "the draft holds a sort code no article gave: check it",
    ]
    given = Article("KB-1", "Paying us", "Our IBAN is GB33BUKB20201555555555.")
    assert warnings("Our IBAN is GB33BUKB20201555555555.", [given]) == []


def test_no_article_of_the_knowledge_base_would_be_flagged() -> None:
    # The articles are what a good draft quotes: none of their sentences is a request for a
    # secret ("confirm with your passcode" is an instruction for the app).
    bodies = [p.read_text() for p in sorted(ARTICLES.glob("*.md"))]
    assert len(bodies) > 40
    assert [b[:60] for b in bodies if warnings(b, [])] == []
