"""The embedded draft engine: offline, instant, and written the way a good agent writes.

A draft has up to four parts, each chosen from what the conversation shows rather than filled
into one template:

1. greeting and, on the agent's first message, who they are (first words: "you're talking
   to a person now" when the customer asked for one);
2. an acknowledgement that fits the strongest triage situation (condolences, fraud fear,
   frustration, hardship...; a line saying what went wrong only when the transcript shows
   it), at most one apology, and none at all on
   a routine question;
3. the facts: the sentences of the best knowledge-base article that answer the customer's
   words, as numbered steps when they are steps; anything the bot already said is left out
   and, when the bot already gave the whole answer, the agent offers a personal next step;
4. a closing that suits the situation (no rush after a loss, "I'll stay on this" after
   frustration, a plain offer of more help on routine questions).

Customer text never enters the draft verbatim: names and topics are recognised and then
spoken with the engine's own fixed words, so nothing the customer typed can steer it.
:func:`write` is a pure function of a :class:`~console.assist.context.DraftContext`;
:func:`stream` yields it sentence by sentence.
"""

from __future__ import annotations

import asyncio
import random
import re
from collections.abc import AsyncGenerator, Sequence
from dataclasses import dataclass, field

from rapidfuzz import fuzz

from console.assist import phrases as P
from console.assist.context import DraftContext
from console.assist.retrieval import REASON_TAGS, Article
from console.kb import split_body
from console.kb.words import content_stems
from console.names import first_name
from store.kb import KbArticle

ENGINE = "embedded"


@dataclass(frozen=True, slots=True)
class Style:
    """What the agent's regenerate instruction asked for, as the embedded engine reads it."""

    shorter: bool = False
    longer: bool = False
    formal: bool = False
    warmer: bool = False
    casual: bool = False
    no_apology: bool = False
    ignored: str | None = None
    """The instruction, when none of it was understood (shown to the agent as a notice)."""


def parse_instruction(instruction: str | None) -> Style:
    """Read "shorter", "more formal", "warmer, no apologies"... into a :class:`Style`."""
    if not instruction or not instruction.strip():
        return Style()
    text = instruction.lower()

    def has(words: Sequence[str]) -> bool:
        return any(w in text for w in words)

    formal = has(P.FORMAL) and "informal" not in text and "less formal" not in text
    casual = has(P.CASUAL) or "less formal" in text
    style = Style(
        shorter=has(P.SHORTER) and not has(P.LONGER),
        longer=has(P.LONGER),
        formal=formal,
        warmer=has(P.WARMER),
        casual=casual,
        no_apology=has(P.NO_APOLOGY),
    )
    if style == Style():
        return Style(ignored=instruction.strip()[:80])
    return style


@dataclass(frozen=True, slots=True)
class EmbeddedDraft:
    """A finished embedded draft."""

    text: str
    fragments: tuple[str, ...]
    """The text in the pieces :func:`stream` yields; they join to ``text``."""
    kb_ids: tuple[str, ...] = ()
    situations: tuple[str, ...] = ()
    notice: str | None = None
    topic: str | None = None
    parts: dict[str, str] = field(default_factory=dict)


# --- reading the conversation --------------------------------------------------------------


def situations(reasons: Sequence[str]) -> list[str]:
    """The situations present, strongest first (see :mod:`console.assist.phrases`)."""
    have = set(reasons)
    return [name for name, members in P.SITUATIONS if have & members]


_TOPIC_PATTERNS = [
    (
        re.compile(
            r"\b(?:" + "|".join(re.escape(k.strip()) for k in keys) + r")(?:s|es|ed|ing)?\b",
            re.IGNORECASE,
        ),
        phrase,
    )
    for keys, phrase in P.TOPICS
]


def find_topic(texts: Sequence[str]) -> str | None:
    """What the customer asks about, in the engine's words ("your refund"), newest text first.

    Within one message, the topic mentioned first wins ("my card payment was refused" is
    about the card); the list order breaks ties.
    """
    for text in reversed(texts):
        best: tuple[int, int, str] | None = None
        for rank, (pattern, phrase) in enumerate(_TOPIC_PATTERNS):
            m = pattern.search(text)
            if m and (best is None or (m.start(), rank) < best[:2]):
                best = (m.start(), rank, phrase)
        if best:
            return best[2]
    return None


_DEATH = re.compile(
    r"\b(?:died|passed|death|funeral|lost|bereave\w*|deceased|late|estate|probate|widow\w*)\b",
    re.IGNORECASE,
)
_RELATION = re.compile(
    r"\bmy\s+(?:late\s+|dear\s+|beloved\s+)?(" + "|".join(P.RELATIONS) + r")\b", re.IGNORECASE
)


def find_loss(texts: Sequence[str]) -> str:
    """Whose death the customer mentioned ("the loss of your mother"), else "your loss"."""
    for text in reversed(texts):
        if not _DEATH.search(text):
            continue
        m = _RELATION.search(text)
        if m:
            return f"the loss of your {m.group(1).lower()}"
    return "your loss"


_TOKEN = re.compile(r"[a-z0-9]+")
_words = content_stems


_BULLET = re.compile(r"^\s*(?:[-*\u2022]|\d+[.)])\s+")
_SENTENCE_END = re.compile(r"(?<=[.!?])\s+(?=[A-Z0-9\"'(])")
_IMPERATIVE = frozenset(
    "open go tap select choose click press enter check call contact freeze block send upload take make "
    "use visit follow confirm update request add cancel download log sign reply keep wait review order "
    "report change reset set ask pay find look turn switch unfreeze type scroll allow expect give "
    "include attach".split()
)


def article_sentences(body: str) -> list[str]:
    """An article's body as sentences, bullets unwrapped, headings and list intros dropped."""
    out: list[str] = []
    for line in body.splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        line = _BULLET.sub("", line).strip("*_ ")
        for sentence in _SENTENCE_END.split(line):
            sentence = sentence.strip()
            if len(sentence) < 12 or sentence.endswith(":"):
                continue
            if sentence[-1] not in ".!?":
                sentence += "."
            out.append(sentence[0].upper() + sentence[1:])
    return out


_WHEN = re.compile(
    r"\b(?:how long|when|how soon|how many days|how quickly|still not|yet)\b", re.IGNORECASE
)
_DURATION = re.compile(
    r"\b(?:\d+|one|two|three|five|ten)\b.{0,20}\b(?:minutes?|hours?|days?|weeks?)\b|\binstant",
    re.IGNORECASE,
)
# Comfort lines in an article ("We're here to help"): the draft's own acknowledgement does
# that job better, so they are facts only when they mention what the customer asked.
_FILLER = re.compile(
    r"^(?:we're here|we are here|we understand|we know|we're sorry|we are sorry)", re.IGNORECASE
)
_LEADERS = frozenset({"then", "next", "finally", "first", "now", "please", "simply", "just"})


def _is_step(sentence: str) -> bool:
    first = [w for w in _TOKEN.findall(sentence.lower()[:30]) if w not in _LEADERS]
    return bool(first) and first[0] in _IMPERATIVE


def _said_before(sentence: str, bot_texts: Sequence[str]) -> bool:
    s = sentence.lower()
    return any(fuzz.partial_ratio(s, b.lower()) >= 82 for b in bot_texts if b)


@dataclass(frozen=True, slots=True)
class Facts:
    """What one article contributes to a draft."""

    article: Article
    sentences: list[str]
    """The facts that best answer the customer, in article order."""
    steps: list[str]
    """The article's numbered steps, when the customer needs to act."""
    already_said: list[str]
    """Facts and steps the bot already gave in this conversation."""
    best: str | None = None
    """The single most useful new fact."""


_QUESTION = re.compile(
    r"\?\s*$|^\W*(?:what|how|when|where|why|can|could|is|are|do|does|will|which)\b", re.IGNORECASE
)
_STILL_THERE = re.compile(
    r"\b(?:still there|anyone there|are you there|hello\s*\?|you there)", re.IGNORECASE
)
# Words that show a situation arose later in the chat (the agent has not acknowledged it yet).
_FRESH_SIGNS = (
    ("bereavement", re.compile(r"\b(?:died|passed away|death|funeral)\b")),
    ("fraud", re.compile(r"\b(?:scam\w*|fraud\w*|didn't make|did not make|stolen|hacked)\b")),
    ("hardship", re.compile(r"\b(?:can't afford|cannot afford|lost my job|struggling|debt)\b")),
)
_HOW = re.compile(
    r"\b(?:how (?:do|can|to|should)|what (?:do|should|can) i do|what now|steps?|help me|urgent)\b",
    re.IGNORECASE,
)


def _finish(sentence: str) -> str:
    sentence = sentence.strip().strip("*_ ")
    if sentence and sentence[-1] not in ".!?":
        sentence += "."
    return _cap(sentence)


def choose_facts(
    article: Article,
    query: str,
    bot_texts: Sequence[str],
    limit: int,
    *,
    want_steps: bool = False,
    step_limit: int = 4,
    situation_words: frozenset[str] = frozenset(),
) -> Facts:
    """The ``limit`` facts of ``article`` that best answer ``query`` (in article order) and,
    when ``want_steps``, its steps, leaving out whatever the bot already said.

    Articles in the KB's format (summary, bullet facts, ``## Steps``) are read by their parts;
    any other text is read sentence by sentence.
    """
    parsed = split_body(KbArticle(article.id, article.title, article.body, article.tags))
    pool = [_finish(x) for x in _SENTENCE_END.split(parsed.summary) if len(x.strip()) >= 12]
    pool += [_finish(f) for f in parsed.facts]
    steps = [_finish(x) for x in parsed.steps]
    if not pool and not steps:
        pool = article_sentences(article.body)
    pool = [x for x in (_without_sorry(p) for p in pool) if len(x) >= 12]
    asked = _words(query)
    titled = _words(article.title) - asked
    timing = bool(_WHEN.search(query))
    said = [x for x in pool + steps if bot_texts and _said_before(x, bot_texts)]
    scored = []
    for index, sentence in enumerate(pool):
        if sentence in said:
            continue
        words = _words(sentence)
        if _FILLER.search(sentence) and not words & asked:
            continue
        score = (
            len(words & asked) * 2.0
            + len(words & titled) * 0.5
            + len(words & situation_words) * 1.0
        )
        score += 1.0 if _is_step(sentence) else 0.0
        score += 0.5 if any(c.isdigit() for c in sentence) else 0.0
        if timing and _DURATION.search(sentence):
            score += 2.5
        score -= index * 0.25  # articles put what matters first
        if index == 0 and parsed.summary:
            score += 1.5  # the summary is written to answer on its own
        scored.append((score, index, sentence))
    chosen_steps = [x for x in steps if x not in said][:step_limit] if want_steps else []
    if chosen_steps:
        limit = min(limit, 1)  # the steps carry the answer; one fact sets the scene
    best = sorted(scored, key=lambda t: (-t[0], t[1]))[:limit]
    chosen = [x for _, _, x in sorted(best, key=lambda t: t[1])]
    return Facts(article, chosen, chosen_steps, said, best[0][2] if best else None)


# --- writing --------------------------------------------------------------------------------


def _no_sorry(options: Sequence[str]) -> list[str]:
    kept = [o for o in options if "sorry" not in o.lower() and "apolog" not in o.lower()]
    return kept or list(options)


def _first_sentence(text: str) -> str:
    parts = re.split(r"(?<=[.!?])\s+", text, maxsplit=1)
    return parts[0]


_HAPPY = re.compile(r"(^|[.!?]\s+|,\s+)[Hh]appy to help")


def _formalise(text: str) -> str:
    for short, full in P.EXPANSIONS:
        text = re.sub(rf"(?<![A-Za-z]){re.escape(short)}(?![A-Za-z])", full, text)
    text = _HAPPY.sub(r"\1I would be happy to help", text)
    return text.replace(" —", ",")


_SORRY = re.compile(r"\bsorry\b|\bapologi", re.IGNORECASE)


def _without_sorry(sentence: str) -> str:
    """A KB sentence minus its comforting clause ("We are sorry for your loss; ..."): the
    draft's own acknowledgement does that, once."""
    if not _SORRY.search(sentence):
        return sentence
    clauses = [c.strip() for c in re.split(r"[;:]\s+|\s+[\u2013\u2014-]\s+", sentence)]
    kept = [c for c in clauses if c and not _SORRY.search(c)]
    return _finish("; ".join(kept)) if kept else ""


def _cap(text: str) -> str:
    return text[:1].upper() + text[1:] if text else text


class _Writer:
    """Assembles one draft; one instance per call of :func:`write`."""

    def __init__(self, ctx: DraftContext, style: Style) -> None:
        self.ctx = ctx
        self.style = style
        self.rng = random.Random(f"{ctx.conversation_id}:{ctx.seed}:{ctx.based_on_message_id}")
        self.name = first_name(ctx.customer_name)
        self.agent = first_name(ctx.agent)
        self.situations = situations(ctx.reasons)
        customer_texts = [t.text for t in ctx.customer_turns]
        self.customer_texts = customer_texts
        self.topic = find_topic(customer_texts[-2:]) if customer_texts else None
        self.apologised = False
        self.asked_question = False
        self.gave_steps = False
        # What the transcript shows happened, for the lines that say so (P.CLAIMS).
        self.shown = {
            name
            for name, holds in (("repeated", ctx.customer_repeated), ("bot", ctx.bot_fell_short))
            if holds
        }

    def pick(self, options: Sequence[str], *, specific: bool = False, **values: str) -> str:
        """One of ``options`` at random, never a line whose claim the transcript does not show
        (:data:`~console.assist.phrases.CLAIMS`); with ``specific``, a line that names what
        happened is preferred to one that claims nothing, when one fits."""
        options = [o for o in options if self._true(o)] or list(options)
        if specific:
            options = [o for o in options if o in P.CLAIMS] or options
        if self.style.no_apology or self.apologised:
            options = _no_sorry(options)
        choice = self.rng.choice(list(options))
        if "sorry" in choice.lower() or "apolog" in choice.lower():
            self.apologised = True
        return choice.format(**values)

    def _true(self, line: str) -> bool:
        claim = P.CLAIMS.get(line)
        return claim is None or bool(claim & self.shown)

    def opening(self) -> tuple[str, list[str]]:
        """The greeting and the sentences that follow it in the first paragraph."""
        style = self.style
        if self.ctx.agent_has_written and not style.formal:
            return "", self.follow_up()
        if style.formal:
            greeting = self.pick(
                P.GREETING_FORMAL if self.name else P.GREETING_FORMAL_NO_NAME, name=self.name or ""
            )
        elif style.casual and self.name:
            greeting = f"Hi {self.name}!"
        else:
            greeting = self.pick(
                P.GREETING if self.name else P.GREETING_NO_NAME, name=self.name or ""
            )
        sentences: list[str] = []
        asked_for_person = "human_request" in self.situations
        if not self.ctx.agent_has_written and not style.shorter:
            sentences.append(self.introduction(asked_for_person))
        elif asked_for_person and not self.ctx.agent_has_written:
            sentences.append(self.pick(P.INTRO_HUMAN_NO_NAME))
        sentences.extend(self.acknowledgement())
        return greeting, sentences

    def introduction(self, asked_for_person: bool) -> str:
        """Who this agent is, fitted to whom the customer was last talking to: the bot, a
        colleague who wrote, or one they were only told had joined (a barge before anyone
        wrote), and whether a person has written to them at all."""
        ctx = self.ctx
        colleague = first_name(ctx.colleague)
        bank: tuple[str, ...]
        if colleague and ctx.colleague_wrote:
            bank = P.INTRO_FROM_COLLEAGUE if self.agent else P.INTRO_FROM_COLLEAGUE_NO_NAME
        elif asked_for_person and not ctx.person_has_written:
            bank = P.INTRO_HUMAN if self.agent else P.INTRO_HUMAN_NO_NAME
        elif colleague:
            bank = P.INTRO_AFTER_JOINED if self.agent else P.INTRO_AFTER_JOINED_NO_NAME
        elif ctx.previous is None and ctx.colleague_has_written:
            # Not told whom it came from, but a colleague wrote: never "from the assistant".
            bank = P.INTRO_COLLEAGUE if self.agent else P.INTRO_COLLEAGUE_NO_NAME
        elif asked_for_person:
            bank = P.INTRO_HUMAN if self.agent else P.INTRO_HUMAN_NO_NAME
        else:
            bank = P.INTRO if self.agent else P.INTRO_NO_NAME
            if not ctx.from_the_bot:
                bank = tuple(b for b in bank if not any(w in b for w in P.FROM_THE_ASSISTANT))
        return self.pick(bank, agent=self.agent or "", colleague=colleague or "")

    def follow_up(self) -> list[str]:
        """The first words of a later reply: no greeting, no second round of condolences."""
        name = self.name or ""
        if _STILL_THERE.search(self.ctx.last_customer_text):
            opener = self.pick(P.STILL_HERE if name else P.STILL_HERE_NO_NAME, name=name)
        else:
            opener = self.pick(P.FOLLOW_UP if name else P.FOLLOW_UP_NO_NAME, name=name)
        # A situation that was not there before the agent's last reply still deserves a word,
        # in place of the thanks ("Sam, thank you for being open with me...").
        fresh = self.fresh_situation()
        if fresh is not None:
            ack = self.pick(P.ACK[fresh], loss=find_loss(self.customer_texts))
            return [f"{name}, {ack}" if name else _cap(ack)]
        return [opener]

    def fresh_situation(self) -> str | None:
        """A situation whose signs only appear after the agent's last message, if any."""
        turns = self.ctx.turns
        last_agent = max((i for i, t in enumerate(turns) if t.role == "agent"), default=-1)
        later = " ".join(t.text for t in turns[last_agent + 1 :] if t.role == "customer").lower()
        earlier = " ".join(t.text for t in turns[: last_agent + 1] if t.role == "customer").lower()
        for situation, pattern in _FRESH_SIGNS:
            if (
                situation in self.situations
                and pattern.search(later)
                and not pattern.search(earlier)
            ):
                return situation
        return None

    def acknowledgement(self) -> list[str]:
        lead = next((s for s in self.situations if s in P.ACK), None)
        out: list[str] = []
        if lead is None:
            answered = bool(self.ctx.articles)
            if self.topic and answered:
                question = bool(_QUESTION.search(self.ctx.last_customer_text))
                out.append(
                    self.pick(P.ROUTINE_QUESTION if question else P.ROUTINE, topic=self.topic)
                )
            elif self.topic:
                pass  # the reply names the topic when it asks for details
            elif (
                "human_request" not in self.situations
                and len(_words(self.ctx.last_customer_text)) >= 2
            ):
                out.append(self.pick(P.ROUTINE_NO_TOPIC))
            if self.style.warmer:
                out.insert(0, "thanks so much for getting in touch!")
            return out
        if lead == "bereavement":
            loss = find_loss(self.customer_texts)
            options = P.ACK[lead] if not self.style.no_apology else (P.ACK[lead][2],)
            out.append(self.pick(options, loss=loss))
        else:
            out.append(self.pick(P.ACK[lead], specific=True))
        if self.style.shorter:
            return [_first_sentence(out[0])]
        for other in self.situations:
            if other != lead and other in P.SECONDARY:
                out.append(self.pick(P.SECONDARY[other], specific=True))
                break
        if self.style.warmer and lead in ("abuse", "negative", "long_wait"):
            out.append("I really appreciate you bearing with us.")
        return out

    def facts(self) -> tuple[list[str], list[str], list[str]]:
        """Body paragraphs, the article ids used, and whether a list was written."""
        ctx = self.ctx
        if "safety" in self.situations:
            return [P.SAFETY_HELP], [], []
        query = " ".join(self.customer_texts[-2:])
        articles = list(ctx.articles)  # ranked and filtered by console.assist.retrieval.rank
        limit = 1 if self.style.shorter else 5 if self.style.longer else 3
        if not articles:
            vague = len(_words(self.customer_texts[-1] if self.customer_texts else "")) < 2
            if not self.customer_texts or (
                self.topic is None and (vague or "human_request" in self.situations)
            ):
                self.asked_question = True
                return [self.pick(P.ASK_WHAT)], [], []
            self.asked_question = True
            if self.topic:
                return [self.pick(P.NO_ARTICLE_TOPIC, topic=self.topic)], [], []
            return [self.pick(P.NO_ARTICLE)], [], []
        # Steps when money is at risk (first reply) or when the customer asks how.
        urgent_action = "fraud" in self.situations and not (
            ctx.agent_has_written or ctx.colleague_has_written
        )
        want_steps = urgent_action or bool(_HOW.search(query))
        step_limit = 2 if self.style.shorter else 8 if self.style.longer else 4
        # What the agent already wrote is not repeated either (but only the bot's words make
        # the draft say "the assistant already shared...").
        agent_texts = [t.text for t in ctx.turns if t.role == "agent"]
        wanted = frozenset().union(*(P.FACT_WORDS.get(x, frozenset()) for x in self.situations))
        facts = choose_facts(
            articles[0],
            query,
            ctx.bot_texts + agent_texts,
            limit,
            want_steps=want_steps,
            step_limit=step_limit,
            situation_words=frozenset(_words(" ".join(wanted))),
        )
        if agent_texts:
            bot_said = [x for x in facts.already_said if _said_before(x, ctx.bot_texts)]
            facts = Facts(facts.article, facts.sentences, facts.steps, bot_said, facts.best)
        used = [articles[0].id]
        if urgent_action and not facts.steps:
            # The best match only explains; another fraud article says what to do now: that
            # one leads, with its own summary and steps.
            for other in articles[1:]:
                if not {t.strip().lower() for t in other.tags.split(",")} & REASON_TAGS["fraud"]:
                    continue
                more = choose_facts(
                    other,
                    query,
                    ctx.bot_texts + agent_texts,
                    1,
                    want_steps=True,
                    step_limit=step_limit,
                    situation_words=frozenset(_words(" ".join(wanted))),
                )
                if more.steps:
                    facts = Facts(
                        other,
                        more.sentences or facts.sentences[:1],
                        more.steps,
                        facts.already_said + more.already_said,
                        more.best or facts.best,
                    )
                    used = [other.id] if more.sentences else [other.id, articles[0].id]
                    break
        paragraphs: list[str] = []
        bot_cited = any(facts.article.id in t.kb_ids for t in ctx.turns if t.role == "bot")
        new = len(facts.sentences) + len(facts.steps)
        # The bot gave this answer already and the customer is still stuck: say so, don't
        # repeat it, and take it on personally. Not stuck (the agent stepped in after a good
        # answer, or the customer moved on): just add what the bot did not say.
        turns = ctx.turns
        # A bot turn without articles was a fallback or a clarifying question, not an answer.
        last_bot = max((i for i, t in enumerate(turns) if t.role == "bot" and t.kb_ids), default=-1)
        last_customer = max((i for i, t in enumerate(turns) if t.role == "customer"), default=-1)
        wrote_after_bot = last_customer > last_bot
        stuck = "frustration" in self.situations or "complaint" in self.situations
        repeated = facts.already_said and wrote_after_bot and (stuck or (bot_cited and new == 0))
        if facts.already_said and not wrote_after_bot and not repeated:
            extra = facts.steps[:1] or ([facts.best] if facts.best else [])
            if extra:
                return [self.pick(P.ADD_TO_BOT) + " " + extra[0]], used, extra
            self.asked_question = True
            return [self.pick(P.BOT_ANSWERED)], used, []
        if repeated:
            paragraphs.append(self.pick(P.ALREADY_SAID) + " " + self.pick(P.NEXT_STEP_PERSONAL))
            extra = facts.steps[:1] or ([facts.best] if facts.best else [])
            if extra and not self.style.shorter:
                paragraphs.append(self.pick(P.ADDING) + " " + extra[0])
            return paragraphs, used, []
        sentences, steps = facts.sentences, facts.steps
        if not sentences and not steps:
            return [self.pick(P.NEXT_STEP_PERSONAL)], used, []
        lead_bank = next((P.LEAD_FIRST[s] for s in self.situations if s in P.LEAD_FIRST), None)
        if steps:
            if sentences:
                paragraphs.append(" ".join(sentences))
            self.gave_steps = True
            lines = "\n".join(f"{i}. {s}" for i, s in enumerate(steps, 1))
            steps_bank = next(
                (P.LEAD_STEPS_FIRST[s] for s in self.situations if s in P.LEAD_STEPS_FIRST), None
            )
            paragraphs.append(f"{self.pick(steps_bank or lead_bank or P.LEAD_STEPS)}\n{lines}")
        elif self.style.shorter or len(sentences) == 1:
            paragraphs.append(sentences[0])
        else:
            paragraphs.append(f"{self.pick(lead_bank or P.LEAD_FACTS)} {' '.join(sentences)}")
        return paragraphs, used, sentences + steps

    def closing(self) -> list[str]:
        if self.style.shorter:
            return []
        lead = next((s for s in self.situations if s in P.CLOSING), None)
        if lead is None:
            if self.style.warmer:
                return [self.pick(P.CLOSING_WARM)]
            options = P.CLOSING["routine"]
            if self.style.formal:
                options = ("Please let me know if there is anything else I can help with.",)
            line = self.pick(options)
            return [line] if line and not self.asked_question else []
        options = P.CLOSING[lead]
        if not self.gave_steps:
            # "Once that's done" needs steps to refer to.
            options = tuple(o for o in options if not o.startswith("Once")) or options
        lines = [self.pick(options)]
        if self.style.warmer:
            lines.append(self.pick(P.CLOSING_WARM))
        return lines


def write(ctx: DraftContext) -> EmbeddedDraft:
    """Write the whole draft for ``ctx`` (pure, a fraction of a millisecond)."""
    style = parse_instruction(ctx.instruction)
    w = _Writer(ctx, style)
    greeting, first = w.opening()
    body, kb_ids, _ = w.facts()
    closing = w.closing()

    paragraphs: list[list[str]] = []
    if style.formal:
        paragraphs.append([greeting])
        if first:
            paragraphs.append([_cap(s) for s in first])
    else:
        if not greeting:
            paragraphs.append([_cap(s) for s in first])
        else:
            # The greeting runs into the first sentence ("Hi Maya, I'm Ana..."), the way people type.
            lead = [greeting + " " + first[0]] if first else [greeting.rstrip(",— ") + "!"]
            paragraphs.append(lead + [_cap(s) for s in first[1:]])
    for paragraph in body:
        paragraphs.append([_cap(paragraph)])
    if closing:
        paragraphs.append([_cap(s) for s in closing])
    if style.formal:
        sign = w.pick(P.SIGN_OFF_FORMAL)
        paragraphs.append([f"{sign}\n{w.agent}" if w.agent else sign])

    fragments: list[str] = []
    for pi, para in enumerate(paragraphs):
        for si, sentence in enumerate(para):
            text = _formalise(sentence) if style.formal else sentence
            sep = "" if si == len(para) - 1 else " "
            fragments.append(text + sep)
        if pi != len(paragraphs) - 1:
            fragments[-1] += "\n\n"
    notice = None
    if style.ignored:
        notice = f"offline drafts follow shorter/longer/formal/warmer/no apologies; ignored \u201c{style.ignored}\u201d"
    return EmbeddedDraft(
        text="".join(fragments),
        fragments=tuple(fragments),
        kb_ids=tuple(kb_ids),
        situations=tuple(w.situations),
        notice=notice,
        topic=w.topic,
    )


async def stream(ctx: DraftContext) -> AsyncGenerator[str, None]:
    """Yield the draft sentence by sentence, giving the event loop a turn between them."""
    draft = write(ctx)
    for fragment in draft.fragments:
        yield fragment
        await asyncio.sleep(0)
