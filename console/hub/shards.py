"""Hub workers that share one database: the conversations in shards, each shard leased.

A conversation belongs to shard ``id % SHARDS``. Each worker (a ``tandem serve`` process, or
one of the children of ``--workers N``) holds leases on some shards (``store.leases``) and
handles the feed events of their conversations only, so every conversation is handled by
one worker at a time, in feed order, and customer messages are not handled twice. Each
shard has its own cursor, saved up to the first event of any of its conversations still in
hand, so the next holder of a shard replays exactly what was not finished.

Why leases in table rows rather than PostgreSQL advisory locks: they work the same on SQLite
and PostgreSQL; a lease expires when its holder stops renewing it for any reason (killed, a
host lost, a process hung with its connection still open, which keeps an advisory lock held
forever); they survive a connection pool or a proxy that hands sessions around (advisory
locks belong to one session); and who holds what is a table anyone can read. The price is
the lease time (``ttl``): a dead worker's shards wait that long for a new holder. A worker
that stalls past its lease and comes back finds the lease gone at its next heartbeat and
stops; meanwhile the store refuses a second answer to the same message (a unique index) and
a cursor is only saved by the lease's holder, so an overlap costs work, never a duplicate.

Rebalancing: every heartbeat each worker counts the live workers (heartbeats within one
lease time, ordered by name) and takes its fair share: ``SHARDS // n``, one more for the
first ``SHARDS % n``. A worker over its share stops reading its extra shards, waits for their
conversations in hand, saves their cursors and releases them; one under it takes free or
expired shards. Wall clocks of the hosts must agree to well within the lease time (NTP).
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
import os
import socket
import tempfile
import threading
import time
from collections.abc import Callable
from typing import IO

from console.hub.feed import CURSOR, FeedFollower, Worker
from console.hub.shared import Shared
from store import Store, leases
from store.feed import Event, Follower

log = logging.getLogger("tandem.hub")

SHARDS = 64
"""Shards of the conversations. Fixed: a shard's cursor and lease are rows named by number."""
LEASE_TTL_S = 10.0
"""A lease lasts this long unrenewed (a worker's heartbeat renews it every ``ttl / 5``)."""
STALL_S = 60.0
"""The renewer thread stops renewing for a hub whose loop made no step for this long (hung)."""
SAVE_EVERY_S = 0.25
"""Cursors are saved at most this often while busy (and always when settling): up to 64 rows."""


def shard_of(conversation_id: int) -> int:
    """The shard a conversation belongs to."""
    return conversation_id % SHARDS


def fair_share(workers: list[str], me: str, shards: int = SHARDS) -> int:
    """How many shards ``me`` should hold among ``workers`` (names in a fixed order)."""
    if me not in workers:
        return 0
    n = len(workers)
    return shards // n + (1 if workers.index(me) < shards % n else 0)


def database_key(path: str | os.PathLike[str]) -> str:
    """What names one database for workers on one host: a URL as given, a file by its real path."""
    text = os.fspath(path)
    return text if "://" in text else os.path.realpath(text)


def claim_worker_name(database: str) -> tuple[str, IO[str] | None]:
    """A name for this worker that no live worker on this host uses, and the lock that keeps it.

    Names are ``<host>/<slot>``: the first slot whose lock file (per database, in the temp
    directory) no live process holds. A worker restarted after a crash gets its old slot and
    so its old name back, and takes its own unexpired leases over at once instead of waiting
    for them to expire. Without ``fcntl`` the name is made unique with the process id.

    :param database: what identifies the database (its real path, or its URL)
    """
    host = socket.gethostname() or "localhost"
    try:
        import fcntl
    except ImportError:  # not on POSIX
        return f"{host}/pid{os.getpid()}", None
    key = hashlib.sha1(database.encode()).hexdigest()[:16]
    for slot in range(1024):
        path = os.path.join(tempfile.gettempdir(), f"tandem-hub-{key}-{slot}.lock")
        try:
            fh = open(path, "a+")  # held for the worker's life
        except OSError:
            break
        try:
            fcntl.flock(fh.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            fh.close()
            continue
        return f"{host}/{slot}", fh
    return f"{host}/pid{os.getpid()}", None


class ShardedFeed(FeedFollower):
    """A :class:`FeedFollower` that handles only the shards this worker holds a lease on.

    :param name: this worker's name among all workers on the database (unique while it lives)
    :param ttl: lease time in seconds
    :param clock: wall clock shared by all workers (not a test's fake hub clock)
    """

    def __init__(
        self,
        shared: Shared,
        worker: Worker,
        *,
        name: str,
        cursor_name: str = CURSOR,
        batch: int = 2000,
        concurrency: int = 32,
        ttl: float = LEASE_TTL_S,
        clock: Callable[[], float] = time.time,
    ) -> None:
        super().__init__(
            shared, worker, cursor_name=cursor_name, batch=batch, concurrency=concurrency
        )
        self.name = name
        self.ttl = ttl
        self.clock = clock
        self.owned: set[int] = set()  # shards read and handled
        self.releasing: set[int] = set()  # still ours, no longer read: given up once idle
        self._mark: dict[int, int] = {}  # shard -> every event up to here was handed out
        self._saved_at: dict[int, int] = {}  # shard -> cursor last saved
        self._next_beat = 0.0
        self._next_save = 0.0
        self._left = False
        self._progress = time.monotonic()  # the loop's last step (read by the renewer thread)
        self._renewer: threading.Thread | None = None
        self._renewing = threading.Event()  # set: the renewer stops

    def owns(self, conversation_id: int) -> bool:
        """Whether this worker handles ``conversation_id`` now (the SLA timers ask)."""
        return conversation_id % SHARDS in self.owned

    def leads(self) -> bool:
        """Whether this worker does what is done once for all (the holder of shard 0)."""
        return 0 in self.owned

    # -- the feed ----------------------------------------------------------------------------

    def _feed(self) -> Follower:
        if self._follower is None:
            after = min((self._mark[s] for s in self.owned), default=0)
            self._seen = after
            self._follower = Follower(self.shared.path, after=after, batch=self.batch)
            self._follower.own_writes = self.shared.store
        return self._follower

    async def step(self) -> int:
        """Heartbeat when due, then one batch of this worker's shards' events."""
        self._progress = time.monotonic()
        self.beat()
        if not self.owned:
            await asyncio.sleep(0)
            self.save_cursor()
            return 0
        feed = self._feed()
        # Only this worker's shards' events are read (filtered in the query), unless it has
        # them all.
        wanted = None if len(self.owned) == SHARDS else self.owned
        if feed.shards != wanted:
            feed.shards, feed.of = (None if wanted is None else frozenset(wanted)), SHARDS
        return await super().step()

    def _read_through(self, event_id: int) -> None:
        # Every event of the shards read up to here was handed out (the query was filtered).
        mark = self._mark
        for shard in self.owned:
            if mark[shard] < event_id:
                mark[shard] = event_id

    def process_nowait(self, events: list[Event]) -> None:
        """Start handling the events of this worker's shards it has not handed out yet."""
        if not events:
            return
        mark = self._mark
        mine = []
        for ev in events:
            cid = ev.conversation_id
            if cid is not None:
                shard = cid % SHARDS
                if shard in self.owned and ev.id > mark[shard]:
                    mine.append(ev)
        last = events[-1].id
        for shard in self.owned:
            if mark[shard] < last:
                mark[shard] = last
        if mine:
            super().process_nowait(mine)

    def _on_done(self, cid: int, task: asyncio.Task[None]) -> None:
        super()._on_done(cid, task)
        if cid % SHARDS not in self.owned and cid not in self._inflight:
            # Another worker may change it from now on: never trust this memory again.
            self.worker.forget(cid)

    # -- cursors -----------------------------------------------------------------------------

    def _positions(self, shards: set[int]) -> dict[int, int]:
        """Per shard: the last event id before the first one still in hand (or held)."""
        pos = {s: self._mark[s] for s in shards}
        for pending in (self._first_event, self._held):
            for cid, first in pending.items():
                shard = cid % SHARDS
                if shard in pos and first - 1 < pos[shard]:
                    pos[shard] = first - 1
        return pos

    def save_cursor(self, *, force: bool = False) -> None:
        """Save the shards' cursors that moved (at most every ``SAVE_EVERY_S`` unless forced),
        and give up the shards being released whose conversations are all done."""
        now = self.clock()
        if not force and now < self._next_save:
            return
        self._next_save = now + SAVE_EVERY_S
        busy = {cid % SHARDS for cid in self._inflight}
        done = {s for s in self.releasing if s not in busy}
        pos = self._positions(self.owned | self.releasing)
        moved = {s: p for s, p in pos.items() if p > self._saved_at.get(s, -1) and s not in done}
        if moved:
            still = leases.save_cursors(
                self.shared.store, self.name, self.cursor_name, moved, at=now
            )
            self._saved_at.update({s: p for s, p in moved.items() if s in still})
            lost = set(moved) - still
            if lost:
                self._lose(lost)
        if done:
            leases.release(
                self.shared.store,
                self.name,
                self.cursor_name,
                {s: pos[s] for s in done},
                at=now,
            )
            self._let_go(done)
            log.info("hub worker %s: released shards %s", self.name, _ranges(done))

    async def settle(self) -> None:
        """Wait for every conversation in hand, then save every cursor."""
        await super().settle()
        self.save_cursor(force=True)

    # -- leases ------------------------------------------------------------------------------

    def beat(self, *, force: bool = False) -> None:
        """Renew this worker's leases every ``ttl / 5`` and move toward its fair share."""
        now = self.clock()
        if self._left or (not force and now < self._next_beat):
            return
        if self._next_beat and now - self._next_beat > self.ttl:
            log.warning(
                "hub worker %s: heartbeat %.1f s late (the worker is too busy)",
                self.name,
                now - self._next_beat,
            )
        self._next_beat = now + self.ttl / 5
        if self._renewer is None:
            self._renewer = threading.Thread(
                target=self._renew, name=f"lease renewer {self.name}", daemon=True
            )
            self._renewer.start()
        store = self.shared.store
        t0 = time.monotonic()
        beat = leases.heartbeat(store, self.name, shards=SHARDS, at=now, ttl=self.ttl)
        if time.monotonic() - t0 > 1:
            log.warning("hub worker %s: heartbeat took %.1f s", self.name, time.monotonic() - t0)
        mine = self.owned | self.releasing
        lost = mine - beat.owned
        if lost:
            self._lose(lost)
        target = fair_share(beat.workers, self.name)
        # Leases under this name from before a restart (same slot): ours again at once.
        back = beat.owned - mine
        if back:
            self._take(back)
        have = len(self.owned)
        if have < target and self.releasing:
            keep = set(sorted(self.releasing)[: target - have])
            self.releasing -= keep
            self.owned |= keep
            have += len(keep)
        if have > target:
            extra = set(sorted(self.owned)[target:])
            self.owned -= extra
            self.releasing |= extra
            log.info("hub worker %s: giving up shards %s", self.name, _ranges(extra))
        elif have < target and beat.free:
            wanted = sorted(beat.free)[: target - have]
            got = leases.acquire(store, self.name, wanted, at=now, ttl=self.ttl)
            if got:
                self._take(got)

    def _renew(self) -> None:
        """Renew the leases from a thread of their own, so that a loop busy for seconds (a
        language's word lists loaded on first use, a long batch) does not lose them; a loop
        stalled for ``STALL_S`` (hung) is not vouched for, and its shards go to others."""
        store: Store | None = None
        warned = False
        try:
            while not self._renewing.wait(self.ttl / 5):
                if time.monotonic() - self._progress > max(STALL_S, 6 * self.ttl):
                    continue
                try:
                    if store is None:
                        store = Store(self.shared.path)
                    leases.renew(store, self.name, at=self.clock(), ttl=self.ttl)
                    warned = False
                except Exception as exc:  # the loop's own heartbeat reports trouble too
                    if not warned:
                        log.warning("hub worker %s: renewing leases: %s", self.name, exc)
                        warned = True
        finally:
            if store is not None:
                store.close()

    def _take(self, shards: set[int]) -> None:
        """Start handling ``shards`` from their saved cursors."""
        cursors = leases.shard_cursors(self.shared.store, self.cursor_name, shards)
        for shard, at in cursors.items():
            self._mark[shard] = at
            self._saved_at[shard] = at
        self.owned |= shards
        self._forget(shards)
        if self._follower is not None and min(cursors.values()) < self._seen:
            # Behind where the feed is read: read again from there (the others skip what
            # they already handed out).
            self._follower.close()
            self._follower = None
        log.info("hub worker %s: took shards %s", self.name, _ranges(shards))

    def _lose(self, shards: set[int]) -> None:
        """Another worker holds ``shards`` now: stop at once, save nothing for them."""
        log.warning(
            "hub worker %s: lost shards %s (lease expired: the worker was too slow to renew)",
            self.name,
            _ranges(shards),
        )
        self._let_go(shards)

    def _let_go(self, shards: set[int]) -> None:
        self.owned -= shards
        self.releasing -= shards
        for shard in shards:
            self._mark.pop(shard, None)
            self._saved_at.pop(shard, None)
        for cid in [c for c in self._held if c % SHARDS in shards]:
            del self._held[cid]
        self._forget(shards)

    def _forget(self, shards: set[int]) -> None:
        """Drop what memory holds on the conversations of ``shards`` (not those in hand)."""
        forget = getattr(self.worker, "forget_where", None)
        if forget is not None:
            forget(lambda cid: cid % SHARDS in shards and cid not in self._inflight)

    def close(self) -> None:
        """Save the cursors, hand every shard back and leave (a stopping worker's share goes
        to the others at once), then close the feed's connection."""
        self._renewing.set()
        if self._renewer is not None:
            self._renewer.join(timeout=5)
            self._renewer = None
        if not self._left and self._next_beat:  # it took part: say it leaves
            self._left = True
            with contextlib.suppress(Exception):  # unreachable store: the leases expire instead
                leases.release(
                    self.shared.store,
                    self.name,
                    self.cursor_name,
                    self._positions(self.owned | self.releasing),
                    at=self.clock(),
                    leaving=True,
                )
            self.owned.clear()
            self.releasing.clear()
        super().close()


def _ranges(shards: set[int]) -> str:
    """``0-15,32`` for a set of shard numbers (log lines)."""
    out: list[str] = []
    for s in sorted(shards):
        if out and out[-1].split("-")[-1] == str(s - 1):
            out[-1] = f"{out[-1].split('-')[0]}-{s}"
        else:
            out.append(str(s))
    return ",".join(out)
