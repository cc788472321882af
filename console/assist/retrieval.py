"""Knowledge-base retrieval for drafts: ``store.kb.search`` (bm25), then a re-ranking.

bm25 over everything the customer wrote lets incidental words win ("in the car" finds the
car-rental hold article for "how do I freeze my card"). A draft answers the newest message
in the situation triage saw, so the candidates are re-ranked by what the newest message shares
with each article's title and tags, plus the situation (fraud -> fraud articles), and those
sharing nothing with the title or tags are dropped. The engines then get plain
:class:`Article` values they can quote and cite.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass

from store.db import Store
from store.kb import search


@dataclass(frozen=True, slots=True)
class Article:
    """A knowledge-base article found for a draft."""

    id: str
    title: str
    body: str
    score: float = 0.0
    """bm25 from the store's search: lower is better."""
    tags: str = ""


_STOP = frozenset(
    "the and for you your with that this have has had was were are can could would will what when "
    "where which who how why not but from they them their there been being about into just than then "
    "some any all our out get got did does doing done its it's i'm i've im ive please thanks thank hello "
    "still again also very really want need know like dont don't help think bit sort sorted "
    "asap now today please tell".split()
)
_TOKEN = re.compile(r"[a-z0-9]+")


def _stem(word: str) -> str:
    for suffix in ("ing", "ed", "es", "s"):
        if len(word) > len(suffix) + 2 and word.endswith(suffix):
            return word[: -len(suffix)]
    return word


def content_words(text: str) -> set[str]:
    """Lower-case, lightly stemmed words of ``text`` without the small ones and stop words."""
    return {_stem(w) for w in _TOKEN.findall(text.lower()) if len(w) > 2 and w not in _STOP}


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
# Articles about reaching a person: the agent *is* that person, so they never answer.
_CONTACT_TAGS = frozenset({"talk to a person", "speak to someone"})
# Complaint and closure articles: a threat to leave is rarely the question itself.
_THREAT_TAGS = frozenset({"complaint", "close account"})
MIN_SCORE = 3.0
# Words nearly every article of a payments KB contains: a match on them alone means little.
_GENERIC = frozenset({"payment", "pay", "account", "card", "money", "app", "bank", "transaction"})


def _overlap(a: set[str], b: set[str]) -> float:
    return sum(0.25 if w in _GENERIC else 1.0 for w in a & b)


def _tags(article: Article) -> list[str]:
    return [t.strip().lower() for t in article.tags.split(",") if t.strip()]


def rank(
    articles: Sequence[Article],
    newest: str,
    earlier: str = "",
    reasons: Sequence[str] = (),
    cited: Sequence[str] = (),
) -> list[Article]:
    """Re-rank search results for a draft; drop those that share nothing with the question.

    :param newest: the customer's newest message
    :param earlier: the customer's earlier messages (weigh less)
    :param reasons: the triage reasons
    :param cited: articles the bot already answered from in this conversation (its topic)
    """
    cited_ids = set(cited)
    threat = bool({"complaint_threat", "churn_threat"} & set(reasons))
    new_words, old_words = content_words(newest), content_words(earlier)
    wanted_tags = (
        set().union(*(REASON_TAGS.get(r, frozenset()) for r in reasons)) if reasons else set()
    )
    scored = []
    for position, article in enumerate(articles):
        tags = _tags(article)
        title = content_words(article.title)
        tag_words = set().union(*(content_words(t) for t in tags)) if tags else set()
        score = 3.0 * _overlap(new_words, title) + 2.0 * _overlap(new_words, tag_words)
        score += _overlap(old_words - new_words, title | tag_words)
        # A whole tag phrase in the customer's words ("charged twice") is a strong sign.
        lowered = newest.lower()
        score += 3.0 * min(2, sum(1 for t in tags if " " in t and t in lowered))
        if wanted_tags & set(tags):
            score += 5.0
        if article.id in cited_ids:
            score += 6.0
        # An article's first tag is its subject ("pay-in-3"): a question that never touches it
        # is probably about the general case.
        if (
            tags
            and not content_words(tags[0]) & (new_words | old_words)
            and not wanted_tags & set(tags)
        ):
            score -= 1.5
        if _CONTACT_TAGS & set(tags):
            continue  # the agent is the person they wanted to reach
        if threat and _THREAT_TAGS & set(tags):
            score -= 6.0  # "I'll close my account": the problem to solve is elsewhere
        if score < MIN_SCORE:
            continue
        score += 0.1 * (len(articles) - position)  # bm25 order breaks ties
        scored.append((score, position, article))
    return [a for _, _, a in sorted(scored, key=lambda t: (-t[0], t[1]))]


def situation_query(reasons: Sequence[str]) -> str:
    """Search words for the articles that serve the conversation's situation (fraud, loss...)."""
    return " ".join(sorted({t for r in reasons for t in REASON_TAGS.get(r, ())}))


def search_kb(store: Store, query: str, limit: int = 3) -> list[Article]:
    """The articles that best answer ``query``, best first ([] when the KB is empty).

    :param query: the customer's recent words
    :param limit: at most this many
    """
    hits = search(store, query, limit)
    return [Article(str(h.id), h.title, h.body, float(h.score), h.tags) for h in hits]
