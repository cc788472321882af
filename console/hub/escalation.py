"""Applying the policy's verdict: a conversation goes to the queue, and its badge stays honest.

An escalation is one store transaction (:func:`store.lifecycle.escalate`): the verdict on the
customer's message, the move to the queue with its reasons, and the hand-off notice to the
customer, so a crash can never leave one without the others. While a conversation waits, what
agents see never drops below what sent it there.
"""

from __future__ import annotations

from typing import Any

from console.hub.memory import Remembered, TriageMemory
from console.hub.notices import Notices
from console.hub.shared import Shared
from console.policy import Decision, max_level, reopen_message, wait_estimate_minutes
from store import hub_state
from store import lifecycle as lc
from store.errors import InvalidTransition
from store.feed import Event
from store.history import reopen_noticed


class Escalation:
    """Sends conversations to people and records triage for those already with them."""

    def __init__(self, shared: Shared, memory: TriageMemory, notices: Notices) -> None:
        self.shared = shared
        self.memory = memory
        self.notices = notices

    def escalate(
        self,
        cid: int,
        entry: Remembered,
        mid: int,
        decision: Decision,
        *,
        fallback: bool = False,
        meta: dict[str, Any] | None = None,
        llm_fallback: bool = False,
        bot_fallback: bool = False,
    ) -> None:
        """Move ``cid`` to the queue because of customer message ``mid``, telling the customer.

        :param fallback: the bot could not answer (the customer is told so)
        :param bot_fallback: the bot's answer was a fallback, replaced by the notice (counted
            in the conversation's ``bot_fallbacks``, as a fallback sent is)
        :param meta: stored with the notice for agents (what the bot's LLM did, and why)
        :param llm_fallback: the LLM's answer for this turn was not used (counted on the tile)
        """
        verdict = entry.last_customer or entry.verdict
        level = max_level(verdict.level, decision.level)
        notice = self.notices.handoff(cid, level, decision, fallback=fallback)
        mark = self.memory.mark(entry, verdict, level=level, also=tuple(decision.reasons))
        store = self.shared.store
        try:
            # The customer message carries the verdict that sent it to a person.
            lc.escalate(
                store,
                cid,
                reasons=list(decision.reasons),
                by="hub",
                level=level,
                triage=mark,
                message=notice.text,
                message_meta=meta,
                llm_fallback=llm_fallback,
                bot_fallback=bot_fallback,
                message_id=mid,
                note=f"rule {decision.rule}"
                + (f", ~{notice.minutes} min" if notice.minutes else ""),
            )
        except InvalidTransition:
            # Claimed (or closed) meanwhile: the verdict is still the customer message's.
            lc.record_triage(store, cid, mark, message_id=mid, actor="triage")
            return
        stats = self.shared.stats
        stats.escalations += 1
        stats.llm_fallbacks += 1 if llm_fallback else 0
        for r in decision.reasons:
            stats.escalation_reasons[r] = stats.escalation_reasons.get(r, 0) + 1

    def welcome_back(self, cid: int, entry: Remembered, reopened: Event) -> None:
        """Tell a customer whose message reopened ``cid`` who has it now: the person who closed
        it, or the queue (with the wait, as a hand-off does). Once per reopening, and only
        while nobody has answered them yet."""
        store = self.shared.store
        last = hub_state.last_turn(store, cid)
        if last is None or last.role != "customer" or reopen_noticed(store, cid, reopened.id):
            return
        if reopened.to_state == "waiting":
            verdict = entry.last_customer or entry.verdict
            level = verdict.level if verdict is not None else "calm"
            ahead, online = self.notices.queue_position(cid, level)
            minutes = wait_estimate_minutes(
                self.shared.settings, ahead, online, self.notices.handling_minutes()
            )
            text = reopen_message("waiting", agent=None, queue_ahead=ahead, wait_minutes=minutes)
        else:
            text = reopen_message("human", agent=(reopened.data or {}).get("owner"))
        if text:
            lc.post_system(store, cid, text, meta={"reopened": reopened.id})

    def record(self, cid: int, entry: Remembered, mid: int | None) -> None:
        """Store the latest verdict of a conversation the bot does not own (agents see the level)."""
        verdict = entry.verdict
        if verdict is None:
            return
        lc.record_triage(
            self.shared.store,
            cid,
            self.waiting_mark(cid, entry, verdict),
            message_id=mid,
            actor="triage",
        )

    def waiting_mark(self, cid: int, entry: Remembered, verdict: Any) -> lc.TriageMark:
        """The mark for a verdict, never below what sent the conversation to the queue while it waits.

        A customer in the queue who writes "hello??" is not calmer than when the bot handed
        them over: until a person answers, the badge keeps the escalation's level and reasons.
        """
        level, also = self.waiting_floor(cid, verdict)
        return self.memory.mark(entry, verdict, level=level, also=also)

    def waiting_floor(self, cid: int, verdict: Any) -> tuple[str | None, tuple[str, ...]]:
        """The level and reasons :meth:`waiting_mark` keeps from the escalation (``None``, ``()``
        when ``cid`` is not waiting or its escalation recorded nothing)."""
        return floor(hub_state.waiting_escalation(self.shared.store, cid), verdict)


def floor(data: dict[str, Any] | None, verdict: Any) -> tuple[str | None, tuple[str, ...]]:
    """:meth:`Escalation.waiting_floor` from the waiting escalation's data, already read."""
    if data is None:
        return None, ()
    level = max_level(verdict.level, data.get("level") or "watch")
    return level, tuple(data.get("reasons") or ())
