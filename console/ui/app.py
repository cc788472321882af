"""``TandemApp``: the agent console over one store file.

The app owns the conversation rows the screens draw (``rows``, id -> row dict), fed by one
:class:`console.ui.feed.FeedReader` thread, and the one store connection this thread writes
with. Writes (claim, reply, hand back) are single short transactions, fast enough for the
event loop; bulk reads happen on the reader thread.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from textual import events
from textual.app import App
from textual.binding import Binding

from console.policy import level_rank
from console.ui.feed import FeedFailed, FeedReader, MetricsChanged, TranscriptChanged, WallChanged
from console.ui.model import next_in_queue, reason_words, safe_text
from console.ui.quiet_gc import QuietCollector
from store import Store, lifecycle
from store.errors import InvalidTransition, StoreError
from store.views import waiting_queue

RISING_SECONDS = 4.0
HEARTBEAT_SECONDS = 30.0


class TandemApp(App[None]):
    """The agent console.

    Args:
        db_path: the store file (shared with ``tandem serve`` and other consoles).
        agent: this agent's name (registered in the store on start).
        supervisor: register as a supervisor and allow the supervisor view's actions.
        interval: the feed's coalescing interval in seconds.
        sla_seconds: queue SLA shown in the supervisor view.
        notice: a line to show once the console is up (``tandem demo`` says where things are).
    """

    TITLE = "Tandem"
    BINDINGS = [
        Binding("ctrl+q", "quit", "Quit", show=False, priority=True, id="app.quit"),
        Binding("f2", "change_theme", "Theme", show=False, id="app.theme"),
    ]

    def __init__(
        self,
        db_path: Path | str,
        agent: str,
        *,
        supervisor: bool = False,
        interval: float = 0.1,
        sla_seconds: float = 120.0,
        notice: str | None = None,
    ) -> None:
        super().__init__()
        self.db_path = Path(db_path)
        self.agent = agent
        self.supervisor = supervisor
        self.sla_seconds = sla_seconds
        self.rows: dict[int, dict[str, Any]] = {}
        self.rising: dict[int, float] = {}
        self.last_event_id = 0
        self.store = Store(self.db_path)
        lifecycle.register_agent(self.store, agent, role="supervisor" if supervisor else "agent")
        self.reader = FeedReader(
            self, self.db_path, interval=interval, metrics=supervisor, sla_seconds=sla_seconds
        )
        self._wall: Any = None
        self._notice = notice
        self.collector = QuietCollector()

    def on_mount(self) -> None:
        from console.ui.screens.wall import WallScreen

        self._wall = WallScreen()
        self.push_screen(self._wall)
        self.reader.start()
        self.set_interval(1.0, self.collector.tick)
        self.set_interval(HEARTBEAT_SECONDS, self._heartbeat)
        if self._notice:
            self.notify(self._notice, timeout=8, markup=False)

    def _heartbeat(self) -> None:
        # The supervisor view shows when each agent was last seen.
        try:
            lifecycle.register_agent(
                self.store, self.agent, role="supervisor" if self.supervisor else "agent"
            )
        except StoreError:
            pass  # a busy database: the next beat will do

    def on_unmount(self) -> None:
        self.reader.stop()
        self.collector.stop()
        self.store.close()

    async def on_event(self, event: events.Event) -> None:
        if isinstance(event, (events.Key, events.MouseDown)):
            self.collector.touched()
        await super().on_event(event)

    # --- feed ---------------------------------------------------------------------------

    def on_wall_changed(self, message: WallChanged) -> None:
        try:
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
        if urgent:
            self._announce(urgent)
        if message.full:
            self.collector.start()  # see console/ui/quiet_gc.py: no full GC while typing
        if self._wall is not None:
            self._wall.apply(None if message.full else changes)
        for screen in self.screen_stack:
            hook = getattr(screen, "rows_changed", None)
            if hook is not None:
                hook(message.rows)

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
            for screen in self.screen_stack:
                hook = getattr(screen, "metrics_changed", None)
                if hook is not None:
                    hook(message.metrics)
        finally:
            self.reader.applied()

    def on_feed_failed(self, message: FeedFailed) -> None:
        self.notify(
            f"live updates stopped: {message.error}", severity="error", timeout=30, markup=False
        )

    # --- actions shared by screens ------------------------------------------------------

    def open_conversation(self, conversation_id: int, *, claimed: bool = False) -> None:
        """Show one conversation (``claimed``: we just took it over)."""
        from console.ui.screens.conversation import ConversationScreen

        self.push_screen(ConversationScreen(conversation_id, claimed=claimed))

    def claim(self, conversation_id: int) -> bool:
        """Take a conversation over; say why not if another agent won or it is closed."""
        try:
            lifecycle.claim(self.store, conversation_id, self.agent)
        except InvalidTransition as exc:
            self.notify(str(exc), title="not yours", severity="warning", markup=False)
            return False
        except StoreError as exc:
            self.notify(str(exc), severity="error", markup=False)
            return False
        self.reader.poke()
        return True

    def take_over(self, conversation_id: int) -> None:
        """Claim from the wall, then open the conversation with the composer ready."""
        if self.claim(conversation_id):
            self.open_conversation(conversation_id, claimed=True)

    def take_next(self) -> None:
        """Claim the conversation first in the queue and open it; another agent's win means the next one.

        The queue is read from the store, not from the wall's last snapshot: the wall may be a
        tenth of a second behind, and "next" must not mean one that was already taken.
        """
        try:
            queue = next_in_queue(waiting_queue(self.store))
        except StoreError as exc:
            self.notify(str(exc), severity="error", markup=False)
            return
        for conversation_id in queue:
            try:
                lifecycle.claim(self.store, conversation_id, self.agent)
            except InvalidTransition:
                continue  # taken by someone else a moment ago, or closed: the next in line
            except StoreError as exc:
                self.notify(str(exc), severity="error", markup=False)
                return
            self.reader.poke()
            self.open_conversation(conversation_id, claimed=True)
            return
        self.notify("nobody is waiting for a person right now", title="queue empty")

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
