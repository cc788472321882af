"""What the wall shows and in which order: pure functions over the store's row dicts.

No Textual here, so ordering, filters and the words agents read are tested without an app.
"""

from __future__ import annotations

import re
import time
from collections.abc import Iterable
from typing import Any

from console.fallback_words import LLM_FALLBACKS
from console.policy import NEEDS_HUMAN, level_rank, queue_key, queue_order

_NEEDS_HUMAN = level_rank(NEEDS_HUMAN)

FILTERS = ("all", "needs", "waiting", "mine")
FILTER_LABELS = {"all": "all", "needs": "needs a human", "waiting": "waiting", "mine": "mine"}
EMPTY_TEXT = {
    "all": "no live conversations yet: they appear here as customers write",
    "needs": "no conversation needs you",
    "waiting": "nobody is waiting for a person",
    "mine": "you hold no conversations: press t on a tile to take one over",
}

# DESIGN.md section 5 vocabulary, as an agent reads it on a badge.
REASON_WORDS = {
    "human_request": "asked for a person",
    "negative_sentiment": "unhappy",
    "sentiment_drop": "getting upset",
    "frustration": "frustrated",
    "repeat_question": "repeating themselves",
    "bot_fallback": "bot is stuck",
    "shouting": "shouting",
    "abuse": "abusive",
    "complaint_threat": "threatens to complain",
    "churn_threat": "may leave",
    "vulnerability": "vulnerable",
    "bereavement": "bereavement",
    "financial_hardship": "financial hardship",
    "health": "health",
    "safety": "safety",
    "fraud": "fraud",
    "prompt_injection": "tried to steer the bot",
    "long_wait": "long wait",
    "agent_request": "agent asked",
    # The bot's own hand-off reasons (console.bot.llm_bot.HANDOFF_REASONS) beyond the above.
    "out_of_scope": "outside what the bot covers",
    "account_action": "needs an account action",
}


def language_code(row: dict[str, Any]) -> str:
    """The customer's language as a short code for the tile ("sv"), or "" when unknown."""
    lang = row.get("lang")
    if isinstance(lang, str) and 2 <= len(lang) <= 3 and lang.isascii() and lang.isalpha():
        return lang.lower()
    return ""


def language_name(row: dict[str, Any]) -> str:
    """The customer's language for the context panel: "Swedish (sv)", or "" when unknown."""
    code = language_code(row)
    if not code:
        return ""
    from console.triage.lexicon import LANGUAGES, load

    return f"{load(code).name} ({code})" if code in LANGUAGES else code


def reason_words(reasons: list[str]) -> list[str]:
    """Reasons as words; an unknown code is shown with its underscores as spaces."""
    return [REASON_WORDS.get(r, str(r).replace("_", " ")) for r in reasons]


def llm_annotation(meta: dict[str, Any] | None) -> tuple[str, str] | None:
    """What agents read under a bot turn or hand-off notice about the bot's LLM.

    :return: ``(why, what the model wrote)``, either part possibly empty, or ``None`` when the
        turn has nothing to say (no LLM involved, or its answer went out as written)
    """
    meta = meta or {}
    code = meta.get("llm_fallback")
    notice = str(meta.get("notice") or "")
    if not code and not (meta.get("engine") == "llm" and notice):
        return None
    # The notice says it in full ("LLM reply not sent, not grounded: amount £2,000 is not in
    # KB-015; embedded answer sent"); the code's words are for turns stored without one.
    why = notice or LLM_FALLBACKS.get(str(code), str(code).replace("_", " "))
    return safe_text(why, one_line=True), safe_text(str(meta.get("llm_text") or ""), one_line=True)


# C0/C1 controls (ESC starts terminal sequences), DEL, and bidi overrides/isolates, which can
# reorder what surrounds them on screen. Newlines and tabs are handled by the caller.
_UNSAFE = re.compile("[\x00-\x08\x0b-\x1f\x7f-\x9f\u200e\u200f\u202a-\u202e\u2066-\u2069]")


# Combining marks past two on one letter ("Zalgo" text stacks dozens): no language needs more
# (Vietnamese decomposed has two), and a terminal draws them over the lines around and cuts
# names by characters it cannot see. The first two stay.
_MARKS = "\u0300-\u036f\u1ab0-\u1aff\u1dc0-\u1dff\u20d0-\u20ff\ufe20-\ufe2f"
_STACKED = re.compile(f"([{_MARKS}]{{2}})[{_MARKS}]+")


def _visible(match: re.Match[str]) -> str:
    ch = match.group(0)
    code = ord(ch)
    if code < 0x20:
        return chr(0x2400 + code)  # the Control Pictures block: ␛ for ESC
    if code == 0x7F:
        return "\u2421"
    return "\ufffd"


def safe_text(text: str, *, one_line: bool = False) -> str:
    """Customer text made inert for a terminal: control characters become visible symbols.

    :param one_line: fold newlines and tabs into spaces (tiles show one line per turn)
    """
    text = text.replace("\r\n", "\n").replace("\t", "    ")
    if one_line:
        text = " ".join(text.split())
    return _UNSAFE.sub(_visible, _STACKED.sub(r"\1", text))


def elapsed(seconds: float) -> str:
    """``45s``, ``3m 05s``, ``2h 10m``."""
    s = max(0, int(seconds))
    if s < 60:
        return f"{s}s"
    if s < 3600:
        return f"{s // 60}m {s % 60:02d}s"
    return f"{s // 3600}h {s % 3600 // 60:02d}m"


def needs_human(row: dict[str, Any]) -> bool:
    """Waiting for a person, or flagged empathy/urgent while still with the bot."""
    return row["state"] == "waiting" or (
        row["state"] == "bot" and level_rank(row.get("level")) >= _NEEDS_HUMAN
    )


def need_tier(row: dict[str, Any]) -> int:
    """0 urgent, 1 empathy, 2 waiting for a person (any lower level), 3 watch, 4 calm."""
    rank = level_rank(row.get("level"))
    if rank >= _NEEDS_HUMAN:
        return 3 - rank  # urgent 0, empathy 1
    if row["state"] == "waiting":
        return 2
    return 4 - rank  # watch 3, calm 4


def sort_key(row: dict[str, Any]) -> tuple[Any, ...]:
    """Most in need first: urgent, empathy, anyone waiting, watch, calm; waiting ones first in a tier.

    Waiting conversations keep the queue's own order (``console.policy.queue_key``: level,
    then the longest wait), so the wall shows the queue in the order ``n`` takes it. Inside a
    tier, conversations that nobody waits on keep their opening order, so the wall does not
    reshuffle every time a customer types: only a change of level or state moves a tile.
    """
    if row["state"] == "waiting":
        return (need_tier(row), 0, *queue_key(row))
    return (need_tier(row), 1, row.get("created_at") or 0.0, row["id"])


def next_in_queue(rows: Iterable[dict[str, Any]]) -> list[int]:
    """The waiting conversations' ids in the order take-next (``n``) claims them: the queue order."""
    return [r["id"] for r in queue_order(rows)]


def matches(row: dict[str, Any], flt: str, agent: str, query: str = "") -> bool:
    """Whether ``row`` belongs on the wall under filter ``flt`` and search ``query``."""
    if row["state"] == "resolved":
        return False
    if flt == "needs" and not needs_human(row):
        return False
    if flt == "waiting" and row["state"] != "waiting":
        return False
    if flt == "mine" and row.get("owner") != agent:
        return False
    if query:
        q = query.casefold()
        hay = [
            str(row["id"]),
            row.get("customer_name") or "",
            row.get("subject") or "",
            row.get("owner") or "",
            *reason_words(row.get("reasons") or []),
        ]
        # Masked text is not searched either: a hit would say what it hides.
        hay.extend(
            t["text"] for t in row.get("turns") or [] if not masked(t, row.get("reasons") or ())
        )
        if not any(q in h.casefold() for h in hay):
            return False
    return True


MASKED_TEXT = "⚠ abusive message hidden — press v to reveal (ctrl+o while typing)"
MASKED_SHORT = "⚠ abusive message hidden"


def masked(message: dict[str, Any], conversation_reasons: Iterable[str] = ()) -> bool:
    """Whether a message is shown masked: customer text triage flagged ``abuse``.

    A customer message not triaged yet (no ``level``) in a conversation already flagged
    abusive is masked too: the hub triages it a moment after it is stored, and a customer who
    keeps abusing should not get one message through in that moment. If triage then finds it
    clean it stays masked here until the agent reveals it (the safe side).
    """
    if message.get("role") != "customer":
        return False
    # The hub's mark for this message alone, when there is one (see store.protection).
    mark = (message.get("meta") or {}).get("abusive")
    if isinstance(mark, bool):
        return mark
    if "abuse" in (message.get("reasons") or ()):
        return True
    return message.get("level") is None and "abuse" in conversation_reasons


def status_words(row: dict[str, Any], agent: str, at: float | None = None) -> str:
    """``waiting 2m 05s``, ``with ana 4m``, ``yours 1m``, ``bot · idle 12m``.

    Only a wait in the queue counts in seconds; the others move once a minute, so a wall of
    idle bot conversations is not repainted every second.
    """
    at = at or time.time()
    state = row["state"]
    if state == "waiting":
        return f"waiting {elapsed(at - (row.get('waiting_since') or at))}"
    if state == "human":
        who = "yours" if row.get("owner") == agent else f"with {row.get('owner')}"
        return f"{who} {minutes(at - (row.get('claimed_at') or at))}"
    if state == "resolved":
        return "resolved"
    return f"bot · idle {minutes(at - (row.get('last_message_at') or row.get('created_at') or at))}"


def minutes(seconds: float) -> str:
    """``<1m``, ``12m``, ``3h 05m``."""
    m = max(0, int(seconds)) // 60
    if m == 0:
        return "<1m"
    if m < 60:
        return f"{m}m"
    return f"{m // 60}h {m % 60:02d}m"


def viewer_names(
    row: dict[str, Any] | None, at: float, *, besides: str | None = None
) -> tuple[str, ...]:
    """Who has the conversation open at ``at`` (the row's ``viewers``, earliest first), as
    one-line names; a record past its ``until`` is nobody (its console stopped renewing).

    Args:
        besides: leave this name out (the agent reading it).
    """
    if row is None:
        return ()
    return tuple(
        safe_text(str(v.get("agent") or "?"), one_line=True)
        for v in row.get("viewers") or ()
        if (v.get("until") or 0) > at and v.get("agent") != besides
    )


def is_whisper(message: dict[str, Any]) -> bool:
    """A supervisor's whisper (``store.oversight.whisper``): a note addressed to its owner."""
    meta = message.get("meta")
    return message.get("role") == "note" and isinstance(meta, dict) and meta.get("whisper") is True
