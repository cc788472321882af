"""The hub: follows the change feed and decides, per customer message, bot or person.

The work is split by job, one module each:

- :mod:`console.hub.feed`: batches of feed events after the saved cursor ``hub``, one task
  per conversation touched, the cursor saved up to the first event still in hand;
- :mod:`console.hub.conversation`: per conversation, catch its triage up, let
  :func:`console.policy.decide` choose between the queue and the bot, post the bot's answer;
- :mod:`console.hub.memory`: each conversation's triage state, cached and caught up from the
  store (``conversations.triage_state``);
- :mod:`console.hub.escalation`: applying the policy's verdict (one store transaction);
- :mod:`console.hub.notices`: what the customer is told on the way to the queue;
- :mod:`console.hub.sla`: the periodic tick (``long_wait`` in the queue, quiet bot
  conversations resolved);
- :mod:`console.hub.stats`: counters and the per-minute status line.

:class:`Hub` puts them together and runs them until told to stop. Every read and write goes
through ``store`` functions: nothing here knows SQL.
"""

from __future__ import annotations

import asyncio
import logging
import sqlite3
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from console.hub.conversation import JUDGE_BUDGET_S, BotLike, ConversationWork
from console.hub.escalation import Escalation
from console.hub.feed import CURSOR, FeedFollower
from console.hub.memory import TriageMemory
from console.hub.notices import Notices
from console.hub.routing import Router
from console.hub.shards import LEASE_TTL_S, ShardedFeed
from console.hub.shared import Shared, TriageEngineLike
from console.hub.sla import SlaTimers
from console.hub.stats import HubStats, status_line
from console.policy import PolicySettings
from store import Store
from store.errors import DatabaseUnavailable
from store.feed import Event

log = logging.getLogger("tandem.hub")

__all__ = ["CURSOR", "Hub", "HubStats", "make_hub"]


class Hub:
    """Bot, triage and SLA timers over the store at ``path``.

    :param path: the SQLite file (one connection for reads and writes, one for the feed)
    :param engine: a triage engine (``console.triage.TriageEngine()``)
    :param bot: the bot (``console.bot.make_bot(path, config)``)
    :param settings: the escalation policy and timers
    :param clock: wall clock (seconds); tests may pass a fake one for timers
    :param concurrency: conversations answered at once (matters with an LLM bot)
    :param keep_lags: remember per-reply lag for benchmarks
    :param judge: the LLM second opinion on triage (:class:`console.triage.judge.Judge`)
    :param judge_budget: seconds the bot's answer waits for the judge (a later opinion still
        raises the conversation)
    :param worker_name: share the work with other hub workers on the same database: handle
        only the shards of conversations this worker holds a lease on (``console.hub.shards``;
        the name must be unique among live workers); ``None``: everything, one cursor
    :param lease_ttl: with ``worker_name``, seconds a lease lasts unrenewed
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
        judge: Any = None,
        judge_budget: float = JUDGE_BUDGET_S,
        worker_name: str | None = None,
        lease_ttl: float = LEASE_TTL_S,
    ) -> None:
        self.shared = shared = Shared(
            path, engine=engine, settings=settings or PolicySettings(), clock=clock
        )
        self.path = shared.path
        self.engine = engine
        self.bot = bot
        self.settings = shared.settings
        self.clock = clock
        self.stats = shared.stats
        memory = TriageMemory(shared)
        escalation = Escalation(shared, memory, Notices(shared))
        self.judge = judge
        self.conversations = ConversationWork(
            shared,
            memory,
            escalation,
            bot,
            keep_lags=keep_lags,
            judge=judge,
            judge_budget=judge_budget,
        )
        self.feed: FeedFollower
        if worker_name is None:
            self.feed = FeedFollower(
                shared,
                self.conversations,
                cursor_name=cursor_name,
                batch=batch,
                concurrency=concurrency,
            )
        else:
            # One of several workers on the database: only the shards it holds a lease on.
            self.feed = sharded = ShardedFeed(
                shared,
                self.conversations,
                name=worker_name,
                cursor_name=cursor_name,
                batch=batch,
                concurrency=concurrency,
                ttl=lease_ttl,
            )
            shared.owns = sharded.owns
            shared.leads = sharded.leads
        self.timers = SlaTimers(shared, memory, escalation)
        self.router = Router(shared) if shared.settings.routing.enabled else None
        self._wake: asyncio.Event | None = None

    @property
    def cursor_name(self) -> str:
        """The name of the hub's saved place in the feed."""
        return self.feed.cursor_name

    @property
    def store(self) -> Store:
        """The hub's own connection (opened on first use, in the loop's thread)."""
        return self.shared.store

    def close(self) -> None:
        """Close both connections."""
        self.feed.close()
        self.shared.close()

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
                    if self.timers.due():
                        await self.tick()
                    if self.router is not None and self.router.due() and self.shared.leads():
                        self.router.run()
                        self.conversations.reread()
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
            self.feed.stopping = True
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
        return await self.feed.step()

    async def settle(self) -> None:
        """Wait for every conversation in hand, then save the cursor."""
        await self.feed.settle()

    async def drain(self, *, timeout: float = 10.0) -> None:
        """Handle events until the feed is empty and nothing is in hand (tests, benchmarks)."""
        deadline = time.monotonic() + timeout
        while await self.step() or self.feed.busy:
            await self.settle()
            if time.monotonic() > deadline:
                raise TimeoutError("the hub did not catch up with the feed in time")

    async def process(self, events: list[Event]) -> None:
        """Handle a batch of feed events and wait until it is done."""
        self.feed.process_nowait(events)
        await self.settle()

    def process_nowait(self, events: list[Event]) -> None:
        """Start handling a batch of feed events (one task per conversation touched)."""
        self.feed.process_nowait(events)

    async def tick(self) -> None:
        """SLA timers: ``long_wait`` for waiting conversations; resolve quiet bot conversations."""
        self.timers.tick()
        self.conversations.reread()

    def status_line(self, previous: dict[str, Any], seconds: float) -> str:
        """One line of throughput since ``previous`` (a :meth:`HubStats.snapshot`)."""
        return status_line(self.store, self.stats, self.clock, previous, seconds)


def make_hub(
    path: str | Path,
    *,
    settings: PolicySettings | None = None,
    llm: Any = None,
    judge_llm: Any = None,
    engine: TriageEngineLike | None = None,
    **kwargs: Any,
) -> Hub:
    """A hub with the real triage engine and bot, the KB loaded if the table is empty.

    :param llm: a :class:`console.config.LLMConfig`, or ``None`` for the embedded bot only;
        when it is enabled, triage also asks it for a second opinion (``judge_budget`` in
        ``kwargs`` sets the wait, default 1.5 s)
    :param judge_llm: the LLM for that second opinion when the bot is embedded (default ``llm``)
    :param engine: the triage engine (default a new ``TriageEngine()``; benches wrap one)
    """
    from console.bot import make_bot
    from console.kb import ensure_loaded
    from console.triage import TriageEngine

    with Store(path) as store:
        ensure_loaded(store)
    judging = judge_llm if judge_llm is not None else llm
    if judging is not None and getattr(judging, "enabled", False) and "judge" not in kwargs:
        from console.llm import LLM
        from console.triage.judge import Judge

        kwargs["judge"] = Judge(LLM(judging))
        kwargs.setdefault("judge_budget", getattr(judging, "judge_budget", JUDGE_BUDGET_S))
    return Hub(
        path,
        engine=engine if engine is not None else TriageEngine(),
        bot=make_bot(path, llm),
        settings=settings,
        **kwargs,
    )
