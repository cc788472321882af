"""The work on one conversation: catch its triage up, decide, let the bot answer.

For the newest customer message not yet answered, while the bot owns the conversation,
:func:`console.policy.decide` chooses: escalate to the queue with the reasons, or let the bot
answer. Several customer messages in one batch get one answer, to the last (a slow answer the
customer overtook is dropped for one to the newest); after the bot's answer the policy looks
again (its hand-off field, the N-th "I don't know"). While a conversation waits or is with a
person, only its triage is recorded (agents see the level rise).

Replays are safe: the transcript, not the triage state, says what was answered (a message is
answered when a bot, agent or system line follows it), and the store refuses a second bot
answer to the same message (AlreadyAnswered).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import deque
from collections.abc import Callable, Collection
from itertools import islice
from typing import Any, NamedTuple, Protocol

from console.hub.escalation import Escalation
from console.hub.memory import CONTEXT_MESSAGES, Remembered, TriageMemory
from console.hub.posting import ReplyPoster
from console.hub.shared import Shared
from console.policy import Decision, decide, max_level
from store import hub_state, queries
from store import lifecycle as lc
from store.errors import AlreadyAnswered, InvalidInput, InvalidTransition, NotOwner
from store.feed import Event

log = logging.getLogger("tandem.hub")
# One line per LLM decision (answer sent, hand-off taken or overruled, why the embedded answer
# went instead); `tandem serve` shows these at info level when an LLM is configured.
llm_log = logging.getLogger("tandem.hub.llm")

READ_AHEAD = 64  # conversations read in one query (see ConversationWork._read)
STALE_AFTER_S = 0.2  # an answer that took longer may have been overtaken by the customer
# How long the bot's answer waits for the LLM judge's second opinion (issue 12); a verdict that
# comes later still raises the conversation when it lands.
JUDGE_BUDGET_S = 1.5
# Feed events after which a person has dealt with what triage had found: a hand-back or a
# supervisor's release from the queue (an agent closing the conversation counts too).
_SETTLING = {"handed_back", "released"}


class Ready(NamedTuple):
    """What :meth:`ConversationWork.handle` reads of a conversation before deciding."""

    conversation: hub_state.HubConversation
    after: int  # the turns are the messages after this one
    turns: list[hub_state.Turn]


class BotLike(Protocol):
    """What the hub needs from the bot made by :func:`console.bot.make_bot`."""

    async def answer(self, ctx: Any) -> Any: ...


class ConversationWork:
    """Handles one conversation at a time for the feed (see :mod:`console.hub.feed`).

    :param keep_lags: remember per-reply lag in the stats (benchmarks)
    """

    def __init__(
        self,
        shared: Shared,
        memory: TriageMemory,
        escalation: Escalation,
        bot: BotLike,
        *,
        keep_lags: bool = False,
        judge: Any = None,
        judge_budget: float = JUDGE_BUDGET_S,
    ) -> None:
        self.shared = shared
        self.memory = memory
        self.escalation = escalation
        self.bot = bot
        self.keep_lags = keep_lags
        self.judge = judge  # console.triage.judge.Judge, when an LLM is configured
        self.judge_budget = judge_budget
        self._late: set[asyncio.Task[Any]] = set()
        self.poster = ReplyPoster(shared)
        # Customer messages read per conversation in hand, counted done when it is no longer.
        self._owed: dict[int, int] = {}
        # Conversations given work, in feed order, until their handling begins (read ahead
        # from here), those being handled now, and what was read ahead for the others.
        self._queued: dict[int, None] = {}
        self._running: set[int] = set()
        self._ready: dict[int, Ready] = {}
        # Reopenings to a person or the queue, until the customer has been told where they are.
        self._reopened: dict[int, Event] = {}

    def touched(self, events: list[Event], in_hand: Collection[int]) -> dict[int, tuple[bool, int]]:
        """Conversations a batch gives work to: id -> (a new customer message, first event id).

        :param in_hand: conversations being handled now (their memory must stay)
        """
        stats = self.shared.stats
        touched: dict[int, tuple[bool, int]] = {}
        for ev in events:
            cid = ev.conversation_id
            if cid is None:
                continue
            if ev.kind == "message":
                role = (ev.data or {}).get("role")
                if role == "customer":
                    stats.customer_messages += 1
                    self._owed[cid] = self._owed.get(cid, 0) + 1
                    touched[cid] = (True, touched.get(cid, (False, ev.id))[1])
                elif role in ("agent", "bot"):
                    known = self.memory.get(cid)
                    # The hub's own replies were observed when it posted them (or are about
                    # to be: the feed can show a reply before its conversation resumes).
                    if ev.message_id in self.poster.posted:
                        self.poster.posted.discard(ev.message_id)
                    elif known is None or (ev.message_id or 0) > known.upto:
                        touched.setdefault(cid, (False, ev.id))
            elif ev.kind in _SETTLING or (ev.kind == "resolved" and ev.from_state == "human"):
                self.memory.resettle(cid)
                if ev.kind in _SETTLING:
                    # Back with the bot: if the customer's last word went unanswered, answer it.
                    touched.setdefault(cid, (False, ev.id))
            elif ev.kind == "reopened" and ev.to_state in ("waiting", "human"):
                self._reopened[cid] = ev
                touched.setdefault(cid, (False, ev.id))
            elif ev.kind in ("resolved", "abandoned") and cid not in touched and cid not in in_hand:
                # The saved state is enough if the customer comes back; free the memory now.
                self.memory.forget(cid)
        for cid in touched:
            self._queued[cid] = None
        return touched

    def finished(self, cid: int) -> None:
        """Nothing of ``cid`` is in hand any more: its customer messages read so far are done."""
        self.shared.stats.customer_done += self._owed.pop(cid, 0)

    def forget(self, cid: int) -> None:
        """The triage state in memory may be ahead of what was stored: reload it next time."""
        self.memory.forget(cid)
        self._ready.pop(cid, None)

    def forget_where(self, which: Callable[[int], bool]) -> None:
        """Forget the conversations ``which`` picks: another hub worker handles them now."""
        self.memory.forget_where(which)
        for held in (self._reopened, self._ready, self._queued):
            for cid in [c for c in held if which(c)]:
                del held[cid]

    def reread(self) -> None:
        """The hub wrote to conversations outside their handling (timers, routing, a late
        opinion): what was read ahead may be old now, so it is read again."""
        self._ready.clear()

    def _read(self, cid: int) -> Ready | None:
        """``cid``'s row and new turns, read with those of the next conversations in line.

        One query for the rows and one for the turns of up to :data:`READ_AHEAD`
        conversations, instead of two per conversation. Only conversations whose handling
        has not begun are read ahead: nothing of this hub writes to them before it does.
        """
        ahead = (c for c in self._queued if c != cid and c not in self._running)
        chunk = [cid, *islice((c for c in ahead if c not in self._ready), READ_AHEAD - 1)]
        store = self.shared.store
        rows = hub_state.conversations(store, chunk)
        after: dict[int, int] = {}
        for c in chunk:
            conv = rows.get(c)
            if conv is not None:
                after[c] = self.memory.entry(c, conv.triage_state, version=conv.version).upto
        turns = hub_state.turns_after_each(store, after)
        for c, upto in after.items():
            if c != cid:
                self._ready[c] = Ready(rows[c], upto, turns[c])
        conv = rows.get(cid)
        return None if conv is None else Ready(conv, after[cid], turns[cid])

    async def handle(self, cid: int, has_customer: bool) -> bool:
        """Bring ``cid`` up to date and answer or escalate its customer's newest message.

        :return: whether to run again at once (the customer wrote while the bot was thinking)
        """
        self._running.add(cid)
        try:
            return await self._handle(cid)
        finally:
            self._running.discard(cid)

    async def _handle(self, cid: int) -> bool:
        store = self.shared.store
        # Kept until the customer has been told (a retry after a locked database tells them).
        reopened = self._reopened.get(cid)
        self._queued.pop(cid, None)
        ready = self._ready.pop(cid, None) or self._read(cid)
        if ready is None:
            return False
        conv, turns = ready.conversation, ready.turns
        entry = self.memory.entry(cid, conv.triage_state, version=conv.version)
        if entry.upto != ready.after:
            turns = hub_state.turns_after(store, cid, entry.upto)  # reloaded meanwhile
        pending = self.memory.observe(entry, turns)
        if pending is None and conv.state == "bot":
            # Nothing new to observe, yet the customer may still be owed an answer: released or
            # handed back after their last word, or a crash between storing the verdict and the
            # answer. The transcript, not the triage state, says what was answered.
            pending = self._unanswered(cid, entry)
        if pending is None:
            self._reopened.pop(cid, None)
            return False  # nothing new from the customer, or already answered (a replay)
        mid, created_at = pending
        verdict = entry.last_customer
        if conv.state != "bot":
            # Waiting, with a person, or resolved meanwhile: agents just see the level.
            self.escalation.record(cid, entry, mid)
            if reopened is not None and reopened.to_state == conv.state:
                self.escalation.welcome_back(cid, entry, reopened)
            self._reopened.pop(cid, None)
            return False
        self._reopened.pop(cid, None)  # back with the bot meanwhile: its answer says enough
        settings = self.shared.settings
        fallbacks = conv.bot_fallbacks
        decision = decide(
            settings,
            level=verdict.level,
            reasons=verdict.reasons,
            message_reasons=getattr(verdict, "message_reasons", ()),
            fallbacks=fallbacks,
            settled=entry.settled,
        )
        if entry.context is None:
            entry.context = deque(self._context(cid), maxlen=CONTEXT_MESSAGES)
        if not decision.escalate and self.judge is not None and verdict.level != "urgent":
            # The bot is about to answer: a second opinion first, within the budget.
            judged = await self._judged(cid, entry, mid, verdict)
            if judged is not verdict:
                verdict = judged
                decision = decide(
                    settings,
                    level=verdict.level,
                    reasons=verdict.reasons,
                    message_reasons=getattr(verdict, "message_reasons", ()),
                    fallbacks=fallbacks,
                    settled=entry.settled,
                )
        if decision.escalate:
            self.escalation.escalate(cid, entry, mid, decision)
            return False
        ctx = _bot_context(cid, conv.customer_name, list(entry.context), verdict, fallbacks)
        asked = time.monotonic()
        try:
            ans = await self.bot.answer(ctx)
        except Exception:
            # A broken bot must not leave the customer talking to nobody.
            log.exception("bot failed on conversation %s; escalating", cid)
            self.shared.stats.errors += 1
            self.escalation.escalate(cid, entry, mid, _bot_error(verdict), fallback=True)
            return False
        if time.monotonic() - asked > STALE_AFTER_S and hub_state.customer_wrote_after(
            store, cid, mid
        ):
            # The customer wrote again while the bot was thinking: answer the newest message,
            # with it in the context, instead of posting a reply that is already behind.
            return True
        after = decide(
            settings,
            level=verdict.level,
            reasons=verdict.reasons,
            message_reasons=getattr(verdict, "message_reasons", ()),
            fallbacks=fallbacks + (1 if ans.fallback else 0),
            handoff=bool(ans.handoff),
            handoff_reason=getattr(ans, "handoff_reason", None) or None,
            settled=entry.settled,
        )
        llm = ans.llm_decision() if hasattr(ans, "llm_decision") else None
        if after.escalate:
            if llm:
                llm_log.info(
                    "conversation %s: %s; to a person (%s)", cid, llm, ", ".join(after.reasons)
                )
            self.escalation.escalate(
                cid,
                entry,
                mid,
                after,
                fallback=bool(ans.fallback),
                # The notice to the customer carries, for agents, what the bot's LLM did.
                meta=dict(ans.meta()) if llm else None,
                llm_fallback=bool(getattr(ans, "llm_fallback", None)),
                # The "I don't know" the notice replaces counts, as one sent does.
                bot_fallback=bool(ans.fallback),
            )
            return False
        if llm:
            llm_log.info("conversation %s: %s; sent", cid, llm)
        await self._reply(cid, entry, mid, created_at, ans)
        return False

    async def _judged(self, cid: int, entry: Remembered, mid: int, verdict: Any) -> Any:
        """The verdict with the LLM judge's opinion, if it comes within the budget.

        A late opinion is applied when it lands (:meth:`_apply_late`); the judge itself never
        raises (failures are counted in its stats and leave the offline verdict).
        """
        judge = self.judge
        assert judge is not None and entry.context is not None
        turns = list(entry.context)
        task = asyncio.ensure_future(judge.review(turns, verdict))
        try:
            combined, _ = await asyncio.wait_for(asyncio.shield(task), self.judge_budget)
        except TimeoutError:
            self.shared.stats.judge_late += 1
            self._late.add(task)
            task.add_done_callback(lambda t: self._landed(t, cid, mid, verdict))
            return verdict
        if combined is not verdict:
            entry.last_customer = combined
            if entry.verdict is verdict:
                entry.verdict = combined
            self.shared.stats.judge_raised += 1 if combined.level != verdict.level else 0
        return combined

    def _landed(self, task: asyncio.Task[Any], cid: int, mid: int, offline: Any) -> None:
        self._late.discard(task)
        if task.cancelled() or task.exception() is not None:
            return
        combined, opinion = task.result()
        if opinion is None or combined is offline:
            return
        try:
            self._apply_late(cid, mid, offline, opinion)
        except Exception:  # a late opinion must never take the hub down
            log.exception("conversation %s: the LLM judge's late verdict was not applied", cid)

    def _apply_late(self, cid: int, mid: int, offline: Any, opinion: Any) -> None:
        """Raise ``cid`` by an opinion that came after the bot answered (if still current)."""
        from console.triage.judge import combine

        self.reread()

        entry = self.memory.get(cid)
        if entry is None or entry.last_customer is not offline:
            return  # the customer wrote again: the newer message has its own verdict
        raised = combine(offline, opinion.level, list(opinion.reasons), opinion.why)
        if raised.level == offline.level and not raised.model_reasons:
            return
        entry.last_customer = raised
        current = entry.verdict
        entry.verdict = (
            combine(current, opinion.level, list(opinion.reasons), opinion.why)
            if current is not None and current is not offline
            else raised
        )
        stats = self.shared.stats
        stats.judge_raised += 1 if raised.level != offline.level else 0
        conv = hub_state.conversation(self.shared.store, cid)
        if conv is not None and conv.state == "bot":
            decision = decide(
                self.shared.settings,
                level=raised.level,
                reasons=raised.reasons,
                message_reasons=getattr(raised, "message_reasons", ()),
                fallbacks=conv.bot_fallbacks,
                settled=entry.settled,
            )
            if decision.escalate:
                self.escalation.escalate(cid, entry, mid, decision)
                return
        self.escalation.record(cid, entry, mid)

    def _unanswered(self, cid: int, entry: Remembered) -> tuple[int, float] | None:
        """The customer's message, if it is the newest one in the conversation."""
        last = hub_state.last_turn(self.shared.store, cid)
        if last is None or last.role != "customer":
            return None
        verdict = entry.verdict or entry.last_customer or getattr(entry.state, "verdict", None)
        if verdict is None:
            return None
        entry.last_customer = verdict
        return last.id, last.created_at

    def _context(self, cid: int) -> list[dict[str, str]]:
        rows = queries.transcript(
            self.shared.store, cid, last=CONTEXT_MESSAGES, include_notes=False
        )
        return [{"role": r["role"], "text": r["text"]} for r in rows]

    async def _reply(
        self, cid: int, entry: Remembered, mid: int, created_at: float, ans: Any
    ) -> None:
        shared = self.shared
        verdict = entry.last_customer
        mark = self.memory.mark(entry, verdict)
        try:
            bot_mid = await self.poster.post(
                lc.BotReply(
                    cid,
                    ans.text,
                    reply_to=mid,
                    fallback=bool(ans.fallback),
                    meta=dict(ans.meta()),
                    triage=mark,
                    llm_fallback=bool(getattr(ans, "llm_fallback", None)),
                )
            )
        except AlreadyAnswered:
            return
        except NotOwner:
            # An agent claimed it while the bot was thinking: the reply is dropped (invariant 3).
            self.escalation.record(cid, entry, mid)
            return
        except InvalidInput as exc:
            # An empty or oversized reply cannot be sent; a person answers instead.
            log.warning("conversation %s: the bot's reply was refused (%s); escalating", cid, exc)
            shared.stats.errors += 1
            self.escalation.escalate(cid, entry, mid, _bot_error(verdict), fallback=True)
            return
        stats = shared.stats
        stats.bot_replies += 1
        stats.fallbacks += 1 if ans.fallback else 0
        stats.llm_fallbacks += 1 if getattr(ans, "llm_fallback", None) else 0
        if self.keep_lags:
            stats.lags.append(shared.clock() - created_at)
        self.memory.observe_reply(entry, bot_mid, ans.text, fallback=bool(ans.fallback))
        self.poster.posted.discard(bot_mid)
        if getattr(ans, "resolve", False):
            try:
                lc.resolve(shared.store, cid, by="bot")
                stats.resolved_by_bot += 1
            except InvalidTransition:
                pass


def _bot_error(verdict: Any) -> Decision:
    """The decision when the bot failed: a person answers, with ``bot_fallback`` as the reason."""
    return Decision(True, ("bot_fallback",), max_level(verdict.level, "watch"), "bot_error")


def _bot_context(
    cid: int, customer_name: str, messages: list[dict[str, str]], verdict: Any, fallbacks: int
) -> Any:
    from console.bot import BotContext

    return BotContext(
        cid,
        customer_name,
        messages=messages,
        level=verdict.level,
        reasons=list(verdict.reasons),
        fallbacks=fallbacks,
    )
