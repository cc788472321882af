"""The articles a draft may quote: the knowledge base's one ranker, in the conversation's context.

The order is :mod:`console.kb.rank`'s, over the same pool as the console's search, so for a
question alone a draft and ``ctrl+k`` put the same article first. What a conversation adds is
said here, as a :class:`console.kb.rank.Context`: the customer's earlier words nudge; the
articles the bot already answered from, and those serving the situation triage saw (fraud ->
the fraud articles), compete even when the newest words miss them; complaint and closure
articles rank lower next to a threat to leave (the problem to solve is elsewhere); "contact
us" articles never come (the agent *is* that person). Only relevant articles are kept: ones
that answer the question on its words (:attr:`Candidate.confident`) or that the conversation
wants. The engines get plain :class:`Article` values they can quote and cite.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from console.kb.rank import SEARCH_POOL, Candidate, Context, ranker_for
from store.db import Store


@dataclass(frozen=True, slots=True)
class Article:
    """A knowledge-base article found for a draft."""

    id: str
    title: str
    body: str
    score: float = 0.0
    """The ranker's rank: higher is better."""
    tags: str = ""


# Situations (triage reasons) and the tags of the articles that serve them.
REASON_TAGS: dict[str, frozenset[str]] = {
    "fraud": frozenset(
        {
            "fraud",
            "scam",
            "unrecognised payment",
            "unauthorised",
            "stolen card",
            "phishing",
            "hacked",
        }
    ),
    "bereavement": frozenset({"bereavement", "death", "died"}),
    "financial_hardship": frozenset({"hardship", "struggling", "can't pay", "debt"}),
    "vulnerability": frozenset({"extra support", "vulnerable"}),
    "health": frozenset({"extra support", "illness", "mental health"}),
    "complaint_threat": frozenset({"complaint"}),
    "churn_threat": frozenset({"close account", "complaint"}),
}
_THREATS = frozenset({"complaint_threat", "churn_threat"})
# Articles about reaching a person: the agent *is* that person, so they never answer.
CONTACT_TAGS = frozenset({"talk to a person", "speak to someone"})
# Complaint and closure articles: a threat to leave is rarely the question itself.
THREAT_TAGS = frozenset({"complaint", "close account"})


def draft_context(
    earlier: str = "", reasons: Sequence[str] = (), cited: Sequence[str] = ()
) -> Context:
    """What the conversation adds to the newest question, for :meth:`Ranker.rank`.

    :param earlier: the customer's earlier messages
    :param reasons: the triage reasons
    :param cited: articles the bot already answered from in this conversation
    """
    threat = bool(_THREATS & set(reasons))
    wanted = frozenset().union(*(REASON_TAGS.get(r, frozenset()) for r in reasons))
    return Context(
        earlier=earlier,
        cited=frozenset(cited),
        wanted_tags=wanted - THREAT_TAGS if threat else wanted,
        unwanted_tags=THREAT_TAGS if threat else frozenset(),
        excluded_tags=CONTACT_TAGS,
    )


def _relevant(ranked: list[Candidate]) -> list[Candidate]:
    """The relevant candidates, or none when the best is not: a draft quotes the ranker's first
    article or nothing, never one fished from further down (on real questions that one was
    wrong more often than right)."""
    if not ranked or not ranked[0].relevant:
        return []
    return [c for c in ranked if c.relevant]


def draft_articles(
    store: Store,
    newest: str,
    earlier: str = "",
    reasons: Sequence[str] = (),
    cited: Sequence[str] = (),
    limit: int = 3,
) -> list[Article]:
    """The articles a draft for ``newest`` may quote, best first (none that do not fit).

    When the newest message names nothing ("WHERE IS MY MONEY"), the question is further up:
    the newest and earlier messages are ranked together.

    :param newest: the customer's newest message
    :param earlier: their earlier messages, newest first
    :param reasons: the triage reasons
    :param cited: articles the bot already answered from in this conversation
    """
    ranker = ranker_for(store)
    context = draft_context(earlier, reasons, cited)
    kept = _relevant(ranker.rank(store, newest, pool=SEARCH_POOL, context=context))
    if not kept and earlier.strip():
        together = draft_context("", reasons, cited)
        kept = _relevant(
            ranker.rank(store, f"{newest} {earlier}", pool=SEARCH_POOL, context=together)
        )
    out = []
    for c in kept[:limit]:
        article = ranker.articles[c.id].article
        out.append(Article(article.id, article.title, article.body, c.rank, article.tags))
    return out
