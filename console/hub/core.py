"""The hub: follows the change feed and decides, per customer message, bot or person.

For every batch of feed events (read from the saved cursor ``hub``), each conversation
touched is handled by its own task (one at a time per conversation, so a slow LLM answer
never holds up the others):

1. bring its triage state up to date: the state is cached in memory; on a miss it is loaded
   from ``conversations.triage_state`` (or rebuilt from the transcript) and every message
   after the last one it has seen is observed, in order;
2. for the newest customer message not yet answered, while the bot owns the conversation,
   :func:`console.policy.decide` chooses: escalate to the queue with the reasons (telling the
   customer honestly that a person is coming and roughly when), or let the bot answer.
   Several customer messages in one batch get one answer, to the last (a slow answer the
   customer overtook is dropped for one to the newest); after the bot's answer, the policy
   looks again (its hand-off field, the N-th "I don't know");
3. while a conversation waits or is with a person, only its triage is recorded (agents see
   the level rise);
4. the cursor is saved up to the first event of any conversation still in hand.

Replays are safe: the transcript, not the triage state, says what was answered (a message is
answered when a bot, agent or system line follows it), and the store refuses a second bot
answer to the same message (AlreadyAnswered). A message stored but never answered (the hub
was killed, or the database was locked) is answered after the restart or the retry.

A periodic tick raises waiting conversations' level with ``long_wait`` (``engine.waited``)
and resolves bot conversations that went quiet.

``conversations.triage_state``, as the hub writes it, is JSON ``{"upto": <message id>,
"engine": <engine.dump_state()>}``: the engine state after observing every message up to
``upto``, so a restart never observes a message twice.
"""

from __future__ import annotations

import asyncio
import functools
import json
import logging
import math
import sqlite3
import time
from collections import OrderedDict, deque
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from console.policy import (
    Decision,
    PolicySettings,
    Settled,
    decide,
    handoff_message,
    max_level,
    queue_ahead,
    wait_estimate_minutes,
)
from store import Store
from store import lifecycle as lc
from store.errors import (
    AlreadyAnswered,
    DatabaseUnavailable,
    InvalidInput,
    InvalidTransition,
    NotFound,
    NotOwner,
)
from store.feed import Event, Follower, load_cursor, save_cursor
from store.views import waiting_queue

log = logging.getLogger("tandem.hub")

CURSOR = "hub"
CONTEXT_MESSAGES = 12  # how much of the transcript the bot sees
CACHE_SIZE = 20_000
STALE_AFTER_S = 0.2  # an answer that took longer may have been overtaken by the customer
# Feed events after which a person has dealt with what triage had found: a hand-back, a
# supervisor's release from the queue, or an agent closing the conversation (the customer may
# write again; what was handled then is not new evidence).
_SETTLING = {"handed_back", "released"}
_SETTLED_SQL = (
    "(kind IN ('handed_back', 'released') OR (kind = 'resolved' AND from_state = 'human'))"
)


class TriageEngineLike(Protocol):
    """What the hub needs from :class:`console.triage.TriageEngine`."""

    def new_state(self) -> Any: ...
    def observe(
        self,
        state: Any,
        role: str,
        text: Any,
        *,
        fallback: bool | None = None,
        at: float | None = None,
    ) -> Any: ...
    def waited(self, state: Any, seconds: float) -> Any: ...
    def dump_state(self, state: Any) -> str: ...
    def load_state(self, data: str) -> Any: ...


class BotLike(Protocol):
    """What the hub needs from the bot made by :func:`console.bot.make_bot`."""

    async def answer(self, ctx: Any) -> Any: ...


@dataclass(slots=True)
class _Conv:
    """The hub's memory of one conversation."""

    state: Any
    upto: int = 0  # last message id observed by the triage engine
    verdict: Any = None  # verdict after the last observed message
    last_customer: Any = None  # verdict right after the last customer message
    stored: tuple[str, tuple[str, ...]] | None = None  # (level, reasons) last written
    settled: Settled = field(default_factory=Settled)
    # The newest messages, for the bot; None until known (an entry loaded from the store).
    context: deque[dict[str, str]] | None = None


@dataclass(slots=True)
class HubStats:
    """Counters since the hub started (the per-minute log shows differences)."""

    customer_messages: int = 0
    bot_replies: int = 0
    fallbacks: int = 0
    escalations: int = 0
    resolved_by_bot: int = 0
    idle_resolved: int = 0
    long_wait_raised: int = 0
    errors: int = 0
    batches: int = 0
    escalation_reasons: dict[str, int] = field(default_factory=dict)
    lags: list[float] = field(default_factory=list)  # seconds from customer message to reply

    def snapshot(self) -> dict[str, Any]:
        """The counters as a dict (without the lag samples and the reason tally)."""
        return {
            k: getattr(self, k) for k in self.__slots__ if k not in ("lags", "escalation_reasons")
        }


class Hub:
    """Bot, triage and SLA timers over the store at ``path``.

    :param path: the SQLite file (one connection for reads and writes, one for the feed)
    :param engine: a triage engine (``console.triage.TriageEngine()``)
    :param bot: the bot (``console.bot.make_bot(path, config)``)
    :param settings: the escalation policy and timers
    :param clock: wall clock (seconds); tests may pass a fake one for timers
    :param concurrency: conversations answered at once (matters with an LLM bot)
    :param keep_lags: remember per-reply lag for benchmarks
    """

    def __init__(
        self,
        path: str | Path,
        *,
        engine: TriageEngineLike,
        bot: BotLike,
        settings: PolicySettings | None = None,
        clock: Callable[[], float] = time.time,
        cursor_name: str = CURSOR,
        batch: int = 2000,
        concurrency: int = 32,
        keep_lags: bool = False,
    ) -> None:
        self.path = Path(path)
        self.engine = engine
        self.bot = bot
        self.settings = settings or PolicySettings()
        self.clock = clock
        self.cursor_name = cursor_name
        self.batch = batch
        self.keep_lags = keep_lags
        self.stats = HubStats()
        self._sem = asyncio.Semaphore(concurrency)
        self._cache: OrderedDict[int, _Conv] = OrderedDict()
        self._store: Store | None = None
        self._follower: Follower | None = None
        self._last_tick = 0.0
        self._inflight: dict[int, asyncio.Task[None]] = {}
        self._first_event: dict[int, int] = {}  # conversation in hand -> first event not yet done
        self._again: dict[int, bool] = {}  # touched again while in hand
        self._handling: tuple[float, float | None] = (-1e18, None)  # (computed at, minutes)
        self._held: dict[
            int, int
        ] = {}  # gave up on a locked database while stopping: replay from here
        self._stopping = False
        self._wake: asyncio.Event | None = None
        self._seen = 0  # last event id read from the feed
        self._saved = 0  # last cursor saved

    # --- lifecycle of the hub itself --------------------------------------------------------

    @property
    def store(self) -> Store:
        """The hub's own connection (opened on first use, in the loop's thread)."""
        if self._store is None:
            self._store = Store(self.path)
        return self._store

    def _feed(self) -> Follower:
        if self._follower is None:
            after = load_cursor(self.store, self.cursor_name) or 0
            self._seen = self._saved = after
            self._follower = Follower(self.path, after=after, batch=self.batch)
        return self._follower

    def close(self) -> None:
        """Close both connections."""
        if self._follower is not None:
            self._follower.close()
            self._follower = None
        if self._store is not None:
            self._store.close()
            self._store = None

    def wake(self) -> None:
        """Something was just stored in this process (the channel API): look now, not after the idle sleep.

        Call it from the hub's own event loop. Without it the hub still sees every commit, from
        any process, within ``idle_sleep``.
        """
        if self._wake is not None:
            self._wake.set()

    async def run(
        self, stop: asyncio.Event, *, idle_sleep: float = 0.02, retry_s: float = 1.0
    ) -> None:
        """Process the feed until ``stop`` is set; answers in progress are finished first."""
        wake = self._wake = asyncio.Event()

        async def wake_on_stop() -> None:
            await stop.wait()
            wake.set()

        stopper = asyncio.create_task(wake_on_stop(), name="hub-stop-wake")
        try:
            while not stop.is_set():
                # Cleared before the feed is read, so a post stored during the read still wakes
                # the idle wait below at once.
                wake.clear()
                try:
                    handled = await self.step()
                    if self.clock() - self._last_tick >= self.settings.sla_tick_s:
                        await self.tick()
                except (DatabaseUnavailable, sqlite3.OperationalError) as exc:
                    # Locked for longer than busy_timeout, or the disk hiccuped: wait and retry;
                    # the cursor was not moved past anything unfinished.
                    self.stats.errors += 1
                    log.warning("hub: database unavailable (%s); retrying in %.1f s", exc, retry_s)
                    handled = 0
                    try:
                        await asyncio.wait_for(stop.wait(), retry_s)
                    except TimeoutError:
                        pass
                if not handled:
                    try:
                        await asyncio.wait_for(wake.wait(), idle_sleep)
                    except TimeoutError:
                        pass
            self._stopping = True
            await self.settle()
        finally:
            stopper.cancel()
            self._wake = None
            self.close()

    async def step(self) -> int:
        """Read one batch of events, start handling it, save the cursor; return the event count.

        Conversations are handled as tasks so one slow answer (an LLM) never holds up the
        others; the saved cursor stops before the first event of any conversation still in
        hand, so a restart replays exactly what was not finished.
        """
        follower = self._feed()
        events = follower.poll()
        if events:
            self._seen = events[-1].id
            self.process_nowait(events)
            self.stats.batches += 1
        await asyncio.sleep(0)  # let the answers started above run
        self._save_cursor()
        return len(events)

    async def settle(self) -> None:
        """Wait for every conversation in hand, then save the cursor."""
        while self._inflight:
            await asyncio.gather(*list(self._inflight.values()), return_exceptions=True)
        self._save_cursor()

    async def drain(self, *, timeout: float = 10.0) -> None:
        """Handle events until the feed is empty and nothing is in hand (tests, benchmarks)."""
        deadline = time.monotonic() + timeout
        while await self.step() or self._inflight:
            await self.settle()
            if time.monotonic() > deadline:
                raise TimeoutError("the hub did not catch up with the feed in time")

    def _save_cursor(self) -> None:
        safe = self._seen
        for pending in (self._first_event, self._held):
            if pending:
                safe = min(safe, min(pending.values()) - 1)
        if safe > self._saved:
            save_cursor(self.store, self.cursor_name, safe)
            self._saved = safe

    # --- one batch ---------------------------------------------------------------------------

    async def process(self, events: list[Event]) -> None:
        """Handle a batch of feed events and wait until it is done."""
        self.process_nowait(events)
        await self.settle()

    def process_nowait(self, events: list[Event]) -> None:
        """Start handling a batch of feed events (one task per conversation touched)."""
        touched: dict[
            int, tuple[bool, int]
        ] = {}  # conversation -> (new customer message, first event)
        for ev in events:
            cid = ev.conversation_id
            if cid is None:
                continue
            if ev.kind == "message":
                role = (ev.data or {}).get("role")
                if role == "customer":
                    self.stats.customer_messages += 1
                    touched[cid] = (True, touched.get(cid, (False, ev.id))[1])
                elif role in ("agent", "bot"):
                    known = self._cache.get(cid)
                    # The hub's own replies were observed when it posted them.
                    if known is None or (ev.message_id or 0) > known.upto:
                        touched.setdefault(cid, (False, ev.id))
            elif ev.kind in _SETTLING or (ev.kind == "resolved" and ev.from_state == "human"):
                self._settle(cid)
                if ev.kind in _SETTLING:
                    # Back with the bot: if the customer's last word went unanswered, answer it.
                    touched.setdefault(cid, (False, ev.id))
            elif (
                ev.kind in ("resolved", "abandoned")
                and cid not in touched
                and cid not in self._inflight
            ):
                # The saved state is enough if the customer comes back; free the memory now.
                self._cache.pop(cid, None)
        for cid, (new, first) in touched.items():
            if cid in self._inflight:
                # One task per conversation at a time; it runs again when the current one ends.
                self._again[cid] = self._again.get(cid, False) or new
            else:
                self._start(cid, new, first)

    def _start(self, cid: int, has_customer: bool, first_event: int) -> None:
        self._first_event[cid] = min(first_event, self._held.pop(cid, first_event))
        task = asyncio.create_task(self._guarded(cid, has_customer))
        self._inflight[cid] = task
        task.add_done_callback(functools.partial(self._on_done, cid))

    def _on_done(self, cid: int, _task: asyncio.Task[None]) -> None:
        self._finished(cid)

    def _finished(self, cid: int) -> None:
        self._inflight.pop(cid, None)
        first = self._first_event.pop(cid, 0)
        if cid in self._again:
            self._start(cid, self._again.pop(cid), first)

    async def _guarded(self, cid: int, has_customer: bool) -> None:
        delay = 0.2
        async with self._sem:
            while True:
                try:
                    await self._handle(cid, has_customer)
                    return
                except (NotFound, InvalidTransition) as exc:
                    log.info("conversation %s moved on while the hub handled it: %s", cid, exc)
                    return
                except (DatabaseUnavailable, sqlite3.OperationalError) as exc:
                    # The triage state in memory may be ahead of what was stored: reload it.
                    self._cache.pop(cid, None)
                    self.stats.errors += 1
                    if self._stopping:
                        # Keep the cursor before this conversation so a restart replays it.
                        self._held[cid] = min(
                            self._held.get(cid, 1 << 62), self._first_event.get(cid, 0)
                        )
                        return
                    log.warning("hub: conversation %s: %s; retrying in %.1f s", cid, exc, delay)
                    await asyncio.sleep(delay)
                    delay = min(5.0, delay * 2)
                except Exception:
                    self.stats.errors += 1
                    log.exception("hub: conversation %s", cid)
                    return

    async def _handle(self, cid: int, has_customer: bool) -> None:
        store = self.store
        conv = store.one(
            "SELECT c.state, c.bot_fallbacks, c.triage_state, cu.name, c.version FROM conversations c"
            " JOIN customers cu ON cu.id = c.customer_id WHERE c.id = ?",
            (cid,),
        )
        if conv is None:
            return
        state, fallbacks, triage_state, customer_name = conv[0], conv[1], conv[2], conv[3]
        entry = self._entry(cid, triage_state, version=conv[4])
        rows = store.query(
            "SELECT id, role, text, created_at, meta FROM messages"
            " WHERE conversation_id = ? AND id > ? AND role IN ('customer', 'bot', 'agent', 'system')"
            " ORDER BY id",
            (cid, entry.upto),
        )
        pending = self._observe(entry, rows)
        if pending is None and state == "bot":
            # Nothing new to observe, yet the customer may still be owed an answer: released or
            # handed back after their last word, or a crash between storing the verdict and the
            # answer. The transcript, not the triage state, says what was answered.
            pending = self._unanswered(cid, entry)
        if pending is None:
            return  # nothing new from the customer, or already answered (a replay)
        mid, created_at = pending
        verdict = entry.last_customer
        if state != "bot":
            # Waiting, with a person, or resolved meanwhile: agents just see the level.
            self._record(cid, entry, mid)
            return
        settled = entry.settled
        decision = decide(
            self.settings,
            level=verdict.level,
            reasons=verdict.reasons,
            message_reasons=getattr(verdict, "message_reasons", ()),
            fallbacks=fallbacks,
            settled=settled,
        )
        if decision.escalate:
            self._escalate(cid, entry, mid, decision)
            return
        if entry.context is None:
            entry.context = deque(self._context(cid), maxlen=CONTEXT_MESSAGES)
        ctx = _bot_context(cid, customer_name, list(entry.context), verdict, fallbacks)
        asked = time.monotonic()
        try:
            ans = await self.bot.answer(ctx)
        except Exception:
            # A broken bot must not leave the customer talking to nobody.
            log.exception("bot failed on conversation %s; escalating", cid)
            self.stats.errors += 1
            self._escalate(
                cid,
                entry,
                mid,
                Decision(True, ("bot_fallback",), max_level(verdict.level, "watch"), "bot_error"),
                fallback=True,
            )
            return
        if time.monotonic() - asked > STALE_AFTER_S and self._customer_wrote_since(cid, mid):
            # The customer wrote again while the bot was thinking: answer the newest message,
            # with it in the context, instead of posting a reply that is already behind.
            self._again[cid] = True
            return
        after = decide(
            self.settings,
            level=verdict.level,
            reasons=verdict.reasons,
            message_reasons=getattr(verdict, "message_reasons", ()),
            fallbacks=fallbacks + (1 if ans.fallback else 0),
            handoff=bool(ans.handoff),
            handoff_reason=getattr(ans, "handoff_reason", None) or None,
            settled=settled,
        )
        if after.escalate:
            self._escalate(cid, entry, mid, after, fallback=bool(ans.fallback))
            return
        self._reply(cid, entry, mid, created_at, ans)

    def _customer_wrote_since(self, cid: int, mid: int) -> bool:
        return (
            self.store.one(
                "SELECT 1 FROM messages WHERE conversation_id = ? AND id > ? AND role = 'customer' LIMIT 1",
                (cid, mid),
            )
            is not None
        )

    def _unanswered(self, cid: int, entry: _Conv) -> tuple[int, float] | None:
        """The customer's message, if it is the newest one in the conversation."""
        row = self.store.one(
            "SELECT id, role, created_at FROM messages WHERE conversation_id = ? AND role != 'note'"
            " ORDER BY id DESC LIMIT 1",
            (cid,),
        )
        if row is None or row[1] != "customer":
            return None
        verdict = entry.verdict or entry.last_customer or getattr(entry.state, "verdict", None)
        if verdict is None:
            return None
        entry.last_customer = verdict
        return row[0], row[2]

    # --- triage state -------------------------------------------------------------------------

    def _entry(self, cid: int, triage_state: str | None, *, version: int | None = None) -> _Conv:
        """The cached state of ``cid``, or one loaded from ``triage_state`` (or a fresh one).

        :param version: the conversation's version; 0 means it never changed hands, so nothing
            can have been settled by a person (saves a query for new conversations)
        """
        entry = self._cache.get(cid)
        if entry is not None:
            self._cache.move_to_end(cid)
            return entry
        entry = None
        if triage_state:
            try:
                saved = json.loads(triage_state)
                if isinstance(saved, dict) and "engine" in saved:
                    entry = _Conv(
                        self.engine.load_state(saved["engine"]), int(saved.get("upto", 0))
                    )
            except (ValueError, TypeError, KeyError):
                log.warning(
                    "conversation %s: unreadable triage state; rebuilding from the transcript", cid
                )
        if entry is None:
            # Observed from the first message on: the whole history passes through _observe.
            entry = _Conv(self.engine.new_state(), context=deque(maxlen=CONTEXT_MESSAGES))
        entry.settled = self._load_settled(cid) if version != 0 else Settled()
        self._cache[cid] = entry
        if len(self._cache) > CACHE_SIZE:
            self._cache.popitem(last=False)
        return entry

    def _observe(self, entry: _Conv, rows: list[Any]) -> tuple[int, float] | None:
        """Feed new messages to the engine; return the customer message still to answer."""
        pending: tuple[int, float] | None = None
        for mid, role, text, created_at, meta in rows:
            if entry.context is not None:
                entry.context.append({"role": role, "text": text})
            if role == "system":
                # An escalation notice or "Ana joined": the customer has been answered.
                pending = None
                entry.upto = mid
                continue
            fallback = False
            if role == "bot" and meta:
                try:
                    fallback = bool(json.loads(meta).get("fallback"))
                except (ValueError, AttributeError):
                    fallback = False
            verdict = self.engine.observe(entry.state, role, text, fallback=fallback)
            entry.verdict = verdict
            entry.upto = mid
            if role == "customer":
                entry.last_customer = verdict
                pending = (mid, created_at)
            else:
                pending = None
        if pending is not None and entry.last_customer is None:
            entry.last_customer = entry.verdict
        return pending

    def _mark(
        self, entry: _Conv, verdict: Any, *, level: str | None = None, also: tuple[str, ...] = ()
    ) -> lc.TriageMark:
        dump = json.dumps(
            {"upto": entry.upto, "engine": self.engine.dump_state(entry.state)},
            separators=(",", ":"),
        )
        lvl = level or verdict.level
        # An escalation's own reasons (the bot's hand-off, its fallbacks) belong on the badge
        # too: an agent must never see a conversation sent to people with no reason shown.
        reasons = list(verdict.reasons) + [r for r in also if r not in verdict.reasons]
        entry.stored = (lvl, tuple(reasons))
        return lc.TriageMark(lvl, float(verdict.score), reasons, dump)

    def _record(self, cid: int, entry: _Conv, mid: int | None) -> None:
        verdict = entry.verdict
        if verdict is None:
            return
        lc.record_triage(
            self.store, cid, self._waiting_mark(cid, entry, verdict), message_id=mid, actor="triage"
        )

    def _waiting_mark(self, cid: int, entry: _Conv, verdict: Any) -> lc.TriageMark:
        """The mark for a verdict, never below what sent the conversation to the queue while it waits.

        A customer in the queue who writes "hello??" is not calmer than when the bot handed
        them over: until a person answers, the badge keeps the escalation's level and reasons.
        """
        row = self.store.one(
            "SELECT e.data FROM conversations c JOIN events e ON e.conversation_id = c.id"
            " WHERE c.id = ? AND c.state = 'waiting' AND e.kind = 'escalated' ORDER BY e.id DESC LIMIT 1",
            (cid,),
        )
        if row is None or not row[0]:
            return self._mark(entry, verdict)
        data = json.loads(row[0])
        level = max_level(verdict.level, data.get("level") or "watch")
        return self._mark(entry, verdict, level=level, also=tuple(data.get("reasons") or ()))

    def _settle(self, cid: int) -> None:
        entry = self._cache.get(cid)
        if entry is not None:
            entry.settled = self._settled_from_store(cid)

    def _load_settled(self, cid: int) -> Settled:
        return self._settled_from_store(cid)

    def _settled_from_store(self, cid: int) -> Settled:
        """Reasons and level that a person dealt with, up to the last hand-back."""
        row = self.store.one(
            f"SELECT max(id) FROM events WHERE conversation_id = ? AND {_SETTLED_SQL}",
            (cid,),
        )
        if row is None or row[0] is None:
            return Settled()
        reasons: set[str] = set()
        level = "calm"
        for (data,) in self.store.query(
            "SELECT data FROM events WHERE conversation_id = ? AND id < ? AND kind IN ('triaged', 'escalated')"
            " AND data IS NOT NULL",
            (cid, row[0]),
        ):
            d = json.loads(data)
            reasons.update(d.get("reasons") or ())
            if d.get("level"):
                level = max_level(level, d["level"])
        return Settled(frozenset(reasons), level)

    # --- actions --------------------------------------------------------------------------------

    def _context(self, cid: int) -> list[dict[str, str]]:
        rows = self.store.query(
            "SELECT role, text FROM (SELECT id, role, text FROM messages WHERE conversation_id = ?"
            " AND role != 'note' ORDER BY id DESC LIMIT ?) ORDER BY id",
            (cid, CONTEXT_MESSAGES),
        )
        return [{"role": r[0], "text": r[1]} for r in rows]

    def _reply(self, cid: int, entry: _Conv, mid: int, created_at: float, ans: Any) -> None:
        verdict = entry.last_customer
        mark = self._mark(entry, verdict)
        meta: dict[str, Any] = dict(ans.meta())
        try:
            bot_mid = lc.bot_reply(
                self.store,
                cid,
                ans.text,
                reply_to=mid,
                fallback=bool(ans.fallback),
                meta=meta,
                triage=mark,
            )
        except AlreadyAnswered:
            return
        except NotOwner:
            # An agent claimed it while the bot was thinking: the reply is dropped (invariant 3).
            self._record(cid, entry, mid)
            return
        except InvalidInput as exc:
            # An empty or oversized reply cannot be sent; a person answers instead.
            log.warning("conversation %s: the bot's reply was refused (%s); escalating", cid, exc)
            self.stats.errors += 1
            verdict = entry.last_customer
            self._escalate(
                cid,
                entry,
                mid,
                Decision(True, ("bot_fallback",), max_level(verdict.level, "watch"), "bot_error"),
                fallback=True,
            )
            return
        self.stats.bot_replies += 1
        self.stats.fallbacks += 1 if ans.fallback else 0
        if self.keep_lags:
            self.stats.lags.append(self.clock() - created_at)
        # The engine sees the bot's words too (fallbacks and repetition are conversation signals).
        entry.verdict = self.engine.observe(
            entry.state, "bot", ans.text, fallback=bool(ans.fallback)
        )
        entry.upto = bot_mid
        if entry.context is not None:
            entry.context.append({"role": "bot", "text": ans.text})
        if getattr(ans, "resolve", False):
            try:
                lc.resolve(self.store, cid, by="bot")
                self.stats.resolved_by_bot += 1
            except InvalidTransition:
                pass

    def _escalate(
        self, cid: int, entry: _Conv, mid: int, decision: Decision, *, fallback: bool = False
    ) -> None:
        verdict = entry.last_customer or entry.verdict
        level = max_level(verdict.level, decision.level)
        queue_ahead, online = self._queue_position(cid, level)
        minutes = wait_estimate_minutes(
            self.settings, queue_ahead, online, self._handling_minutes()
        )
        text = handoff_message(
            decision, queue_ahead=queue_ahead, wait_minutes=minutes, fallback=fallback
        )
        mark = self._mark(entry, verdict, level=level, also=tuple(decision.reasons))
        # The customer message carries the verdict that sent it to a person.
        lc.record_triage(self.store, cid, mark, message_id=mid, actor="triage")
        try:
            lc.escalate(
                self.store,
                cid,
                reasons=list(decision.reasons),
                by="hub",
                level=level,
                triage=mark,
                message=text,
                note=f"rule {decision.rule}" + (f", ~{minutes} min" if minutes else ""),
            )
        except InvalidTransition:
            return
        self.stats.escalations += 1
        for r in decision.reasons:
            self.stats.escalation_reasons[r] = self.stats.escalation_reasons.get(r, 0) + 1

    def _handling_minutes(self) -> float | None:
        """Average minutes agents took per conversation over the last two hours (cached 30 s)."""
        now = self.clock()
        if now - self._handling[0] < 30:
            return self._handling[1]
        row = self.store.one(
            "SELECT count(*), avg(resolved_at - claimed_at) FROM conversations WHERE resolved_at >= ?"
            " AND claimed_at IS NOT NULL AND resolved_at > claimed_at",
            (now - 7200,),
        )
        # A handful of samples is noise; clamp so one odd conversation cannot promise 0 or 90 min.
        value = min(30.0, max(1.0, row[1] / 60)) if row and row[0] >= 5 else None
        self._handling = (now, value)
        return value

    def _queue_position(self, cid: int, level: str) -> tuple[int, int]:
        now = self.clock()
        # Counted in the order people take the queue in (policy.queue_key), joining it now.
        ahead = queue_ahead(
            waiting_queue(self.store), {"id": cid, "level": level, "waiting_since": now}
        )
        online = self.store.one(
            "SELECT count(*) FROM agents WHERE last_seen_at >= ? OR name IN"
            " (SELECT owner FROM conversations WHERE state = 'human')",
            (now - self.settings.online_window_s,),
        )
        return ahead, (online[0] if online else 0)

    # --- timers ---------------------------------------------------------------------------------

    async def tick(self) -> None:
        """SLA timers: ``long_wait`` for waiting conversations; resolve quiet bot conversations."""
        now = self.clock()
        self._last_tick = now
        store = self.store
        for cid, since, triage_state in store.query(
            "SELECT id, waiting_since, triage_state FROM conversations WHERE state = 'waiting'"
            " AND waiting_since IS NOT NULL ORDER BY waiting_since LIMIT 500"
        ):
            try:
                entry = self._entry(cid, triage_state)
                verdict = self.engine.waited(entry.state, max(0.0, now - since))
                before = entry.stored
                mark = self._waiting_mark(cid, entry, verdict)
                if entry.stored == before:
                    continue
                entry.verdict = verdict
                changed = lc.record_triage(store, cid, mark, actor="sla")
                if (
                    changed
                    and "long_wait" in verdict.reasons
                    and (before is None or "long_wait" not in before[1])
                ):
                    self.stats.long_wait_raised += 1
            except (NotFound, InvalidTransition):
                continue
            except Exception:
                self.stats.errors += 1
                log.exception("hub: SLA tick on conversation %s", cid)
        cutoff = now - self.settings.idle_resolve_s
        for (cid,) in store.query(
            "SELECT id FROM conversations WHERE state = 'bot' AND coalesce(last_message_at, created_at) < ?"
            " AND (last_customer_at IS NULL OR last_customer_at < last_message_at) LIMIT 200",
            (cutoff,),
        ):
            try:
                lc.resolve(store, cid, by="hub")
                self.stats.idle_resolved += 1
            except InvalidTransition:
                continue

    # --- reporting ------------------------------------------------------------------------------

    def status_line(self, previous: dict[str, Any], seconds: float) -> str:
        """One line of throughput since ``previous`` (a :meth:`HubStats.snapshot`)."""
        now = self.stats.snapshot()
        d = {k: now[k] - previous.get(k, 0) for k in now}
        counts = {
            s: n
            for s, n in self.store.query("SELECT state, count(*) FROM conversations GROUP BY state")
        }
        oldest = self.store.one(
            "SELECT min(waiting_since) FROM conversations WHERE state = 'waiting'"
        )
        wait = f", oldest wait {self.clock() - oldest[0]:.0f}s" if oldest and oldest[0] else ""
        since = self.clock() - seconds
        # SLA over the interval: time in the queue until a person claimed, and until they replied.
        waits = [
            r[0]
            for r in self.store.query(
                "SELECT claimed_at - waiting_since FROM conversations WHERE claimed_at >= ?"
                " AND waiting_since IS NOT NULL AND claimed_at >= waiting_since",
                (since,),
            )
        ]
        firsts = [
            r[0]
            for r in self.store.query(
                "SELECT first_human_reply_at - claimed_at FROM conversations WHERE first_human_reply_at >= ?"
                " AND claimed_at IS NOT NULL",
                (since,),
            )
        ]
        sla = ""
        if waits:
            sla += f", queue wait p50 {percentile(waits, 0.5):.0f}s ({len(waits)} claimed)"
        if firsts:
            sla += f", first human reply p50 {percentile(firsts, 0.5):.0f}s"
        rate = d["customer_messages"] / seconds if seconds > 0 else 0.0
        return (
            f"hub: {seconds:.0f}s: {d['customer_messages']} customer messages ({rate:.1f}/s),"
            f" {d['bot_replies']} bot replies ({d['fallbacks']} fallbacks), {d['escalations']} escalations,"
            f" {d['idle_resolved'] + d['resolved_by_bot']} resolved, {d['errors']} errors{sla} | now"
            f" bot {counts.get('bot', 0)}, waiting {counts.get('waiting', 0)}{wait},"
            f" human {counts.get('human', 0)}, resolved {counts.get('resolved', 0)}"
        )


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


def percentile(values: list[float], q: float) -> float:
    """The ``q`` quantile (0..1) of ``values`` by nearest rank; NaN when empty."""
    if not values:
        return math.nan
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, math.ceil(q * len(ordered)) - 1))]


def make_hub(
    path: str | Path, *, settings: PolicySettings | None = None, llm: Any = None, **kwargs: Any
) -> Hub:
    """A hub with the real triage engine and bot, the KB loaded if the table is empty.

    :param llm: a :class:`console.config.LLMConfig`, or ``None`` for the embedded bot only
    """
    from console.bot import make_bot
    from console.kb import ensure_loaded
    from console.triage import TriageEngine

    with Store(path) as store:
        ensure_loaded(store)
    return Hub(path, engine=TriageEngine(), bot=make_bot(path, llm), settings=settings, **kwargs)
