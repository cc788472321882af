"""Knowledge-base articles and conversations the drafts tests share (written for these tests)."""

from __future__ import annotations

from pathlib import Path

from store import Store, lifecycle
from store.kb import KbArticle, upsert_articles

ARTICLES = [
    KbArticle(
        "KB-T01",
        "Refunds: when they arrive",
        "Merchant refunds usually reach your account within 3 to 5 working days.\n\n"
        "- A card refund goes back to the card you paid with.\n"
        "- If a refund has not arrived after 10 working days, send us the merchant's confirmation "
        "and we will chase it.",
        "refund, returns",
    ),
    KbArticle(
        "KB-T02",
        "Payments you don't recognise",
        "If you see a payment you did not make, freeze your card first.\n\n## Steps\n"
        "1. Open the app and go to Cards, then Freeze card.\n"
        "2. Report each payment under Payments, then Report a problem.\n"
        "3. Order a replacement card once we have checked the payments.",
        "fraud, unrecognised, stolen",
    ),
    KbArticle(
        "KB-T03",
        "When someone has died",
        "Send us a copy of the death certificate through the secure upload link.\n"
        "- We freeze the account to protect it, and no fees are charged from then on.\n"
        "- The executor can then ask us to close the account and move the balance.",
        "bereavement, death, passed away, estate",
    ),
    KbArticle(
        "KB-T04",
        "Struggling with repayments",
        "Contact us before you miss a repayment and we can help.\n"
        "- We can set up a payment plan or pause repayments for up to 3 months.\n"
        "- Changing your plan is free.",
        "hardship, loan, repayment, job",
    ),
]


def seed_kb(store: Store) -> None:
    """Load the test articles."""
    upsert_articles(store, ARTICLES)


def conversation(
    store: Store,
    name: str,
    turns: list[tuple[str, str]],
    *,
    agent: str | None = "ana",
    reasons: list[str] | None = None,
    level: str = "empathy",
) -> int:
    """A conversation with ``turns`` of (role, text), claimed by ``agent``, with triage reasons."""
    cid = lifecycle.open_conversation(store, name)
    for role, text in turns:
        if role == "customer":
            lifecycle.add_customer_message(store, cid, text)
        else:
            lifecycle.bot_reply(store, cid, text)
    if reasons is not None:
        lifecycle.record_triage(store, cid, lifecycle.TriageMark(level, 0.7, reasons))
    if agent:
        lifecycle.claim(store, cid, agent)
    return cid


def refund_conversation(db_path: Path) -> int:
    """Maya's late refund, asked twice, claimed by ana, with the KB seeded: the UI drafts' scene."""
    with Store(db_path) as store:
        seed_kb(store)
        return conversation(
            store,
            "Maya Patel",
            [
                ("customer", "my refund never came"),
                ("bot", "Merchant refunds usually reach your account within 3 to 5 working days."),
                ("customer", "It's been two weeks, where is my refund"),
            ],
            reasons=["frustration", "repeat_question"],
        )
