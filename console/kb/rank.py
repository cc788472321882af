"""The knowledge-base ranker: one order of articles for the bot, drafts and the console's search.

A question is ranked in two steps. FTS5 bm25 finds a pool of articles sharing words with it
(the console's search and drafts ask the store, :func:`store.kb.search_scores`, which on
PostgreSQL is its own ``ts_rank``; the bot computes SQLite's bm25 in process on either
engine, :class:`store.kb_bm25.Bm25Index`, with no query per message); then each is scored
by how much of the question it covers:

    rank = matched + 0.8 * bm25 / best bm25 + title_hits + phrase_hits - off_product

- ``matched``: the question's words the article contains, each weighted (a word of a feeling
  0.2, a generic or vague word 0.4, a word no article uses 0.5, any other 1.0);
- ``bm25 / best``: the search's own opinion, relative to the pool's best (0 to 0.8);
- ``title_hits``: the weighted question words in the article's title;
- ``phrase_hits``: multi-word tags said word for word ("delete my account");
- ``off_product``: 1.5 off a product's own article ("Pay-in-3: ...") when the question never
  names the product.

bm25 alone puts the right article first for 63% of real Banking77 questions the knowledge
base covers; this order, over a pool of 20, for 70% (87% in the top three). The bot keeps a
pool of 3, which its answer / clarify margins were tuned on (with 20, a bare "refund" is
answered instead of asking which refund); the console's search and drafts rank a pool of
:data:`SEARCH_POOL`, so an agent's ``ctrl+k`` and a draft put the same article first.

A conversation can add to a question (:class:`Context`, drafts only): the customer's earlier
words (a nudge), the articles the bot already answered from, tags that serve the situation
triage saw (fraud, bereavement), tags that rank lower (a threat to leave is rarely the
question) and tags never wanted (the agent *is* the person a "contact us" article points to).
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path

from console.kb import Parsed, split_body
from console.kb.words import FEELINGS, GENERIC, PRODUCT_WORDS, VAGUE_WORDS, product_of, stem, stems
from store.db import Store
from store.kb import (
    WEIGHTS,
    KbArticle,
    KbHit,
    all_articles,
    search_scores,
    stored_order,
    terms,
    version,
)
from store.kb_bm25 import Bm25Index

# The bot's pool: its answer / clarify margins were measured on three candidates.
BOT_POOL = 3
# The console's search and drafts: wide enough that the right article is almost always in it.
SEARCH_POOL = 20
_BM25_SHARE = 0.8
# Without "pay in 3" or "instalment" in it, a Pay-in-3 article answered a question about 5%
# of the time.
_OFF_PRODUCT = 1.5
# What a conversation adds, in rank points (one matched title word is worth about 2).
_EARLIER = 0.5  # per earlier word in the title or tags: a nudge, never enough alone
_CITED = 4.0
_SITUATION = 3.0
_UNWANTED = 4.0
_CACHE_WORDS = 65536


@dataclass(frozen=True, slots=True)
class Indexed:
    """An article as the ranker (and the bot, which quotes its facts) reads it."""

    article: KbArticle
    parsed: Parsed
    stems: frozenset[str]
    title_stems: frozenset[str]
    tag_stems: frozenset[str]
    tags: frozenset[str]  # whole tag phrases, lower case
    fact_stems: tuple[frozenset[str], ...]
    fact_terms: tuple[frozenset[str], ...]  # without stop words, to spot repetition
    phrases: tuple[tuple[str, ...], ...]  # multi-word tags ("delete account") as stems
    product_stems: frozenset[str] = frozenset()  # the product a "Product: ..." article is about
    summary_stems: frozenset[str] = frozenset()  # without stop words, as fact_terms


def index(article: KbArticle) -> Indexed:
    """What the ranker needs of one article, computed once."""
    parsed = split_body(article)
    product = product_of(article.title)
    return Indexed(
        article,
        parsed,
        stems(f"{article.title} {article.tags} {article.body}"),
        stems(article.title),
        frozenset().union(*(stems(t) for t in parsed.tags)),
        frozenset(t.lower() for t in parsed.tags),
        tuple(stems(f) for f in parsed.facts),
        tuple(frozenset(stem(w) for w in terms(f)) for f in parsed.facts),
        tuple(
            p for p in (tuple(stem(w) for w in terms(tag)) for tag in parsed.tags) if len(p) >= 2
        ),
        frozenset(stem(w) for w in PRODUCT_WORDS[product]) if product else frozenset(),
        frozenset(stem(w) for w in terms(parsed.summary)),
    )


@dataclass(frozen=True, slots=True)
class Candidate:
    """A ranked article and how much of the question it covers."""

    id: str
    score: float  # bm25, lower is better (0.0: not found by the search, added by context)
    matched: float  # weighted count of question words the article contains
    coverage: float  # matched / weighted question length
    title_hits: float = 0.0  # weighted question words in the article's title
    phrase_hits: int = 0  # multi-word tags of the article found word for word in the question
    rank: float = 0.0  # what candidates are sorted by, higher is better
    tag_hits: float = 0.0  # weighted question words in the article's tags
    off_product: bool = False  # a product's own article; the question never names the product
    context: float = 0.0  # the part of ``rank`` a conversation's :class:`Context` added
    kept_by_context: bool = False  # cited before, or serving the situation

    @property
    def confident(self) -> bool:
        """Whether the article answers the question on its words alone.

        Two real words of the question, or most of a short one ("pin", "freeze card"). A
        long story that shares a few words with an article is not answered by it. A question
        whose key word is in the article's title needs less of the rest. A tag phrase said
        word for word ("delete my account") is the clearest sign of all.
        """
        return (
            (self.matched >= 2.0 and self.coverage >= 0.25)
            or (self.coverage >= 0.6 and self.matched >= 1.0)
            or (self.title_hits >= 1.0 and self.coverage >= 0.4)
            or self.phrase_hits > 0
        )

    @property
    def on_topic(self) -> bool:
        """A word of the question is in the article's title or tags: the article is *about* it."""
        return self.title_hits > 0 or self.tag_hits > 0 or self.phrase_hits > 0

    @property
    def relevant(self) -> bool:
        """Fit to quote in a draft: the conversation wants it (cited before, serving the
        situation), a real word of the question is in its title, or it answers the question
        (:attr:`confident`) and is about it (:attr:`on_topic`).

        A title word alone keeps an article for a message padded with other words ("it's
        been two weeks, email me at ..., where is my refund"), which the bot's
        :attr:`confident` would not answer.
        """
        return self.kept_by_context or self.title_hits >= 1.0 or (self.confident and self.on_topic)


@dataclass(frozen=True, slots=True)
class Context:
    """What a conversation adds to its newest question (drafts); the bot and the search add nothing.

    :param earlier: the customer's earlier words; they nudge articles whose title or tags use
        them, never make one relevant by themselves
    :param cited: articles the bot already answered from in this conversation (its topic)
    :param wanted_tags: tags of articles that serve the situation; those articles compete
        even when the question's words miss them
    :param unwanted_tags: tags of articles that rank lower
    :param excluded_tags: tags of articles never returned
    """

    earlier: str = ""
    cited: frozenset[str] = field(default_factory=frozenset)
    wanted_tags: frozenset[str] = field(default_factory=frozenset)
    unwanted_tags: frozenset[str] = field(default_factory=frozenset)
    excluded_tags: frozenset[str] = field(default_factory=frozenset)


@dataclass(frozen=True, slots=True)
class _Question:
    weights: dict[str, float]  # stem -> how much it counts
    total: float
    sequence: tuple[str, ...]  # the stems in order, for phrases

    @classmethod
    def of(cls, words: tuple[str, ...], weight: Callable[[str], tuple[str, float]]) -> _Question:
        """:param weight: a word's stem and how much it counts (:meth:`Ranker.stem_weight`)"""
        weights: dict[str, float] = {}
        sequence = []
        for w in words:
            s, counts = weight(w)
            weights[s] = counts
            sequence.append(s)
        return cls(weights, sum(weights.values()) or 1.0, tuple(sequence))


def _rank(c: Candidate, top_bm25: float) -> float:
    """The formula of the module docstring; ``top_bm25`` is the best bm25 of the pool."""
    return _rank_of(c.matched, c.score, top_bm25, c.title_hits, c.phrase_hits, c.off_product)


def _rank_of(
    matched: float,
    bm25: float,
    top_bm25: float,
    title_hits: float,
    phrase_hits: int,
    off_product: bool,
) -> float:
    return (
        matched
        + _BM25_SHARE * (bm25 / top_bm25)
        + title_hits
        + phrase_hits
        - (_OFF_PRODUCT if off_product else 0.0)
    )


def _contains(sequence: tuple[str, ...], phrase: tuple[str, ...]) -> bool:
    """``phrase`` appears in ``sequence`` as consecutive items."""
    n = len(phrase)
    first = phrase[0]
    for i in range(len(sequence) - n + 1):
        if sequence[i] == first and sequence[i : i + n] == phrase:
            return True
    return False


class Ranker:
    """Ranks the articles it indexed; searches through whichever store connection it is given.

    Immutable once built, so threads share one. :func:`ranker_for` keeps one per database
    and rebuilds it when the knowledge base changes.
    """

    def __init__(
        self,
        articles: Iterable[KbArticle],
        kb_version: tuple[int, float] = (0, 0.0),
        fts_order: Sequence[KbArticle] | None = None,
    ):
        """:param fts_order: the same articles in the store's full-text order
        (:func:`store.kb.stored_order`), which breaks ties of :meth:`rank_in_process`;
        default the order of ``articles``"""
        listed = list(articles)
        self.articles: dict[str, Indexed] = {a.id: index(a) for a in listed}
        self.version = kb_version
        self._vocab = frozenset().union(*(a.stems for a in self.articles.values()))
        self._bm25 = Bm25Index(listed if fts_order is None else fts_order, WEIGHTS)
        self._weights: dict[str, tuple[str, float]] = {}

    @classmethod
    def load(cls, store: Store) -> Ranker:
        """A ranker over every article in ``store``."""
        kb_version = version(store)
        return cls(all_articles(store), kb_version, stored_order(store))

    def weight(self, word: str) -> float:
        """How much a question word counts towards covering the question."""
        return self.stem_weight(word)[1]

    def stem_weight(self, word: str) -> tuple[str, float]:
        """The word's stem and :meth:`weight`, remembered per word."""
        found = self._weights.get(word)
        if found is None:
            found = (stem(word), self._weight(word))
            if len(self._weights) >= _CACHE_WORDS:
                self._weights.clear()  # a bound: real traffic reuses a few thousand words
            self._weights[word] = found
        return found

    def _weight(self, word: str) -> float:
        if word in FEELINGS:
            return 0.2
        if word in GENERIC or word in VAGUE_WORDS:
            return 0.4
        # A word no article uses (a shop's name, a product we do not offer) still counts
        # against coverage, but less than a word the knowledge base knows.
        return 1.0 if stem(word) in self._vocab else 0.5

    def rank(
        self, store: Store, text: str, *, pool: int = SEARCH_POOL, context: Context | None = None
    ) -> list[Candidate]:
        """The articles for ``text``, best first: the pool bm25 finds, in the ranker's order.

        :param store: any connection to the database the articles came from
        :param pool: how many search hits to rank (and at most return, plus any the
            ``context`` adds)
        """
        ranked = list(self.rank_words(store, tuple(terms(text)), pool))
        if context is None:
            return ranked
        return self._in_context(ranked, tuple(terms(text)), context)

    def rank_words(
        self, store: Store, words: tuple[str, ...], pool: int = SEARCH_POOL
    ) -> tuple[Candidate, ...]:
        """:meth:`rank` for words already read with :func:`store.kb.terms`: the pool found by
        the store's own search (FTS5 bm25 on SQLite, ``ts_rank`` on PostgreSQL)."""
        if not words:
            return ()
        return self._ranked(search_scores(store, " ".join(words), limit=max(1, pool)), words)

    def rank_in_process(
        self, words: tuple[str, ...], pool: int = BOT_POOL
    ) -> tuple[Candidate, ...]:
        """:meth:`rank_words` with the pool from this process's copy of FTS5's bm25
        (:class:`store.kb_bm25.Bm25Index`): no query, the same candidates as SQLite's search on
        either backend. The bot's path, where a search per message is most of the cost."""
        if not words:
            return ()
        return self._ranked(self._bm25.search(words, max(1, pool)), words)

    def _ranked(
        self, hits: Iterable[tuple[str, float]], words: tuple[str, ...]
    ) -> tuple[Candidate, ...]:
        question = _Question.of(words, self.stem_weight)
        kept = [(article_id, bm25) for article_id, bm25 in hits if article_id in self.articles]
        if not kept:
            return ()
        # bm25 favours short articles that repeat one word; how much of the question an
        # article covers breaks near-ties the other way.
        top = kept[0][1] or -1.0
        ranked = [self._score(article_id, bm25, question, top) for article_id, bm25 in kept]
        ranked.sort(key=lambda c: -c.rank)
        return tuple(ranked)

    def _score(
        self, article_id: str, bm25: float, question: _Question, top: float | None = None
    ) -> Candidate:
        """The candidate's coverage of ``question``; ranked (:func:`_rank`) against ``top``."""
        indexed = self.articles[article_id]
        stems, title_stems, tag_stems = indexed.stems, indexed.title_stems, indexed.tag_stems
        # One pass over the question instead of one per sum; same additions in the same order.
        matched: float = 0
        title_hits: float = 0
        tag_hits: float = 0
        for s, weight in question.weights.items():
            if s in stems:
                matched += weight
            if s in title_stems:
                title_hits += weight
            if s in tag_stems:
                tag_hits += weight
        phrase_hits = 0
        for phrase in indexed.phrases:
            if phrase[0] in question.weights and _contains(question.sequence, phrase):
                phrase_hits += 1
        off_product = bool(indexed.product_stems) and indexed.product_stems.isdisjoint(
            question.sequence
        )
        return Candidate(
            article_id,
            bm25,
            matched,
            matched / question.total,
            title_hits,
            phrase_hits,
            0.0
            if top is None
            else _rank_of(matched, bm25, top, title_hits, phrase_hits, off_product),
            tag_hits=tag_hits,
            off_product=off_product,
        )

    def _in_context(
        self, ranked: list[Candidate], words: tuple[str, ...], context: Context
    ) -> list[Candidate]:
        have = {c.id for c in ranked}
        question = _Question.of(words, self.stem_weight)
        # Articles the conversation wants compete even when the question's words miss them.
        for article_id, indexed in self.articles.items():
            if article_id not in have and (
                article_id in context.cited or indexed.tags & context.wanted_tags
            ):
                added = self._score(article_id, 0.0, question)
                ranked.append(replace(added, rank=_rank(added, -1.0)))
        asked = {stem(w) for w in words}
        earlier = {stem(w): self.weight(w) for w in terms(context.earlier)}
        out = []
        for c in ranked:
            indexed = self.articles[c.id]
            if indexed.tags & context.excluded_tags:
                continue
            boost = sum(
                _EARLIER * weight
                for s, weight in earlier.items()
                if s not in asked and (s in indexed.title_stems or s in indexed.tag_stems)
            )
            cited = c.id in context.cited
            situation = bool(indexed.tags & context.wanted_tags)
            boost += (_CITED if cited else 0.0) + (_SITUATION if situation else 0.0)
            if indexed.tags & context.unwanted_tags:
                boost -= _UNWANTED
            out.append(
                replace(
                    c,
                    rank=c.rank + boost,
                    context=boost,
                    kept_by_context=cited or situation,
                )
            )
        out.sort(key=lambda c: -c.rank)
        return out


_RANKERS: dict[str, Ranker] = {}
_LOCK = threading.Lock()  # guards _RANKERS
_BUILDING = threading.Lock()  # one build at a time: a second caller waits for it, then uses it


def ranker_for(store: Store) -> Ranker:
    """The ranker for ``store``'s database, rebuilt when its articles changed (``tandem kb load``).

    One cheap query per call checks for changes, so callers at human pace (a draft, a search)
    always rank today's articles; the bot, which answers thousands of messages a second,
    builds its own :class:`Ranker` once.
    """
    key = str(store.path)
    current = version(store)
    with _LOCK:
        ranker = _RANKERS.get(key)
    if ranker is not None and ranker.version == current:
        return ranker
    with _BUILDING:
        with _LOCK:
            ranker = _RANKERS.get(key)
        if ranker is None or ranker.version != current:
            ranker = Ranker.load(store)
            with _LOCK:
                _RANKERS[key] = ranker
    return ranker


def warm(path: str | Path) -> None:
    """Build the ranker of the database at ``path`` now, on a connection of the calling thread.

    The console calls it from a worker thread at start, so the first ``ctrl+k`` (on the event
    loop) and the first draft find the index built (tens of milliseconds of stemming).
    """
    with Store(path) as store:
        ranker_for(store)


def ranked_hits(store: Store, query: str, limit: int = SEARCH_POOL) -> list[KbHit]:
    """The articles for ``query`` (any text; customer text is safe), in the ranker's order:
    the search of the console's ctrl+k, on this machine or through the agent API alike."""
    ranker = ranker_for(store)
    hits = []
    for c in ranker.rank(store, query, pool=limit):
        art = ranker.articles[c.id].article
        hits.append(KbHit(art.id, art.title, art.body, art.tags, c.score))
    return hits
