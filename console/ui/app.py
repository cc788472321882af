"""``TandemApp``: the agent console over a backend (a store file, or a server).

The app owns the conversation rows the screens draw (``rows``, id -> row dict), fed by one
:class:`console.ui.feed.FeedReader` thread; the backend (``console.backend``: local or remote,
the screens do not know which); and the :class:`console.ui.writer.StoreWriter` every move
goes through, so a database locked by another process, or a slow network, never stalls key
handling. A write's outcome comes back as a
past-tense message (:class:`TandemApp.Claimed`, :class:`TandemApp.Moved`...) to the screen
that asked, and bubbles up to the app, which says it in a notification.

The LLM settings are resolved once by the command that starts the console and passed in
frozen (:class:`console.config.LLMConfig`); nothing below reads the environment or files.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal, TypeVar

from textual import events
from textual.app import App
from textual.binding import Binding
from textual.message import Message
from textual.message_pump import MessagePump

from console.backend import (
    ROUTER,
    AtCapacity,
    Backend,
    InvalidTransition,
    LocalBackend,
    SessionEnded,
    StoreError,
)
from console.policy import LEVELS, PolicySettings, level_rank
from console.ui.alerts import (
    Alert,
    AlertMode,
    AlertWatch,
    NotifyProtocol,
    ToastFolder,
    osc_notification,
)
from console.ui.feed import (
    ConnectionChanged,
    FeedFailed,
    FeedReader,
    MetricsChanged,
    TranscriptChanged,
    WallChanged,
    Whispered,
)
from console.ui.model import reason_words, safe_text
from console.ui.quiet_gc import QuietCollector
from console.ui.writer import StoreWriter

if TYPE_CHECKING:
    from console.config import LLMConfig
    from console.llm import LLM

T = TypeVar("T")

RISING_SECONDS = 4.0
GIVING_AWAY = frozenset({"transfer", "assign"})
"""Moves by which this console can give a conversation it holds to someone else."""
GIVING_AWAY_SECONDS = 60.0
"""How long after its write such a move is expected on the feed (the feed polls in ~1 s)."""
HEARTBEAT_SECONDS = 30.0
SESSION_END_SECONDS = 5.0
"""How long a console the server signed out stays up to say so before it closes."""
ALERT_GAP_SECONDS = 5.0
ALERT_TOAST_SECONDS = 8.0  # an alert's notification stays this long; its kind waits meanwhile
IDLE_CHECK_SECONDS = 5.0
Presence = Literal["online", "away", "offline"]


class TandemApp(App[None]):
    """The agent console.

    Args:
        source: the store file (shared with ``tandem serve`` and other consoles), or a
            backend (``console.backend``: a ``RemoteBackend`` for ``--server``).
        agent: this agent's name (registered in the store on start); with a backend, the
            backend's.
        supervisor: register as a supervisor and allow the supervisor view's actions; with
            a backend, the backend's (a server says who is one).
        interval: the feed's coalescing interval in seconds.
        policy: the policy in force: its per-level SLA targets colour waits on the wall and
            in the supervisor view (default ``PolicySettings()``).
        policy_path: the file ``policy`` was read from, if any (the what-if screen lists it and
            its folder's other policy files).
        sla_seconds: one target for every level instead of the policy's (``--sla``).
        notice: a line to show once the console is up (``tandem demo`` says where things are).
        llm: the LLM settings resolved at start; drafts use the embedded engine without one.
        alerts: what rings this agent's bell (``console.ui.alerts``): ``all``, ``urgent``, ``off``.
        notify_protocol: the terminal's desktop notification, ``osc9``, ``osc777`` or ``none``.
    """

    TITLE = "Tandem"
    BINDINGS = [
        Binding("ctrl+q", "quit", "Quit", show=False, priority=True, id="app.quit"),
        Binding("f2", "change_theme", "Theme", show=False, id="app.theme"),
    ]

    @dataclass
    class Claimed(Message):
        """This agent now owns the conversation (posted to the screen that asked)."""

        conversation_id: int
        open_after: bool
        """Open the conversation with the composer ready (the wall's ``t`` and ``n``)."""

    @dataclass
    class ClaimFailed(Message):
        """A claim did not happen; ``reason`` is one line for the agent."""

        conversation_id: int | None
        """``None`` for take-next."""
        reason: str
        kind: Literal["taken", "empty", "full", "error"]
        """``taken``: another agent won or it closed; ``empty``: nobody waits; ``full``: at
        capacity (routing on); ``error``: the store."""

    @dataclass
    class Moved(Message):
        """A move other than a claim was stored (hand back, resolve, note, assign...)."""

        conversation_id: int
        move: str
        text: str
        """What to tell the agent, e.g. ``#12 resolved``."""

    @dataclass
    class MoveFailed(Message):
        """A move was refused or the store could not take it; ``reason`` is one line."""

        conversation_id: int
        move: str
        reason: str

    def __init__(
        self,
        source: Path | str | Backend,
        agent: str | None = None,
        *,
        supervisor: bool = False,
        interval: float = 0.1,
        policy: PolicySettings | None = None,
        policy_path: Path | None = None,
        sla_seconds: float | None = None,
        notice: str | None = None,
        llm: LLMConfig | None = None,
        alerts: AlertMode = "all",
        notify_protocol: NotifyProtocol = "none",
    ) -> None:
        super().__init__()
        # A file opens (creates, migrates) here, before the first frame, so a broken path
        # fails the command with one line instead of a dead console.
        if isinstance(source, (str, Path)):
            if agent is None:
                raise ValueError("a console on a store file needs an agent name")
            source = LocalBackend(source, agent, supervisor=supervisor)
        self.backend: Backend = source
        self.agent = source.agent
        self.supervisor = source.supervisor
        policy = policy or PolicySettings()
        if sla_seconds is not None:
            policy = policy.with_overrides(sla_s=dict.fromkeys(LEVELS, sla_seconds))
        self.policy = policy
        self.policy_path = Path(policy_path) if policy_path is not None else None
        self.alerts = AlertWatch(alerts, policy.sla_s)
        self.notify_protocol = notify_protocol
        self._rang_at: float | None = None
        self.alert_gap = ALERT_GAP_SECONDS
        self.toasts = ToastFolder(ALERT_TOAST_SECONDS)
        self.rows: dict[int, dict[str, Any]] = {}
        self.rising: dict[int, float] = {}
        # Conversations this console is moving away from this agent (a supervisor's own
        # transfer or assign), until when: the feed then shows them taken, and that is no news.
        self._giving_away: dict[int, float] = {}
        self.last_event_id = 0
        self.writer = StoreWriter()
        self.reader = FeedReader(
            self,
            source,
            interval=interval,
            metrics=self.supervisor,
            sla_s=policy.sla_s,
            agent=self.agent,
        )
        self.llm: LLM | None = None
        if llm is not None and llm.enabled:
            from console.llm import LLM

            self.llm = LLM(llm)
        self._wall: Any = None
        self._notice = notice
        self.collector = QuietCollector()
        self._claiming: set[int | None] = set()
        self.connection_problem: str | None = None
        """Why the live updates are interrupted right now (``None``: they are live)."""
        # Presence (store.presence): online from the start; away by choice (`a`) or after
        # `away_after_idle_minutes` without a key or a click, online again at the next one.
        self.presence: Presence = "online"
        self.idle_away_s = policy.routing.away_after_idle_minutes * 60
        self._idle_away = False
        self._last_input = time.monotonic()

    def on_mount(self) -> None:
        from console.ui.screens.wall import WallScreen

        self._wall = WallScreen()
        self.push_screen(self._wall)
        self.reader.start()
        self._heartbeat()  # registers the agent (and its role) on start
        # The knowledge base's index, off the event loop and after the first frame: ctrl+k and
        # drafts find it built.
        self.set_timer(
            0.5,
            lambda: self.run_worker(
                self.backend.warm,
                thread=True,
                exit_on_error=False,
                name="kb-index",
            ),
        )
        self.set_interval(1.0, self.collector.tick)
        self.set_interval(HEARTBEAT_SECONDS, self._heartbeat)
        self.set_interval(IDLE_CHECK_SECONDS, self._check_idle)
        self.set_interval(1.0, self._check_breaches)
        if self._notice:
            self.notify(self._notice, timeout=8, markup=False)

    async def write(self, fn: Callable[[Backend], T]) -> T:
        """Queue ``fn(backend)`` on the writer thread now; await its result (see
        ``console.ui.writer``). A server that no longer takes the token ends the session."""
        backend = self.backend
        pending = self.writer.run(lambda: fn(backend))
        try:
            return await pending
        except SessionEnded as exc:
            self.end_session(str(exc))
            raise

    def _heartbeat(self) -> None:
        # The supervisor view shows when each agent was last seen.
        self.run_worker(self._beat(), group="store-writes", name="heartbeat")

    async def _beat(self) -> None:
        status = self.presence
        try:
            await self.write(lambda b: b.heartbeat(status))
        except StoreError:
            pass  # a busy database: the next beat will do

    def set_presence(self, status: Presence, *, idle: bool = False) -> None:
        """Say where this agent is (``online``, ``away``); stored off the event loop.

        Args:
            idle: the console decided it (no key or click for a while), not the agent; the
                next key brings them back online.
        """
        self._idle_away = idle and status == "away"
        if status == self.presence:
            return
        self.presence = status
        self.run_worker(self._say_presence(status), group="store-writes", name="presence")
        if not idle:
            words = "away: no new assignments" if status == "away" else "online"
            self.notify(f"You are {words}", timeout=4, markup=False)
        self._tell_screens("presence_changed", status)

    async def _say_presence(self, status: Presence) -> None:
        try:
            await self.write(lambda b: b.set_presence(status))
        except StoreError:
            pass  # the next heartbeat says it again

    def toggle_away(self) -> None:
        """Online -> away, away -> online (the wall's ``a``, the command palette)."""
        self.set_presence("online" if self.presence == "away" else "away")

    def _check_idle(self) -> None:
        idle = time.monotonic() - self._last_input
        if self.presence == "online" and idle >= self.idle_away_s:
            self.set_presence("away", idle=True)

    def on_unmount(self) -> None:
        self.reader.stop()
        self.collector.stop()
        # Said before the writer closes: whoever routes work knows at once this agent left.
        backend = self.backend
        self.writer.run_soon(lambda: backend.set_presence("offline"))
        self.writer.close()  # the agent's last writes are stored before the console goes
        self.backend.close()

    async def on_event(self, event: events.Event) -> None:
        if isinstance(event, (events.Key, events.MouseDown)):
            self.collector.touched()
            self._last_input = time.monotonic()
            if self._idle_away:
                self.set_presence("online")
        await super().on_event(event)

    # --- feed ---------------------------------------------------------------------------

    def _shutting_down(self) -> bool:
        """The console is being taken down: its screens lose their widgets one by one.

        Textual's shutdown clears ``is_running`` first, then removes each screen's widgets while
        this app may still handle messages the feed posted meanwhile (a Pilot test's exit does
        exactly that). A screen still in the stack, still ``is_mounted``, can then have no
        queue table or header left: a hook must not run.
        """
        return not self.is_running

    def on_wall_changed(self, message: WallChanged) -> None:
        try:
            if not self._shutting_down():
                self._apply_rows(message)
        finally:
            self.reader.applied()

    def _apply_rows(self, message: WallChanged) -> None:
        rows = self.rows
        if message.full:
            rows.clear()
        deadline = time.monotonic() + RISING_SECONDS
        changes: list[tuple[dict[str, Any] | None, dict[str, Any]]] = []
        urgent: list[dict[str, Any]] = []
        for row in message.rows:
            old = rows.get(row["id"])
            changes.append((old, row))
            self._taken_from_me(old, row)
            if (
                old is not None
                and level_rank(row.get("level")) > level_rank(old.get("level"))
                and row["state"] != "resolved"
            ):
                self.rising[row["id"]] = deadline
                if row.get("level") == "urgent":
                    urgent.append(row)
            if row["state"] == "resolved":
                rows.pop(row["id"], None)
            else:
                rows[row["id"]] = row
        self.last_event_id = message.last_event_id
        # At start the whole queue arrives at once: old waits alert as breaches, not entries.
        entered = None if message.full else self.alerts.entered(changes)
        if entered is not None:
            self.alert(entered)
        elif urgent:
            self._announce(urgent)
        mine = [
            (cid, by)
            for cid, owner, by in message.assigned
            if owner == self.agent and by != self.agent
        ]
        if mine:
            self._announce_assigned(mine)
        for agent, until in message.paused:
            if agent == self.agent:
                self._announce_pause(until)
        if message.full:
            self.collector.start()  # see console/ui/quiet_gc.py: no full GC while typing
        if self._wall is not None:
            self._wall.apply(None if message.full else changes)
        self._tell_screens("rows_changed", message.rows)

    def _tell_screens(self, hook_name: str, value: Any) -> None:
        """Call ``hook_name(value)`` on every screen in the stack that has it and is mounted:
        a screen pushed but not built yet has no widgets to update, and reads the app's state
        itself in its on_mount."""
        for screen in self.screen_stack:
            hook = getattr(screen, hook_name, None)
            if hook is not None and screen.is_mounted:
                hook(value)

    def _taken_from_me(self, old: dict[str, Any] | None, row: dict[str, Any]) -> None:
        """Someone else holds a conversation this agent held (a supervisor barged in, or
        moved it): say so at once, whatever screen is up."""
        me = self.agent
        if old is None or old["state"] != "human" or old.get("owner") != me:
            return
        if row["state"] != "human" or row.get("owner") in (None, me):
            return  # handed back or closed: this agent's own move, or said where it happened
        if self._giving_away.pop(row["id"], 0.0) > time.monotonic():
            return  # this console's own transfer: its screen already said "transferred to"
        name = safe_text(row.get("customer_name") or "?", one_line=True)[:40]
        who = safe_text(str(row["owner"]), one_line=True)
        self.notify(
            f"{who} took over {name} #{row['id']} from you",
            title="taken from you",
            severity="warning",
            timeout=10,
            markup=False,
        )
        self.bell()

    def on_whispered(self, message: Whispered) -> None:
        """A supervisor's whisper to this agent: a notification at once (the transcript
        highlights the line itself)."""
        row = self.rows.get(message.conversation_id) or {}
        name = safe_text(row.get("customer_name") or "?", one_line=True)[:40]
        self.notify(
            safe_text(message.text)[:300],
            title=f"whisper from {safe_text(message.author, one_line=True)} · {name} #{message.conversation_id}",
            severity="warning",
            timeout=15,
            markup=False,
        )
        self.bell()

    def _announce(self, rows: list[dict[str, Any]]) -> None:
        """A conversation turned urgent: say so in words, once, whatever screen is up."""
        first = rows[0]
        name = safe_text(first.get("customer_name") or "?", one_line=True)[:40]
        why = ", ".join(reason_words(first.get("reasons") or [])) or "urgent"
        more = f" (and {len(rows) - 1} more)" if len(rows) > 1 else ""
        self.notify(
            f"{name} #{first['id']} is urgent: {why}{more}",
            severity="warning",
            timeout=6,
            markup=False,
        )

    def _announce_assigned(self, assigned: list[tuple[int, str | None]]) -> None:
        """Work given to this agent (by the router or a supervisor): a notification, and the
        bell as their alert setting says (``urgent``: only for an urgent conversation)."""
        rows = [self.rows.get(cid) or {"id": cid} for cid, _ in assigned]
        first = rows[0]
        name = safe_text(first.get("customer_name") or "a customer", one_line=True)[:40]
        why = ", ".join(reason_words(first.get("reasons") or []))
        by = assigned[0][1]
        who = "routing" if by == ROUTER else (by or "a supervisor")
        body = f"{name} #{first['id']}" + (f": {why}" if why else "")
        urgent = any(r.get("level") == "urgent" for r in rows)
        ring = self.alerts.mode == "all" or (self.alerts.mode == "urgent" and urgent)
        severity: Literal["warning", "error"] = "error" if urgent else "warning"
        self.alert(Alert(f"Assigned to you by {who}", body, severity, len(rows) - 1), ring=ring)

    def _announce_pause(self, until: float) -> None:
        at = time.strftime("%H:%M", time.localtime(until))
        self.notify(
            "You were shown a lot of abuse today: no new assignments until "
            f"{at}. Take a breather; you can still take work yourself.",
            title="a pause for you",
            timeout=15,
            markup=False,
        )

    def _check_breaches(self) -> None:
        alert = self.alerts.breached(self.rows.values(), time.time())
        if alert is not None:
            self.alert(alert)

    def alert(self, alert: Alert, *, ring: bool = True) -> None:
        """Say it three ways: a notification, the bell, and the desktop where the terminal can.

        Args:
            ring: the bell and the desktop too (``False``: the notification only).
        """
        t = time.monotonic()
        shown, due_in = self.toasts.offer(alert, t)
        if shown is not None:
            self._toast(shown)
        elif due_in is not None:
            self.set_timer(due_in, lambda: self._toast_held(alert.title))
        if not ring:
            return
        # A busy queue would ring all the time: the bell and the desktop at most every few
        # seconds; the console's notifications say each one (held ones as one).
        if self._rang_at is not None and t - self._rang_at < self.alert_gap:
            return
        self._rang_at = t
        self.bell()
        sequence = osc_notification(self.notify_protocol, alert.title, alert.text)
        if sequence:
            self.terminal_write(sequence)

    def _toast(self, alert: Alert) -> None:
        self.notify(
            alert.text,
            title=alert.title,
            severity=alert.severity,
            timeout=self.toasts.showing_s,
            markup=False,
        )

    def _toast_held(self, title: str) -> None:
        folded = self.toasts.due(title, time.monotonic())
        if folded is not None:
            self._toast(folded)

    def terminal_write(self, data: str) -> None:
        """Write an escape sequence to the terminal, as ``App.bell`` does (Textual has no
        public call for it): through the driver's writer thread, never under a headless run."""
        if not self.is_headless and self._driver is not None:
            self._driver.write(data)

    def prune_rising(self) -> bool:
        """Forget highlights that have run out; return whether any did."""
        t = time.monotonic()
        gone = [cid for cid, until in self.rising.items() if until <= t]
        for cid in gone:
            del self.rising[cid]
        return bool(gone)

    def on_transcript_changed(self, message: TranscriptChanged) -> None:
        try:
            from console.ui.screens.conversation import ConversationScreen

            if self._shutting_down():
                return
            for screen in self.screen_stack:
                if (
                    isinstance(screen, ConversationScreen)
                    and screen.conversation_id == message.conversation_id
                ):
                    screen.apply(message)
        finally:
            self.reader.applied()

    def on_metrics_changed(self, message: MetricsChanged) -> None:
        try:
            if self._shutting_down():
                return
            self._tell_screens("metrics_changed", message.metrics)
        finally:
            self.reader.applied()

    def on_feed_failed(self, message: FeedFailed) -> None:
        if message.ended:
            self.end_session(message.error)
            return
        self.notify(
            f"live updates stopped: {message.error}", severity="error", timeout=30, markup=False
        )

    def end_session(self, why: str) -> None:
        """The server refused this console's token: say so, and close the console shortly."""
        if self.connection_problem == "ended":
            return
        self.connection_problem = "ended"
        self.sub_title = "session ended"
        self.clear_notifications()
        text = f"session ended: {why}. Log in again: tandem login {self.backend.where}"
        self.notify(text, title="signed out", severity="error", timeout=3600, markup=False)
        self.set_timer(SESSION_END_SECONDS, lambda: self.exit(return_code=1, message=text))

    def on_connection_changed(self, message: ConnectionChanged) -> None:
        """A banner while the live updates are interrupted: a dropped connection is never silent."""
        if self.connection_problem == "ended":
            return
        was = self.connection_problem
        self.connection_problem = message.problem
        self.sub_title = message.problem or ""
        if message.problem is not None:
            self.clear_notifications()
            self.notify(
                message.problem, title="disconnected", severity="error", timeout=3600, markup=False
            )
        elif was is not None:
            self.clear_notifications()
            self.notify("live updates are back", title="reconnected", markup=False)

    # --- actions shared by screens ------------------------------------------------------

    def open_conversation(self, conversation_id: int, *, claimed: bool = False) -> None:
        """Show one conversation (``claimed``: we just took it over)."""
        from console.ui.screens.conversation import ConversationScreen

        self.push_screen(ConversationScreen(conversation_id, claimed=claimed))

    def claim(
        self, conversation_id: int, *, reply_to: MessagePump | None = None, open_after: bool = False
    ) -> None:
        """Take a conversation over, off the event loop.

        ``reply_to`` (the asking screen) gets :class:`Claimed` or :class:`ClaimFailed`; both
        bubble up to the app. A second request for a claim still on its way is ignored.
        """
        if conversation_id in self._claiming:
            return
        self._claiming.add(conversation_id)
        self.run_worker(
            self._claim(conversation_id, reply_to, open_after), group="store-writes", name="claim"
        )

    async def _claim(
        self, conversation_id: int, reply_to: MessagePump | None, open_after: bool
    ) -> None:
        message: Message
        try:
            await self.write(lambda b: b.claim(conversation_id))
        except InvalidTransition as exc:
            message = self.ClaimFailed(conversation_id, str(exc), "taken")
        except StoreError as exc:
            message = self.ClaimFailed(conversation_id, str(exc), "error")
        else:
            self.reader.poke()
            message = self.Claimed(conversation_id, open_after)
        finally:
            self._claiming.discard(conversation_id)
        self._deliver(reply_to, message)

    def take_over(self, conversation_id: int, *, reply_to: MessagePump | None = None) -> None:
        """Claim from the wall, then open the conversation with the composer ready."""
        self.claim(conversation_id, reply_to=reply_to, open_after=True)

    def move(
        self,
        move: str,
        conversation_id: int,
        fn: Callable[[Backend], object],
        done: str,
        *,
        reply_to: MessagePump | None = None,
    ) -> None:
        """Store a move (``fn(backend)``) off the event loop; ``reply_to`` gets ``Moved`` or ``MoveFailed``.

        Args:
            move: its name, for the handlers (``hand_back``, ``resolve``, ``note``...).
            done: what to tell the agent once it is stored.
        """
        row = self.rows.get(conversation_id)
        if (
            move in GIVING_AWAY
            and row is not None
            and row["state"] == "human"
            and row.get("owner") == self.agent
        ):
            self._giving_away[conversation_id] = time.monotonic() + GIVING_AWAY_SECONDS
        self.run_worker(
            self._move(move, conversation_id, fn, done, reply_to), group="store-writes", name=move
        )

    async def _move(
        self,
        move: str,
        conversation_id: int,
        fn: Callable[[Backend], object],
        done: str,
        reply_to: MessagePump | None,
    ) -> None:
        message: Message
        try:
            await self.write(fn)
        except StoreError as exc:
            self._giving_away.pop(conversation_id, None)
            message = self.MoveFailed(conversation_id, move, str(exc))
        else:
            if conversation_id in self._giving_away:  # the feed shows it from now on
                self._giving_away[conversation_id] = time.monotonic() + GIVING_AWAY_SECONDS
            self.reader.poke()
            message = self.Moved(conversation_id, move, done)
        self._deliver(reply_to, message)

    def _deliver(self, reply_to: MessagePump | None, message: Message) -> None:
        # The asking screen may have closed while the write waited: then the app hears it.
        if reply_to is None or not reply_to.post_message(message):
            self.post_message(message)

    def on_tandem_app_claimed(self, message: Claimed) -> None:
        if message.open_after:
            self.open_conversation(message.conversation_id, claimed=True)

    def on_tandem_app_claim_failed(self, message: ClaimFailed) -> None:
        title = {"taken": "not yours", "empty": "queue empty", "full": "at capacity"}.get(
            message.kind, ""
        )
        severity: Literal["information", "warning", "error"] = {
            "taken": "warning",
            "empty": "information",
            "full": "information",
        }.get(message.kind, "error")  # type: ignore[assignment]
        self.notify(message.reason, title=title, severity=severity, markup=False)

    def on_tandem_app_moved(self, message: Moved) -> None:
        self.notify(message.text, markup=False)

    def on_tandem_app_move_failed(self, message: MoveFailed) -> None:
        self.notify(message.reason, severity="warning", markup=False)

    def take_next(self, *, reply_to: MessagePump | None = None) -> None:
        """Claim the conversation first in the queue and open it; another agent's win means the next one.

        The backend reads the queue where it is kept, not from the wall's last snapshot: the
        wall may be a tenth of a second behind, and "next" must not mean one already taken.
        """
        if None in self._claiming:
            return
        self._claiming.add(None)
        self.run_worker(self._take_next(reply_to), group="store-writes", name="take_next")

    async def _take_next(self, reply_to: MessagePump | None) -> None:
        routing = self.policy.routing
        # With routing on, take-next stops at the agent's capacity, as assignment does.
        capacity = routing.capacity_of(self.agent) if routing.enabled else None
        message: Message
        try:
            claimed = await self.write(lambda b: b.claim_next(capacity))
        except AtCapacity as exc:
            message = self.ClaimFailed(None, str(exc), "full")
        except StoreError as exc:
            message = self.ClaimFailed(None, str(exc), "error")
        else:
            if claimed is None:
                message = self.ClaimFailed(
                    None, "nobody is waiting for a person right now", "empty"
                )
            else:
                self.reader.poke()
                message = self.Claimed(claimed, True)
        finally:
            self._claiming.discard(None)
        self._deliver(reply_to, message)

    def show_supervisor(self) -> None:
        """Open the supervisor view (supervisors only)."""
        if not self.supervisor:
            self.notify(
                "the supervisor view needs `tandem console --supervisor`", severity="warning"
            )
            return
        from console.ui.screens.supervisor import SupervisorScreen

        if not isinstance(self.screen, SupervisorScreen):
            self.push_screen(SupervisorScreen())
