"""What the hub gives the bot (:class:`BotContext`) and what it gets back (:class:`BotAnswer`)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

from console.fallback_words import LLM_FALLBACKS

Engine = Literal["embedded", "llm"]


@dataclass(slots=True)
class BotContext:
    """One conversation at the moment the bot must answer its latest customer message.

    :param messages: the transcript, oldest first: ``{"role": "customer"|"bot"|"agent"|"system",
        "text": "..."}``; the last customer message is the one to answer
    :param level: triage level (``calm < watch < empathy < urgent``)
    :param reasons: triage reasons (DESIGN.md section 5 vocabulary)
    :param fallbacks: how many times the bot has already not known the answer here
    """

    conversation_id: int
    customer_name: str = ""
    messages: list[dict[str, str]] = field(default_factory=list)
    level: str = "calm"
    reasons: list[str] = field(default_factory=list)
    fallbacks: int = 0

    def last_customer_text(self) -> str:
        """The newest customer message ('' when there is none)."""
        for message in reversed(self.messages):
            if message.get("role") == "customer":
                return str(message.get("text") or "")
        return ""

    def previous_customer_text(self) -> str:
        """The customer message before the newest one ('' when there is none)."""
        seen = False
        for message in reversed(self.messages):
            if message.get("role") == "customer":
                if seen:
                    return str(message.get("text") or "")
                seen = True
        return ""

    def last_reply_text(self) -> str:
        """The newest bot or agent message ('' when there is none)."""
        for message in reversed(self.messages):
            if message.get("role") in ("bot", "agent"):
                return str(message.get("text") or "")
        return ""

    def bot_turns(self) -> int:
        """How many times the bot has spoken in this conversation."""
        return sum(1 for m in self.messages if m.get("role") == "bot")


@dataclass(slots=True)
class BotAnswer:
    """The bot's reply and what the hub should do with the conversation.

    :param text: the reply for the customer (plain text, never markup)
    :param handoff: a person should take over (``handoff_reason`` from the triage vocabulary)
    :param fallback: the bot did not know; counted toward the hand-off policy
    :param resolve: the customer closed the conversation; resolve after replying
    :param kb_ids: the articles the reply is based on
    :param engine: ``embedded`` or ``llm`` (the engine that produced ``text``)
    :param model: the LLM's model name when ``engine == "llm"``
    :param notice: a one-line note for agents, e.g. why the LLM was not used this time
    :param intent: what the bot understood (``answer``, ``clarify``, ``greeting``, ...), for logs
    :param llm_fallback: why the LLM's answer was not used, from :data:`LLM_FALLBACKS`
        (``None`` when it was used, or no LLM was asked)
    :param llm_text: what the LLM wrote when it was not used (for agents, never the customer)
    :param problems: what the checks found wrong with it, one short line each
    :param llm_handoff: the hand-off reason the LLM gave, when its hand-off was overruled
    :param choices: replies the customer can pick with one click (the web chat's quick-reply
        buttons); each one, sent back as the customer's message, is understood as that choice
    """

    text: str
    handoff: bool = False
    handoff_reason: str | None = None
    fallback: bool = False
    resolve: bool = False
    kb_ids: list[str] = field(default_factory=list)
    engine: Engine = "embedded"
    model: str | None = None
    notice: str | None = None
    intent: str = "answer"
    llm_fallback: str | None = None
    llm_text: str | None = None
    problems: list[str] = field(default_factory=list)
    llm_handoff: str | None = None

    def llm_decision(self) -> str | None:
        """One line on what became of the LLM's answer this turn (``None``: no LLM was asked)."""
        if self.llm_fallback:
            why = LLM_FALLBACKS.get(self.llm_fallback, self.llm_fallback)
            return f"{why}: {self.notice}" if self.notice else why
        if self.engine != "llm":
            return None
        if self.handoff:
            return f"LLM handed off ({self.handoff_reason})"
        return f"LLM answer, grounded in {', '.join(self.kb_ids) or 'no article (nothing to cite)'}"

    choices: list[str] = field(default_factory=list)

    def meta(self) -> dict[str, object]:
        """The fields worth storing with the message (``messages.meta``)."""
        out: dict[str, object] = {"engine": self.engine, "intent": self.intent}
        if self.kb_ids:
            out["kb"] = list(self.kb_ids)
        if self.model:
            out["model"] = self.model
        if self.notice:
            out["notice"] = self.notice
        if self.fallback:
            out["fallback"] = True
        if self.llm_fallback:
            out["llm_fallback"] = self.llm_fallback
        if self.llm_text:
            out["llm_text"] = self.llm_text
        if self.problems:
            out["problems"] = list(self.problems)
        if self.llm_handoff:
            out["llm_handoff"] = self.llm_handoff
        if self.choices:
            out["choices"] = list(self.choices)
        return out
