"""Following the change feed: batches after a saved cursor, one task per conversation touched.

Each conversation is handled by its own task, one at a time per conversation, so a slow LLM
answer never holds up the others. The cursor is saved up to the first event of any
conversation still in hand, so a restart replays exactly what was not finished: a message
stored but never answered (the hub was killed, or the database was locked) is answered after
the restart or the retry.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import sqlite3
from collections.abc import Collection
from typing import Protocol

from console.hub.shared import Shared
from store.errors import DatabaseUnavailable, InvalidTransition, NotFound
from store.feed import Event, Follower, load_cursor, save_cursor

log = logging.getLogger("tandem.hub")

CURSOR = "hub"


class Worker(Protocol):
    """The per-conversation work the feed hands out (:class:`console.hub.conversation.ConversationWork`)."""

    def touched(
        self, events: list[Event], in_hand: Collection[int]
    ) -> dict[int, tuple[bool, int]]: ...
    async def handle(self, cid: int, has_customer: bool) -> bool: ...
    def finished(self, cid: int) -> None: ...
    def forget(self, cid: int) -> None: ...


class FeedFollower:
    """Reads the feed from the cursor ``cursor_name`` and runs ``worker`` on what it touches.

    :param batch: the most events one step reads
    :param concurrency: conversations handled at once (matters with an LLM bot)
    """

    def __init__(
        self,
        shared: Shared,
        worker: Worker,
        *,
        cursor_name: str = CURSOR,
        batch: int = 2000,
        concurrency: int = 32,
    ) -> None:
        self.shared = shared
        self.worker = worker
        self.cursor_name = cursor_name
        self.batch = batch
        self.stopping = False  # set while the hub stops: a locked database is not waited out
        self._sem = asyncio.Semaphore(concurrency)
        self._follower: Follower | None = None
        self._inflight: dict[int, asyncio.Task[None]] = {}
        self._first_event: dict[int, int] = {}  # conversation in hand -> first event not yet done
        self._again: dict[int, bool] = {}  # touched again while in hand
        # Gave up on a locked database while stopping: replay from here.
        self._held: dict[int, int] = {}
        self._seen = 0  # last event id read from the feed
        self._saved = 0  # last cursor saved

    @property
    def busy(self) -> bool:
        """Whether any conversation is in hand."""
        return bool(self._inflight)

    def _feed(self) -> Follower:
        if self._follower is None:
            after = load_cursor(self.shared.store, self.cursor_name) or 0
            self._seen = self._saved = after
            self._follower = Follower(self.shared.path, after=after, batch=self.batch)
            # The hub's own commits (its replies, escalations) are no reason to read again.
            self._follower.own_writes = self.shared.store
        return self._follower

    def close(self) -> None:
        """Close the feed's connection (the next step reopens it at the saved cursor)."""
        if self._follower is not None:
            self._follower.close()
            self._follower = None

    async def step(self) -> int:
        """Read one batch of events, start handling it, save the cursor; return the event count."""
        feed = self._feed()
        events = feed.poll()
        if events:
            self._seen = events[-1].id
            self.process_nowait(events)
            self.shared.stats.batches += 1
        self._read_through(feed.cursor or 0)
        await asyncio.sleep(0)  # let the answers started above run
        self.save_cursor()
        return len(events)

    async def settle(self) -> None:
        """Wait for every conversation in hand, then save the cursor."""
        while self._inflight:
            await asyncio.gather(*list(self._inflight.values()), return_exceptions=True)
        self.save_cursor()

    def save_cursor(self) -> None:
        """Save the cursor up to the first event of any conversation still in hand."""
        safe = self._seen
        for pending in (self._first_event, self._held):
            if pending:
                safe = min(safe, min(pending.values()) - 1)
        if safe > self._saved:
            save_cursor(self.shared.store, self.cursor_name, safe)
            self._saved = safe

    def _read_through(self, event_id: int) -> None:
        """The feed was read up to ``event_id`` (beyond the last event returned, when filtered)."""

    def process_nowait(self, events: list[Event]) -> None:
        """Start handling a batch of feed events (one task per conversation touched)."""
        for cid, (new, first) in self.worker.touched(events, self._inflight).items():
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
        self._inflight.pop(cid, None)
        first = self._first_event.pop(cid, 0)
        if cid in self._again:
            self._start(cid, self._again.pop(cid), first)
        else:
            self.worker.finished(cid)

    async def _guarded(self, cid: int, has_customer: bool) -> None:
        delay = 0.2
        async with self._sem:
            while True:
                try:
                    if await self.worker.handle(cid, has_customer):
                        self._again[cid] = True
                    return
                except (NotFound, InvalidTransition) as exc:
                    log.info("conversation %s moved on while the hub handled it: %s", cid, exc)
                    return
                except (DatabaseUnavailable, sqlite3.OperationalError) as exc:
                    self.worker.forget(cid)
                    self.shared.stats.errors += 1
                    if self.stopping:
                        # Keep the cursor before this conversation so a restart replays it.
                        self._held[cid] = min(
                            self._held.get(cid, 1 << 62), self._first_event.get(cid, 0)
                        )
                        return
                    log.warning("hub: conversation %s: %s; retrying in %.1f s", cid, exc, delay)
                    await asyncio.sleep(delay)
                    delay = min(5.0, delay * 2)
                except Exception:
                    self.shared.stats.errors += 1
                    log.exception("hub: conversation %s", cid)
                    return
