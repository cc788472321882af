"""What a draft is written from: the conversation as the agent sees it, gathered once.

:func:`build_context` reads the store (conversation, recent transcript, KB articles) so the
engines themselves never touch SQLite: the embedded engine is a pure function of a
:class:`DraftContext`, which keeps it fast and testable.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass, field

from console.assist.retrieval import Article, draft_articles
from console.kb.words import content_stems
from console.untrusted import clean
from store.db import Store
from store.history import talking_to_before
from store.queries import get_conversation, transcript

# The transcript an engine sees: enough to know what was said, not the whole history.
RECENT_MESSAGES = 16
# Articles a draft sees (console.assist.retrieval ranks them).
KB_LIMIT = 3


@dataclass(frozen=True, slots=True)
class Turn:
    """One message of the transcript: ``role`` is customer, bot, agent or system."""

    role: str
    text: str
    id: int = 0
    kb_ids: tuple[str, ...] = ()
    """Articles the bot cited in this message (from its ``meta``)."""
    abusive: bool = False
    """Customer text triage flagged ``abuse`` (or not triaged yet in a conversation flagged so):
    masked for agents, so never quoted back to them (the hand-over summary)."""
    author: str | None = None
    """Who wrote an agent's message (``None``: not known, taken as this draft's agent)."""
    fallback: bool = False
    """A bot message in which the bot said it did not know (its ``meta``)."""
    intent: str | None = None
    """What a bot message was (``answer``, ``clarify``, ``greeting``... from its ``meta``)."""


# Bot messages that were not an attempt at the customer's question: saying hello, handing over
# at the customer's request, refusing an injection, saying goodbye.
NOT_AN_ATTEMPT = frozenset({"greeting", "handoff", "injection", "closing"})
# Two customer messages ask the same thing when their content words mostly coincide (the
# triage engine's repeat rule, on content stems so "hello?" twice is no repeated question).
SAME_QUESTION = 0.6


@dataclass(frozen=True, slots=True)
class DraftContext:
    """Everything an engine needs to write one draft."""

    conversation_id: int
    customer_name: str
    agent: str
    turns: tuple[Turn, ...]
    reasons: tuple[str, ...] = ()
    level: str = "calm"
    articles: tuple[Article, ...] = ()
    instruction: str | None = None
    seed: int = 0
    """Chooses among phrasings; a regenerate passes a new one so the wording changes."""
    based_on_message_id: int | None = None
    extra: dict[str, str] = field(default_factory=dict)
    previous: str | None = None
    """Who the customer was last talking to before this agent: ``"bot"``, a colleague's
    login (told "Ana joined", even if Ana never wrote: a barge), or ``None`` (not known)."""
    bot_fallbacks: int = 0
    """The conversation's count of bot replies that said it did not know (since the bot last
    got it): what the conversation header shows, and it covers replies older than ``turns``."""

    @property
    def customer_turns(self) -> list[Turn]:
        """The customer's messages, oldest first."""
        return [t for t in self.turns if t.role == "customer"]

    @property
    def last_customer_text(self) -> str:
        """The newest customer message ('' when the customer has not written)."""
        turns = self.customer_turns
        return turns[-1].text if turns else ""

    @property
    def bot_texts(self) -> list[str]:
        """What the bot already said in this conversation."""
        return [t.text for t in self.turns if t.role == "bot"]

    @property
    def bot_tried(self) -> bool:
        """Whether the bot replied to the customer's question here (an answer, a clarifying
        question, "I don't know"), not only hello, goodbye or "I'm bringing in a person"."""
        return self.bot_fallbacks > 0 or any(
            t.role == "bot" and t.intent not in NOT_AN_ATTEMPT for t in self.turns
        )

    @property
    def bot_fell_short(self) -> bool:
        """Whether the transcript shows the bot did not sort it out: it tried and the customer
        still needs a person, or it said it could not answer (``bot_fallback``: also when the
        hand-over notice said so in its place). False when the bot never answered at all."""
        return self.bot_tried or "bot_fallback" in self.reasons

    @property
    def customer_repeated(self) -> bool:
        """Whether the customer had to say it again: triage saw a repeated question, or two of
        their messages in the transcript ask the same thing."""
        if "repeat_question" in self.reasons:
            return True
        seen: list[frozenset[str]] = []
        for turn in self.customer_turns:
            words = content_stems(turn.text)
            if len(words) < 2:
                continue
            if any(len(words & w) / len(words | w) >= SAME_QUESTION for w in seen):
                return True
            seen.append(words)
        return False

    @property
    def agent_has_written(self) -> bool:
        """Whether this agent already wrote to the customer (no introduction needed)."""
        return any(t.role == "agent" and t.author in (None, self.agent) for t in self.turns)

    @property
    def colleague_has_written(self) -> bool:
        """Whether another person of the team wrote to the customer before this agent (the
        conversation was transferred, or a supervisor barged in): the introduction says so."""
        return any(t.role == "agent" and t.author not in (None, self.agent) for t in self.turns)

    @property
    def colleague(self) -> str | None:
        """The colleague this agent takes over from, when the customer was last with one."""
        if self.previous in (None, "bot", self.agent):
            return None
        return self.previous

    @property
    def colleague_wrote(self) -> bool:
        """Whether that colleague wrote to the customer (in the transcript the draft sees)."""
        return any(t.role == "agent" and t.author == self.colleague for t in self.turns)

    @property
    def person_has_written(self) -> bool:
        """Whether anyone of the team already wrote to the customer here."""
        return any(t.role == "agent" for t in self.turns)

    @property
    def from_the_bot(self) -> bool:
        """Whether the customer was last talking to the bot, and it did say something."""
        return self.colleague is None and self.previous != self.agent and bool(self.bot_texts)


def _turns(rows: list[dict], conversation_reasons: Iterable[str] = ()) -> tuple[Turn, ...]:
    flagged = "abuse" in conversation_reasons
    turns = []
    for r in rows:
        if r["role"] == "note":
            continue
        meta = r.get("meta") or {}
        kb = meta.get("kb") if isinstance(meta, dict) else None
        turns.append(
            Turn(
                r["role"],
                clean(r["text"]),
                r["id"],
                tuple(str(k) for k in kb) if isinstance(kb, list) else (),
                r["role"] == "customer"
                and (
                    meta["abusive"]
                    if isinstance(meta, dict) and isinstance(meta.get("abusive"), bool)
                    else "abuse" in (r.get("reasons") or ()) or (flagged and r.get("level") is None)
                ),
                r.get("author") if r["role"] == "agent" else None,
                r["role"] == "bot" and isinstance(meta, dict) and meta.get("fallback") is True,
                str(meta["intent"])
                if r["role"] == "bot" and isinstance(meta, dict) and meta.get("intent")
                else None,
            )
        )
    return tuple(turns)


_ASKS_PERSON = re.compile(
    r"\b(?:real|actual|human|live)\s+(?:person|human|agent|being)\b|\b(?:speak|talk) to (?:a|an|someone)\b"
    r"|^\W*(?:agent|human|operator)\W*$|\basked for a (?:person|human)\b",
    re.IGNORECASE,
)
# Plain cues that add a triage reason for the draft's sake. Triage decides who needs a person
# and may weigh a sign lower; the draft still has to speak to it ("I entered my card details
# on the link" is fraud, whatever the score).
CUES: tuple[tuple[str, re.Pattern[str]], ...] = (
    ("human_request", _ASKS_PERSON),
    (
        "fraud",
        re.compile(
            r"\b(?:scam(?:med)?|phishing|fraudster|hacked|stolen|didn't make|did not make|"
            r"didn't authori[sz]e|entered my card details|got into my account)\b",
            re.IGNORECASE,
        ),
    ),
    ("bereavement", re.compile(r"\b(?:passed away|died|funeral)\b", re.IGNORECASE)),
    (
        "long_wait",
        re.compile(
            r"\b(?:still waiting|been waiting|waiting for ages|how long is this going to take"
            r"|still nothing|anyone there)\b",
            re.IGNORECASE,
        ),
    ),
    (
        "financial_hardship",
        re.compile(
            r"\b(?:lost my job|can't afford|cannot afford|struggling to pay)\b", re.IGNORECASE
        ),
    ),
)


def cue_reasons(texts: list[str]) -> list[str]:
    """Reasons the customer's own words make plain."""
    joined = " ".join(texts)
    return [reason for reason, cue in CUES if cue.search(joined)]


def build_context(
    store: Store,
    conversation_id: int,
    *,
    agent: str,
    instruction: str | None = None,
    seed: int = 0,
    kb_limit: int = KB_LIMIT,
) -> DraftContext:
    """Read what a draft for ``conversation_id`` needs from the store.

    :param agent: the agent the draft is for (named in the introduction)
    :param instruction: the agent's regenerate instruction, if any
    :param seed: picks the phrasing; vary it to get a different wording
    :raises NotFound: no such conversation
    """
    conversation = get_conversation(store, conversation_id)
    rows = transcript(store, conversation_id, last=RECENT_MESSAGES, include_notes=False)
    reasons = list(conversation["reasons"])
    turns = _turns(rows, reasons)
    # The conversation's verdict can lag the newest customer message; add that message's own.
    for r in reversed(rows):
        if r["role"] == "customer":
            reasons.extend(x for x in r.get("reasons") or [] if x not in reasons)
            break
    reasons.extend(
        r for r in cue_reasons([t.text for t in turns if t.role == "customer"]) if r not in reasons
    )
    customer = [t.text for t in turns if t.role == "customer"]
    articles: tuple[Article, ...] = ()
    if any(text.strip() for text in customer[-3:]):
        cited = [k for t in turns if t.role == "bot" for k in t.kb_ids]
        earlier = " ".join(reversed(customer[-3:-1]))
        articles = tuple(
            draft_articles(store, customer[-1], earlier, reasons, cited, limit=kb_limit)
        )
    based_on = max((t.id for t in turns if t.role == "customer"), default=None)
    return DraftContext(
        conversation_id=conversation_id,
        customer_name=conversation["customer_name"],
        agent=agent,
        turns=turns,
        reasons=tuple(reasons),
        level=conversation["level"],
        articles=articles,
        instruction=instruction,
        seed=seed,
        based_on_message_id=based_on,
        previous=talking_to_before(store, conversation_id, agent),
        bot_fallbacks=int(conversation.get("bot_fallbacks") or 0),
    )
