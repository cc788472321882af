"""The embedded bot: intent cues plus knowledge-base retrieval, offline and fast.

How one customer message is answered (first match wins):

1. asks for a person -> ``handoff`` (reason ``human_request``);
2. sentences that try to instruct the bot are dropped; if nothing else is left, a fixed
   reply that neither obeys nor explains (the rest of the message is answered as usual);
3. reactions to our last answer: "I don't follow" / "try again" -> the same article said more
   simply; "that's not what I asked" -> an admitted miss (a counted ``fallback``); "how long
   does that take?" / "is there a fee?" / "then what do I press?" -> that article's timing,
   cost or steps;
4. a reply to our own "X or Y?" -> the option it names ("the second one", or words of only
   one of the two), or an honest "I don't know" for "neither";
5. greetings, thanks and "that's all" -> a short reply (``resolve`` when the customer closes);
6. too vague to search ("it doesn't work", "my card") -> a clarifying question;
7. retrieval (FTS5's bm25, computed in process: :mod:`store.kb_bm25`; then a check of how
   much of the question the article covers):
   nothing reliable -> an honest "I don't know" (``fallback``); a best article that does not
   lead the runner-up clearly (see :func:`_margin_needed`), or two equally good articles for
   a one-word question -> ask which one; else an answer built from the article's summary
   and the one or two facts that best fit the question (with steps for "how do I").

The reply reads like a person: a varied opener, the customer's first name only on the first
reply, a short empathetic line when triage saw frustration, no cheerful opener on sensitive
topics. Customer text is never echoed back, so nothing a customer writes can put words in the
bot's mouth. Templates live in :mod:`console.bot.phrases`, word lists in
:mod:`console.bot.vocabulary`.
"""

from __future__ import annotations

import re
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

from console.bot import intents, phrases, vocabulary
from console.bot.types import BotAnswer, BotContext
from console.kb import Parsed, ensure_loaded, words
from console.kb.rank import BOT_POOL, Candidate, Indexed, Ranker
from console.names import first_name as _first_name
from store.db import Store, location
from store.kb import terms, version

# Writers put the most useful facts first: a small head start for the first two.
_POSITION_PRIOR = (0.5, 0.25)
_MONEY = re.compile(r"[£€$%]|\bfree\b")
_DURATION = re.compile(
    r"\b(?:seconds?|minutes?|hours?|days?|weeks?|months?|instantly|straight away)\b"
)
# "pay in 3", "pay-in-three", "payin3": one product name; its digit alone would match any "3".
_PAY_IN_3 = re.compile(
    r"\bpay[\s\-]*in[\s\-]*(?:3|three)\b|\b(?:3|three)\s+(?:payments|instalments|installments)\b",
    re.IGNORECASE,
)
# "How long does that take?", "is there a fee for it?", "then what do I press?": about our last answer.
_REFERS_BACK = re.compile(r"\b(?:that|it|this|then|those|these)\b", re.IGNORECASE)
_NEXT_STEP = re.compile(
    r"\b(?:press|tap|click|then\s+what|what\s+next|next\s+step|after\s+that)\b", re.IGNORECASE
)
# Lead (in rank points, roughly one question word) the best article needs over the second.
# Measured on real questions: below one point the best article was right about half the time.
_MARGIN = 1.0
_MARGIN_WITH_PHRASE = 0.5
# Below half of the question covered (and no tag phrase) a one-to-two point lead was still
# wrong about 40% of the time.
_THIN_COVERAGE = 0.5
_MARGIN_THIN = 2.0
# Our "X or Y?" question, and how a reply to it names one option or neither.
_OFFERED = re.compile(r'"([^"]+)" or "([^"]+)"\?$')
_FIRST = re.compile(r"\b(?:first|former|1st|option\s*(?:1|one|a))\b|^\W*(?:1|a)\W*$", re.IGNORECASE)
_SECOND = re.compile(
    r"\b(?:second|latter|2nd|last\s+one|option\s*(?:2|two|b))\b|^\W*(?:2|b)\W*$", re.IGNORECASE
)
_NEITHER_RE = re.compile(
    r"\b(?:neither|none\s+of|not\s+(?:those|these|either|really)|something\s+else|"
    r"(?:it'?s|is)\s+about\s+something)\b|^\W*(?:no+|nope|nah)\W*$",
    re.IGNORECASE,
)
_NEITHER = "-"
# Customers write many messages under one name: each name is read once.
first_name = lru_cache(maxsize=4096)(_first_name)


def _name(ctx: BotContext) -> str:
    """The name to greet with: only in the first reply, not after an agent has been talking.

    Read only by the replies that use it (a greeting, a closing, an answer's opener).
    """
    return first_name(ctx.customer_name) if not ctx.last_reply_text() else ""


def _with_name(ctx: BotContext) -> str:
    name = _name(ctx)
    return f", {name}" if name else ""


_SHORT_REPLY = 3  # content words; a longer reply is read as a question of its own


# The bot ranks a pool of three search hits (console.kb.rank explains why).
RETRIEVE_POOL = BOT_POOL


def _margin_needed(best: Candidate) -> float:
    """How far ahead of the runner-up the best article must rank to be answered outright.

    A tag phrase said word for word is strong evidence on its own, so it needs less of a lead;
    an article that covers less than half of the question needs more.
    """
    if best.phrase_hits:
        return _MARGIN_WITH_PHRASE
    return _MARGIN if best.coverage >= _THIN_COVERAGE else _MARGIN_THIN


def _choose(offered: tuple[str, ...], text: str, indexed: list[Indexed]) -> str:
    """Which offered article a reply picks: an id, :data:`_NEITHER`, or '' when it does not say.

    Position words ("the first one", "the latter") win; otherwise the option whose own words
    (title twice as much as the rest) the reply uses more, counting only words the two do not share.
    """
    spoken = " ".join(text.casefold().split()).strip(" .!?")
    for article_id, art in zip(offered, indexed, strict=True):
        if spoken == " ".join(art.parsed.title.casefold().split()):
            return article_id  # a quick reply: the option's own title, sent as it was shown
    first, second = bool(_FIRST.search(text)), bool(_SECOND.search(text))
    if first != second:
        return offered[0] if first else offered[1]
    if _NEITHER_RE.search(text):
        return _NEITHER
    said = {words.stem(w) for w in terms(text) if w not in vocabulary.CHATTER}
    if len(said) > _SHORT_REPLY:
        return ""  # a new question in its own right: searched as usual, not forced into our two
    shared = indexed[0].stems & indexed[1].stems
    scores = [
        sum(
            2.0 if w in art.title_stems else 1.0 for w in said if w in art.stems and w not in shared
        )
        for art in indexed
    ]
    if scores[0] == scores[1]:
        return ""
    return offered[0] if scores[0] > scores[1] else offered[1]


@dataclass(frozen=True, slots=True)
class _FactCues:
    """What :meth:`EmbeddedBot._compose` weighs in an article's facts, read once per article."""

    sensitive: bool  # no cheerful opener
    repeats_summary: tuple[bool, ...]  # mostly the summary's words again
    money: tuple[bool, ...]
    duration: tuple[bool, ...]

    @classmethod
    def of(cls, indexed: Indexed) -> _FactCues:
        facts = indexed.parsed.facts
        summary = indexed.summary_stems
        return cls(
            not vocabulary.SENSITIVE_TAGS.isdisjoint(indexed.parsed.tags),
            tuple(bool(c) and len(c & summary) / len(c) > 0.5 for c in indexed.fact_terms),
            tuple(bool(_MONEY.search(f)) for f in facts),
            tuple(bool(_DURATION.search(f)) for f in facts),
        )


@dataclass(frozen=True, slots=True)
class _Kb:
    """The articles the bot answers from, as of one version of the knowledge base."""

    ranker: Ranker
    facts: dict[str, _FactCues]
    # Retrieval results per question (questions repeat a lot); one cache per version.
    retrieve: Callable[[tuple[str, ...], int], tuple[Candidate, ...]]

    @classmethod
    def load(cls, store: Store, cache_size: int) -> _Kb:
        ranker = Ranker.load(store)
        return cls(
            ranker,
            {a: _FactCues.of(indexed) for a, indexed in ranker.articles.items()},
            lru_cache(maxsize=cache_size)(ranker.rank_in_process),
        )


class EmbeddedBot:
    """Answers from the knowledge base with no network and no model.

    :param store: the database path (the bot opens one connection per thread) or an open
        :class:`~store.Store` to use from the calling thread only
    :param cache_size: retrieval results remembered (questions repeat a lot)
    :param kb_check_every: seconds between checks whether the articles changed (``tandem kb
        load``); a change rebuilds the bot's index of them
    """

    engine = "embedded"
    model: str | None = None

    def __init__(
        self, store: Store | str | Path, *, cache_size: int = 8192, kb_check_every: float = 2.0
    ) -> None:
        self._local = threading.local()
        if isinstance(store, Store):
            self._shared: Store | None = store
            self.path = store.path
        else:
            self._shared = None
            self.path = location(store)
        conn = self._store()
        ensure_loaded(conn)
        # The bot answers thousands of messages a second without a query: its index of the
        # articles is built once per version of them, which it reads every few seconds.
        self._cache_size = cache_size
        self._kb = _Kb.load(conn, cache_size)
        self._kb_check_every = kb_check_every
        self._kb_checked = time.monotonic()
        self._kb_lock = threading.Lock()

    # -- plumbing ------------------------------------------------------------------------
    def _store(self) -> Store:
        if self._shared is not None:
            return self._shared
        store = getattr(self._local, "store", None)
        if store is None:
            store = Store(self.path)
            self._local.store = store
        return store

    def _fresh(self) -> _Kb:
        """The index of today's articles: rebuilt when their version changed since the last check."""
        now = time.monotonic()
        if now - self._kb_checked >= self._kb_check_every:
            self._kb_checked = now
            store = self._store()
            if version(store) != self._kb.ranker.version:
                with self._kb_lock:
                    if version(store) != self._kb.ranker.version:
                        self._kb = _Kb.load(store, self._cache_size)
        return self._kb

    def _current(self) -> _Kb:
        # The index an answer started with, to its end, even if another thread swaps it.
        kb: _Kb | None = getattr(self._local, "kb", None)
        return self._kb if kb is None else kb

    @property
    def ranker(self) -> Ranker:
        """The ranker over the articles the bot answers from."""
        return self._current().ranker

    @property
    def _articles(self) -> dict[str, Indexed]:
        return self._current().ranker.articles

    def article(self, article_id: str) -> Parsed | None:
        """The parsed article (for the LLM prompt and tests)."""
        indexed = self._articles.get(article_id)
        return indexed.parsed if indexed else None

    def retrieve(self, text: str, pool: int = RETRIEVE_POOL) -> list[Candidate]:
        """The best articles for ``text`` with their coverage, best first (cached).

        :param pool: how many search hits to rank (and at most return)
        """
        return self._retrieve_words(terms(text), pool)

    def _retrieve_words(self, question: list[str], pool: int = RETRIEVE_POOL) -> list[Candidate]:
        if not question:
            return []
        return list(self._current().retrieve(tuple(question), max(1, pool)))

    def _article_in(self, reply: str) -> str | None:
        """The article a previous bot reply was built from, if any."""
        if not reply:
            return None
        for article_id, indexed in self._articles.items():
            parsed = indexed.parsed
            if (parsed.summary and parsed.summary in reply) or any(
                f in reply for f in parsed.facts
            ):
                return article_id
        return None

    def _which(self, first: str, second: str) -> BotAnswer:
        """Ask which of two articles the customer means, with both (and "neither") to click."""
        a, b = self._articles[first].parsed, self._articles[second].parsed
        return BotAnswer(
            f'{phrases.WHICH} is this about "{a.title}" or "{b.title}"?',
            kb_ids=[first, second],
            intent="clarify",
            choices=[a.title, b.title, phrases.NEITHER_CHOICE],
        )

    def _offered(self, reply: str) -> tuple[str, ...]:
        """The two articles our "X or Y?" question offered (empty when it was not one)."""
        if not reply.startswith(phrases.WHICH):
            return ()
        match = _OFFERED.search(reply)
        if match is None:
            return ()
        by_title = {
            indexed.parsed.title: article_id for article_id, indexed in self._articles.items()
        }
        ids = tuple(by_title.get(title, "") for title in match.groups())
        return ids if all(ids) else ()

    # -- answering -----------------------------------------------------------------------
    async def answer(self, ctx: BotContext) -> BotAnswer:
        """Answer the newest customer message (same as :meth:`answer_sync`)."""
        return self.answer_sync(ctx)

    def answer_sync(self, ctx: BotContext) -> BotAnswer:
        """Answer the newest customer message of ``ctx``; never raises on odd text."""
        self._local.kb = self._fresh()
        try:
            return self._answer(ctx)
        finally:
            self._local.kb = None

    def _answer(self, ctx: BotContext) -> BotAnswer:
        text = ctx.last_customer_text()
        seed = ctx.conversation_id * 31 + ctx.bot_turns()
        if not text.strip():
            return self._greeting(ctx, seed)
        cues = intents.detect(text)
        if cues.human:
            return BotAnswer(
                phrases.HANDOFF, handoff=True, handoff_reason="human_request", intent="handoff"
            )
        cleaned = cues.cleaned
        if "3" in cleaned or "three" in cleaned.lower():  # what _PAY_IN_3 needs, found cheaply
            cleaned = _PAY_IN_3.sub(" pay-in-3 instalment ", cleaned)
        # Numbers ("3 weeks", "£2000", "2J" of an escape) say how much or how long, not what about.
        content = [
            w
            for w in terms(cleaned)
            if w not in vocabulary.CHATTER and (w.isalpha() or not any(c.isdigit() for c in w))
        ]
        last_reply = ctx.last_reply_text()
        if ctx.bot_turns() > 0 and cues.confused:  # a cue is read only when needed
            return self._rephrase(ctx, seed)
        if ctx.bot_turns() > 0 and cues.missed and self._article_in(last_reply):
            # Our answer did not solve it: say so (a counted fallback) instead of repeating it.
            return BotAnswer(phrases.pick(phrases.MISSED, seed), fallback=True, intent="missed")
        offered = self._offered(last_reply)
        if offered:
            # A reply to our "X or Y?": the option it names (by position or by words), or none.
            chosen = _choose(offered, cues.cleaned, [self._articles[a] for a in offered])
            if chosen == _NEITHER:
                options = phrases.FALLBACKS_AGAIN if ctx.fallbacks >= 1 else phrases.FALLBACKS
                return BotAnswer(phrases.pick(options, seed), fallback=True, intent="fallback")
            if chosen:
                previous = intents.strip_injection(ctx.previous_customer_text())[0]
                return self._compose(ctx, cues, f"{previous} {cues.cleaned}", chosen, seed, False)
        if not content or (
            # The word check first: it fails on most messages' first word, the cues cost a regex.
            all(
                w in vocabulary.CLOSING_WORDS
                or w in words.GENERIC
                or w in words.VAGUE_WORDS
                or w in words.FEELINGS
                for w in content
            )
            and cues.thanks
            and not cues.question
            and not cues.how_to
        ):
            return self._no_question(ctx, cues, seed, last_reply)

        specific = [
            w
            for w in content
            if w not in words.GENERIC and w not in words.VAGUE_WORDS and w not in words.FEELINGS
        ]
        if not specific and cues.how_to and ctx.bot_turns() > 0:
            # "Where do I find that?" about what we just said: the steps of that article.
            previous_article = self._article_in(last_reply)
            if previous_article and self._articles[previous_article].parsed.steps:
                return self._steps_of(previous_article)
        if len(specific) <= 1 and ctx.bot_turns() > 0 and _REFERS_BACK.search(cues.cleaned):
            previous_article = self._article_in(last_reply)
            if previous_article and (
                cues.how_long or cues.how_much or _NEXT_STEP.search(cues.cleaned)
            ):
                return self._more_about(previous_article, cues, last_reply, seed)
        follow_up = phrases.is_clarifying(last_reply) and len(specific) <= 2
        # Feelings and "how long" words shape the reply (triage, duration facts), not the search.
        searched = [w for w in content if w not in words.FEELINGS] or content
        query = " ".join(searched)
        if follow_up:
            # A short reply to our own question ("declined") is read with what came before it.
            previous = ctx.previous_customer_text()
            query = f"{intents.strip_injection(previous)[0]} {query}"
        elif not specific:
            topic = next((phrases.TOPIC_OF[w] for w in content if w in phrases.TOPIC_OF), None)
            if (
                topic is None
                and cues.question
                and ctx.bot_turns() > 0
                and self._article_in(last_reply)
            ):
                # "So I don't have to do anything?" after an answer: nothing new to look up.
                return BotAnswer(phrases.pick(phrases.CHECK_BACK, seed), intent="ack")
            return BotAnswer(
                phrases.CLARIFY_TOPIC.get(topic or "", phrases.CLARIFY_DEFAULT), intent="clarify"
            )

        # Words of terms() read again by terms() are the same words: searched as they are.
        candidates = self.retrieve(query) if follow_up else self._retrieve_words(searched)
        best = candidates[0] if candidates else None
        if best is None or not best.confident:
            if cues.injection:
                # What is left of a message that tried to instruct the bot is not worth a guess.
                return BotAnswer(phrases.INJECTION, intent="injection")
            options = phrases.FALLBACKS_AGAIN if ctx.fallbacks >= 1 else phrases.FALLBACKS
            return BotAnswer(phrases.pick(options, seed), fallback=True, intent="fallback")
        second = candidates[1] if len(candidates) > 1 else None
        # Ask which one only when a one-word question fits two articles equally well.
        if (
            second is not None
            and second.confident
            and not follow_up
            and len(specific) <= 1
            and second.matched >= best.matched
            and second.title_hits >= best.title_hits
            and abs(second.score) >= 0.85 * abs(best.score)
        ):
            return self._which(best.id, second.id)
        if second is not None and not follow_up and best.rank - second.rank < _margin_needed(best):
            # Two articles fit almost equally well: on real questions the first of such a pair is
            # wrong about half the time, and a confident wrong answer costs the customer more
            # than one question back.
            return self._which(best.id, second.id)
        previous_terms = {words.stem(w) for w in terms(ctx.previous_customer_text())}
        asked_again = bool(previous_terms) and len(
            {words.stem(w) for w in content} & previous_terms
        ) >= max(1, len(content) // 2)
        return self._compose(
            ctx, cues, query, best.id, seed, asked_again, None if follow_up else searched
        )

    def _no_question(
        self,
        ctx: BotContext,
        cues: intents.Cues,
        seed: int,
        last_reply: str,
    ) -> BotAnswer:
        """Small talk: thanks and goodbyes, greetings, acknowledgements, "it doesn't work"."""
        if cues.injection:
            return BotAnswer(phrases.INJECTION, intent="injection")
        if (
            cues.thanks
            or intents.closes_after_offer(cues.cleaned, last_reply)
            or (intents.is_bare_no(cues.cleaned) and ctx.bot_turns() > 0)
        ):
            return BotAnswer(
                phrases.pick(phrases.CLOSINGS, seed).format(name=_with_name(ctx)),
                resolve=True,
                intent="closing",
            )
        if cues.greeting:
            return self._greeting(ctx, seed)
        if cues.vague:
            return BotAnswer(phrases.CLARIFY_DEFAULT, intent="clarify")
        if ctx.bot_turns() > 0 and not phrases.is_clarifying(last_reply):
            if cues.question and self._article_in(last_reply):
                # "So I don't have to do anything?" after an answer: nothing new to look up.
                return BotAnswer(phrases.pick(phrases.CHECK_BACK, seed), intent="ack")
            return BotAnswer(phrases.pick(phrases.ACK, seed), intent="ack")
        return BotAnswer(phrases.PROMPT, intent="prompt")

    def _rephrase(self, ctx: BotContext, seed: int) -> BotAnswer:
        """The customer did not follow the last answer: say it again, more simply."""
        article_id = self._article_in(ctx.last_reply_text())
        if article_id is None:
            return BotAnswer(phrases.CLARIFY_DEFAULT, intent="clarify")
        parsed = self._articles[article_id].parsed
        text = phrases.pick(phrases.REPHRASE, seed) + parsed.summary
        if parsed.steps:
            text += (
                " In the app: "
                + "; then ".join(phrases.lower_first(s.rstrip(".")) for s in parsed.steps[:3])
                + "."
            )
        text += " Would you like me to bring in a colleague to go through it with you?"
        return BotAnswer(text, kb_ids=[article_id], intent="rephrase")

    def _more_about(
        self, article_id: str, cues: intents.Cues, last_reply: str, seed: int
    ) -> BotAnswer:
        """A follow-up on the article we just used: its timing, its fees or its next steps."""
        indexed = self._articles[article_id]
        parsed = indexed.parsed
        if cues.how_long or cues.how_much:
            pattern = _DURATION if cues.how_long else _MONEY
            facts = [f for f in parsed.facts if pattern.search(f) and f not in last_reply]
            if facts:
                lead = "On timing: " if cues.how_long else "On cost: "
                return BotAnswer(
                    lead + " ".join(facts[:2]) + phrases.pick(phrases.CLOSERS, seed // 2),
                    kb_ids=[article_id],
                    intent="answer",
                )
            said = [
                f for f in (parsed.summary, *parsed.facts) if pattern.search(f) and f in last_reply
            ]
            if said:
                return BotAnswer(
                    "As I mentioned: " + said[0] + " Is there anything else I can help with?",
                    kb_ids=[article_id],
                    intent="answer",
                )
            what = "a more exact time" if cues.how_long else "a fee"
            return BotAnswer(
                f"I don't have {what} for that beyond what I said, I'm afraid. "
                "A colleague can check your case if you'd like.",
                kb_ids=[article_id],
                fallback=True,
                intent="fallback",
            )
        if parsed.steps and not any(step in last_reply for step in parsed.steps):
            return self._steps_of(article_id)
        return BotAnswer(
            "I don't have more detailed steps than that, I'm sorry. If you'd like, I can bring "
            "in a colleague to go through it with you.",
            kb_ids=[article_id],
            fallback=True,
            intent="fallback",
        )

    def _steps_of(self, article_id: str) -> BotAnswer:
        parsed = self._articles[article_id].parsed
        steps = [s.rstrip(".") for s in parsed.steps[:4]]
        text = (
            "Here's where to find it: "
            + "; ".join(f"{n}) {s}" for n, s in enumerate(steps, 1))
            + "."
        )
        return BotAnswer(text, kb_ids=[article_id], intent="steps")

    def _greeting(self, ctx: BotContext, seed: int) -> BotAnswer:
        if not ctx.last_reply_text():
            name = _name(ctx)
            return BotAnswer(
                phrases.pick(phrases.GREETINGS_FIRST, seed).format(name=f" {name}" if name else ""),
                intent="greeting",
            )
        return BotAnswer(phrases.pick(phrases.GREETINGS_AGAIN, seed), intent="greeting")

    def _compose(
        self,
        ctx: BotContext,
        cues: intents.Cues,
        query: str,
        article_id: str,
        seed: int,
        asked_again: bool,
        query_words: list[str] | None = None,
    ) -> BotAnswer:
        """:param query_words: the words of ``query`` when it is terms() output joined"""
        indexed = self._articles[article_id]
        art = indexed.parsed
        question = (
            words.stems(query)
            if query_words is None
            else frozenset(words.stem(w) for w in query_words)
        )
        last_reply = ctx.last_reply_text()
        # The same question answered by the same article again: the last answer did not help.
        repeat = asked_again and bool(art.summary) and art.summary in last_reply
        said_before = not repeat and bool(art.summary) and art.summary in last_reply
        cues_of = self._current().facts[article_id]
        sensitive = cues_of.sensitive

        # Words of the article's own topic (its title) say little about which fact is wanted.
        asked = question - indexed.title_stems
        topical = question & indexed.title_stems
        scored: list[tuple[float, int]] = []
        how_much, how_long = cues.how_much, cues.how_long
        for i, fact in enumerate(art.facts):
            if fact in last_reply:
                continue  # already said; a repeat question gets what it has not seen yet
            stems = indexed.fact_stems[i]
            score = len(asked & stems) + 0.5 * len(topical & stems)
            score += _POSITION_PRIOR[i] if i < len(_POSITION_PRIOR) else 0.0
            if cues_of.repeats_summary[i]:
                score -= 1.0  # mostly repeats the summary
            if how_much and cues_of.money[i]:
                score += 1.5
            if how_long and cues_of.duration[i]:
                score += 1.5
            scored.append((score, i))
        scored.sort(key=lambda item: (-item[0], item[1]))
        show_steps = cues.how_to and bool(art.steps)
        chosen = [i for score, i in scored[:2] if score >= 1.0]
        if len(chosen) == 2 and (scored[1][0] < 2.0 or show_steps):
            chosen = chosen[:1]
        if not chosen and scored and (repeat or said_before or not show_steps):
            # Nothing stands out: the best remaining fact (the first, on a tie) rounds off the summary.
            best_score, best_index = scored[0]
            if best_score >= 0 or repeat or said_before:
                chosen = [best_index]
        if said_before and chosen:
            # A new question about the same article: what it has not been told yet, not the summary again.
            art = Parsed(art.id, art.title, art.tags, "", art.facts, art.steps)

        parts: list[str] = []
        if repeat:
            parts.append("Sorry, it sounds like my last answer didn't cover it.")
        else:
            empathic = ctx.level in ("watch", "empathy") or any(
                r in ctx.reasons for r in ("frustration", "negative_sentiment", "repeat_question")
            )
            if sensitive:
                opener = ""  # no cheerful "Hi Maya!" before condolences or a scam
            elif empathic:
                opener = phrases.pick(phrases.EMPATHY, seed)
            elif name := _name(ctx):
                opener = f"Hi {name}! "
            else:
                opener = phrases.pick(phrases.OPENERS, seed)
            parts.append(opener + art.summary)
        for i in sorted(chosen):
            parts.append(art.facts[i])
        if show_steps and not repeat:
            steps = [s.rstrip(".") for s in art.steps[:3]]
            parts.append(
                "Here's how: " + "; ".join(f"{n}) {s}" for n, s in enumerate(steps, 1)) + "."
            )
        text = " ".join(p.strip() for p in parts if p.strip())
        if repeat:
            text += " If that still doesn't answer it, I can bring in a colleague."
        elif not sensitive:
            text += phrases.pick(phrases.CLOSERS, seed // 2)
        return BotAnswer(
            text, kb_ids=[article_id], fallback=repeat, intent="repeat" if repeat else "answer"
        )
