"""The console's reader thread: follows the change feed and posts what changed, batched.

One thread per app (memray's ``UpdateThread`` pattern). It opens the backend's feed on its
own thread (a local one is a store connection and a ``store.feed.Follower``, a remote one an
event stream), wakes at most every ``interval`` seconds, turns a batch of feed events into fresh rows for the conversations they
touched, and posts ONE message per batch. It waits for the app to apply the previous message
before posting the next, so a slow frame merges batches instead of queueing them.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from textual.app import App
from textual.message import Message

from console.backend import PAUSED, Backend, Feed, NotFound, SessionEnded, StoreError

TRANSCRIPT_WINDOW = 200


@dataclass
class WallChanged(Message):
    """Fresh rows for conversations that changed (all live ones when ``full``)."""

    rows: tuple[dict[str, Any], ...]
    full: bool
    last_event_id: int
    assigned: tuple[tuple[int, str, str | None], ...] = ()
    """Assignments in this batch: (conversation, to whom, by whom: a supervisor or the router)."""
    paused: tuple[tuple[str, float], ...] = ()
    """Abuse pauses in this batch: (agent, until)."""


@dataclass
class TranscriptChanged(Message):
    """The watched conversation: its row, new messages, and (when it changed) its context."""

    conversation_id: int
    conversation: dict[str, Any] | None
    messages: tuple[dict[str, Any], ...]
    context: dict[str, Any] | None
    full: bool
    revealed: frozenset[int] | None = None
    """With ``full``: the abusive messages this agent chose to read here (``None``: unknown)."""


@dataclass
class MetricsChanged(Message):
    """Supervisor figures (queue, waits, agents)."""

    metrics: dict[str, Any] = field(default_factory=dict)


@dataclass
class Whispered(Message):
    """A supervisor whispered to this console's agent (``store.oversight.whisper``)."""

    conversation_id: int
    author: str
    text: str


@dataclass
class FeedFailed(Message):
    """The reader cannot read the store; ``error`` says why in words."""

    error: str
    ended: bool = False
    """The server refused this console's token: the session is over."""


@dataclass
class ConnectionChanged(Message):
    """The live updates were interrupted (``problem`` says how) or are back (``None``)."""

    problem: str | None


class FeedReader:
    """Follows the backend's feed on a daemon thread and posts to ``app``.

    Args:
        app: where messages go (``post_message`` is thread-safe).
        backend: the console's backend (local file or remote server).
        interval: the shortest time between two posts, in seconds (coalescing).
        metrics: also post :class:`MetricsChanged` (supervisor consoles).
        sla_s: the queue's SLA target per level, for the metrics.
        agent: whose whispers to announce (:class:`Whispered`).
    """

    def __init__(
        self,
        app: App[Any],
        backend: Backend,
        *,
        interval: float = 0.1,
        metrics: bool = False,
        sla_s: Mapping[str, float] | None = None,
        agent: str | None = None,
    ) -> None:
        self.app = app
        self.agent = agent
        self.backend = backend
        self.interval = interval
        self.metrics = metrics
        self.sla_s = dict(sla_s or {})
        self._stop = threading.Event()
        self._wake = threading.Event()
        self._applied = threading.Event()
        self._applied.set()
        # Written by the UI thread, read by the reader: single attribute stores are atomic.
        # (number, conversation): each watch() is numbered, so watching the same conversation
        # again is a new watch (loaded in full) and unwatch() can tell whose watch it ends.
        self._watch: tuple[int, int | None] = (0, None)
        self._thread = threading.Thread(target=self._run, name="tandem-feed", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._wake.set()
        self._applied.set()
        if self._thread.is_alive() and threading.current_thread() is not self._thread:
            self._thread.join(timeout=2)

    def watch(self, conversation_id: int | None) -> int:
        """Follow this conversation's transcript (``None`` to stop); loads it at once, in full,
        even when it is the one already followed (a screen opened again on it holds nothing).

        Returns:
            This watch's number, for :meth:`unwatch`.
        """
        number = self._watch[0] + 1
        self._watch = (number, conversation_id)
        self._wake.set()
        return number

    def unwatch(self, number: int) -> None:
        """Stop following, if watch ``number`` is still the current one.

        A conversation screen closes (its unmount) after the next one opened and watched,
        on the same conversation or another: the newer watch stays.
        """
        if self._watch[0] == number:
            self.watch(None)

    @property
    def watching(self) -> int | None:
        """The conversation whose transcript is followed, if any."""
        return self._watch[1]

    def applied(self) -> None:
        """The app applied the last message: the reader may post the next one."""
        self._applied.set()

    def poke(self) -> None:
        """Poll now (after this console's own write, so it shows without waiting)."""
        self._wake.set()

    def _post(self, message: Message) -> None:
        # Backpressure: never more than one unapplied message in the app's queue.
        while not self._applied.wait(0.5):
            if self._stop.is_set():
                return
        if self._stop.is_set():
            return
        self._applied.clear()
        self.app.post_message(message)

    def _status(self, problem: str | None) -> None:
        self.app.post_message(ConnectionChanged(problem))

    def _run(self) -> None:
        try:
            self._loop()
        except SessionEnded as exc:
            self.app.post_message(FeedFailed(str(exc), ended=True))
        except StoreError as exc:
            self.app.post_message(FeedFailed(str(exc)))
        except Exception as exc:  # the console must say why it stopped updating, not hang
            self.app.post_message(FeedFailed(f"{type(exc).__name__}: {exc}"))

    def _loop(self) -> None:
        feed = self.backend.open_feed(self._wake, self._status)
        try:
            rows, cursor = feed.snapshot()
            self._post(WallChanged(tuple(rows), True, cursor))
            watched: int | None = None
            watch_number = 0
            last_mid = 0
            last_metrics = 0.0
            while not self._stop.is_set():
                events = feed.poll()
                changed: set[int] = set()
                touched_context: set[int] = set()
                retriaged: list[int] = []
                assigned: list[tuple[int, str, str | None]] = []
                paused: list[tuple[str, float]] = []
                for e in events:
                    if e.kind == "assigned" and e.conversation_id is not None:
                        owner = (e.data or {}).get("owner")
                        if isinstance(owner, str):
                            assigned.append((e.conversation_id, owner, e.actor))
                    elif e.kind == PAUSED and e.actor is not None:
                        until = (e.data or {}).get("until")
                        if isinstance(until, int | float):
                            paused.append((e.actor, float(until)))
                    if e.conversation_id is not None:
                        changed.add(e.conversation_id)
                        if e.kind in ("triaged", "escalated"):
                            touched_context.add(e.conversation_id)
                        if e.kind == "triaged" and e.message_id and e.conversation_id == watched:
                            retriaged.append(e.message_id)
                        if e.kind == "message" and e.message_id and self._to_me(e.data):
                            self._whispered(feed, e.message_id)
                if changed or paused:
                    rows = feed.rows(sorted(changed)) if changed else []
                    self._post(
                        WallChanged(tuple(rows), False, feed.cursor, tuple(assigned), tuple(paused))
                    )
                number, target = self._watch
                if number != watch_number:
                    watch_number, watched, last_mid = number, target, 0
                    if target is not None:
                        last_mid = self._post_transcript(feed, target, 0, True, True)
                elif watched is not None and watched in changed:
                    last_mid = self._post_transcript(
                        feed, watched, last_mid, False, watched in touched_context, retriaged
                    )
                # Supervisor figures: at most twice a second while things change, else each second.
                since = time.monotonic() - last_metrics
                if self.metrics and (since > 1.0 or (changed and since > 0.5)):
                    last_metrics = time.monotonic()
                    self._post(MetricsChanged(feed.metrics(self.sla_s)))
                if len(events) >= feed.batch:  # a backlog: read on without sleeping
                    continue
                self._wake.wait(self.interval)
                self._wake.clear()
        finally:
            feed.close()

    def _to_me(self, data: dict[str, Any] | None) -> bool:
        return bool(data and data.get("whisper") and self.agent and data.get("to") == self.agent)

    def _whispered(self, feed: Feed, message_id: int) -> None:
        m = feed.message(message_id)
        if m is not None:
            # Straight to the app, past the batching: a whisper is said at once.
            self.app.post_message(Whispered(m["conversation_id"], m["author"] or "?", m["text"]))

    def _post_transcript(
        self,
        feed: Feed,
        cid: int,
        after: int,
        full: bool,
        with_context: bool,
        retriaged: list[int] | None = None,
    ) -> int:
        try:
            conv = feed.conversation(cid)
        except NotFound:
            self._post(TranscriptChanged(cid, None, (), None, full))
            return after
        revealed: frozenset[int] | None = None
        if full:
            msgs = feed.transcript(cid, last=TRANSCRIPT_WINDOW)
            try:
                revealed = frozenset(feed.revealed(cid))
            except NotFound:
                revealed = frozenset()
        else:
            msgs = feed.transcript(cid, after=after)
            # Messages already sent whose triage came after them: the screen redraws them
            # (an abusive one is masked from then on).
            again = [
                m
                for mid in sorted(set(retriaged or ()))
                if mid <= after
                for m in feed.transcript(cid, after=mid - 1, limit=1)
                if m["id"] == mid
            ]
            msgs = again + msgs
        context = feed.context(cid) if with_context else None
        self._post(TranscriptChanged(cid, conv, tuple(msgs), context, full, revealed))
        return max(after, msgs[-1]["id"]) if msgs else after
