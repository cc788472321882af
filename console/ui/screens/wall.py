"""The wall: live conversations as tiles, most in need first, with filters and search.

Only the tiles that fit on screen exist (a pool of slots re-pointed as the agent scrolls), so
1,000 live conversations cost the same to draw as 20. Feed batches re-sort the id list and
re-point the slots; the selected conversation keeps its place on screen while others move.
"""

from __future__ import annotations

import functools
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from textual import on
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Container
from textual.events import MouseScrollDown, MouseScrollUp, Resize
from textual.screen import Screen
from textual.widgets import Footer, Input, Static, Tab, Tabs

from console.ui.commands import ScreenCommands
from console.ui.model import EMPTY_TEXT, FILTER_LABELS, FILTERS, matches, needs_human, sort_key
from console.ui.widgets.draft_metrics import DraftMetricsScreen
from console.ui.widgets.tile import TILE_HEIGHT, TILE_MIN_WIDTH, Tile

if TYPE_CHECKING:
    from console.ui.app import TandemApp

_MOVE = Binding.Group("move")
_FILTER = Binding.Group("filter", compact=True)


class FilterTabs(Tabs):
    """The filter tabs: clickable, but never focused (arrow keys belong to the tiles)."""

    can_focus = False


class WallScreen(Screen[None]):
    """Tiles of live conversations; Enter opens one, ``t`` takes it over."""

    CSS_PATH = "wall.tcss"
    COMMANDS = {ScreenCommands}
    AUTO_FOCUS = ""  # nothing: keys go to the screen's bindings until the agent searches

    BINDINGS = [
        Binding("enter", "open", "Open", id="wall.open", tooltip="Open the selected conversation"),
        Binding(
            "t",
            "take_over",
            "Take over",
            id="wall.take_over",
            tooltip="Claim the selected conversation and reply to the customer",
        ),
        Binding(
            "n",
            "take_next",
            "Take next",
            id="wall.take_next",
            tooltip="Claim the conversation first in the queue: most in need, then longest waiting",
        ),
        Binding(
            "a",
            "toggle_away",
            "Away",
            id="wall.away",
            tooltip="Step away (no new assignments) or come back online",
        ),
        Binding("slash", "search", "Search", id="wall.search"),
        Binding("1", "filter('all')", "all", id="wall.filter_all", group=_FILTER),
        Binding("2", "filter('needs')", "needs", id="wall.filter_needs", group=_FILTER),
        Binding("3", "filter('waiting')", "waiting", id="wall.filter_waiting", group=_FILTER),
        Binding("4", "filter('mine')", "mine", id="wall.filter_mine", group=_FILTER),
        Binding("s", "supervisor", "Supervisor", id="wall.supervisor"),
        Binding(
            "ctrl+k",
            "kb_search",
            "Knowledge base",
            show=False,
            id="wall.kb_search",
            tooltip="Search the knowledge base (read only here)",
        ),
        Binding("up,k", "move(0, -1)", "up", show=False, group=_MOVE),
        Binding("down,j", "move(0, 1)", "down", show=False, group=_MOVE),
        Binding("left,h", "move(-1, 0)", "left", show=False, group=_MOVE),
        Binding("right,l", "move(1, 0)", "right", show=False, group=_MOVE),
        Binding("pageup", "page(-1)", "page up", show=False),
        Binding("pagedown", "page(1)", "page down", show=False),
        Binding("home", "jump(0)", "first", show=False),
        Binding("end", "jump(-1)", "last", show=False),
        Binding("escape", "clear_search", "clear search", show=False),
        Binding("q", "app.quit", "Quit", id="wall.quit"),
    ]

    def __init__(self) -> None:
        super().__init__()
        self.filter = "all"
        self.query_text = ""
        self.order: list[int] = []
        self.pos: dict[int, int] = {}
        self.cursor: int | None = None
        self.top = 0
        self.cols = 1
        self.rows_visible = 1
        self.loaded = False
        self._header_text = ""

    @property
    def tandem(self) -> TandemApp:
        return self.app  # type: ignore[return-value]

    def compose(self) -> ComposeResult:
        yield Static("", id="wall-header", markup=False)
        yield FilterTabs(
            *(Tab(FILTER_LABELS[f], id=f"filter-{f}") for f in FILTERS), id="wall-filters"
        )
        yield Input(
            placeholder="search customer, words, #id  (enter: keep, escape: clear)",
            id="wall-search",
        )
        yield Container(id="wall-grid")
        yield Static("loading conversations…", id="wall-empty", markup=False)
        yield Footer()

    def on_mount(self) -> None:
        self.set_interval(1.0, self._second)
        self.call_after_refresh(self._relayout)

    # --- layout -------------------------------------------------------------------------

    def on_resize(self, event: Resize) -> None:
        self.call_after_refresh(self._relayout)

    def _relayout(self) -> None:
        grid = self.query_one("#wall-grid", Container)
        width = max(1, grid.content_size.width or self.size.width - 2)
        height = max(TILE_HEIGHT, grid.content_size.height or self.size.height - 6)
        cols = max(1, (width + 1) // (TILE_MIN_WIDTH + 1))
        rows = max(1, height // TILE_HEIGHT)
        if (cols, rows) != (self.cols, self.rows_visible) or len(grid.children) != cols * rows:
            self.cols, self.rows_visible = cols, rows
            grid.styles.grid_size_columns = cols
            have = list(grid.children)
            want = cols * rows
            if len(have) < want:
                grid.mount_all(
                    [
                        Tile(self.tandem.agent, self.tandem.policy.sla_s)
                        for _ in range(want - len(have))
                    ]
                )
            elif len(have) > want:
                for tile in have[want:]:
                    tile.remove()
            self._scroll_to_cursor()
        self.call_after_refresh(self._paint)

    # --- data ---------------------------------------------------------------------------

    def apply(
        self, changes: list[tuple[dict[str, Any] | None, dict[str, Any]]] | None = None
    ) -> None:
        """The app's rows changed: re-filter, re-sort, keep the cursor's place, repaint.

        Args:
            changes: ``(old, new)`` rows from a feed batch; when none of them moves on the wall
                (same place in the order, same filter verdict) only the tiles are repainted.
                ``None`` re-sorts everything.
        """
        self.loaded = True
        if changes is not None and self.order and not self._moves(changes):
            self._update_header()
            self._paint()
            return
        rows = self.tandem.rows
        agent = self.tandem.agent
        anchor_row = None
        if self.cursor is not None and self.cursor in self.pos:
            anchor_row = self.pos[self.cursor] // self.cols - self.top
        old_index = self.pos.get(self.cursor, 0) if self.cursor is not None else 0
        flt, q = self.filter, self.query_text
        visible = [r for r in rows.values() if matches(r, flt, agent, q)]
        visible.sort(key=sort_key)
        self.order = [r["id"] for r in visible]
        self.pos = {cid: i for i, cid in enumerate(self.order)}
        if self.cursor not in self.pos:
            self.cursor = self.order[min(old_index, len(self.order) - 1)] if self.order else None
        if self.cursor is not None and anchor_row is not None:
            # The selected tile stays where the agent's eyes are; the others move around it.
            self.top = max(0, self.pos[self.cursor] // self.cols - anchor_row)
        self._clamp_top()
        self._scroll_to_cursor()
        self._update_header()
        self._paint()

    def _moves(self, changes: list[tuple[dict[str, Any] | None, dict[str, Any]]]) -> bool:
        agent, flt, q = self.tandem.agent, self.filter, self.query_text
        for old, new in changes:
            if old is None or new["state"] == "resolved":
                return True
            if matches(old, flt, agent, q) != matches(new, flt, agent, q):
                return True
            if sort_key(old) != sort_key(new):
                return True
        return False

    def _update_header(self) -> None:
        if not self.query("#wall-header"):
            return  # not composed yet; the next feed batch or second tick updates it
        rows = self.tandem.rows.values()
        agent = self.tandem.agent
        live = needs = waiting = mine = 0
        for r in rows:
            if r["state"] == "resolved":
                continue
            live += 1
            needs += needs_human(r)
            waiting += r["state"] == "waiting"
            mine += r.get("owner") == agent
        role = "supervisor" if self.tandem.supervisor else "agent"
        shown = (
            f"  ·  showing {len(self.order)}" if (self.filter != "all" or self.query_text) else ""
        )
        text = (
            f"Tandem · {role} {agent} ({self.tandem.presence}) · {live} live · {needs} need a human · {waiting} waiting"
            f" · {mine} yours{shown}"
        )
        if text != self._header_text:  # an unchanged header costs no repaint
            self._header_text = text
            self.query_one("#wall-header", Static).update(text)

    def _clamp_top(self) -> None:
        total_rows = (len(self.order) + self.cols - 1) // self.cols
        self.top = max(0, min(self.top, max(0, total_rows - self.rows_visible)))

    def _scroll_to_cursor(self) -> None:
        if self.cursor is None or self.cursor not in self.pos:
            return
        row = self.pos[self.cursor] // self.cols
        if row < self.top:
            self.top = row
        elif row >= self.top + self.rows_visible:
            self.top = row - self.rows_visible + 1
        self._clamp_top()

    def _paint(self) -> None:
        if not self.query("#wall-grid") or not self.query("#wall-empty"):
            # Fed before the screen composed (on_mount's relayout paints it), or after the
            # app began to close and took its children down (a batch came in meanwhile).
            return
        grid = self.query_one("#wall-grid", Container)
        empty = self.query_one("#wall-empty", Static)
        if not self.order:
            if self.loaded:
                empty.update(
                    EMPTY_TEXT[self.filter]
                    if not self.query_text
                    else f"nothing matches “{self.query_text}”"
                )
            empty.set_class(True, "-shown")
            grid.set_class(True, "-empty")
            return
        empty.set_class(False, "-shown")
        grid.set_class(False, "-empty")
        rows = self.tandem.rows
        rising = self.tandem.rising
        start = self.top * self.cols
        at = time.time()
        with self.app.batch_update():
            for i, tile in enumerate(grid.children):
                if not isinstance(tile, Tile):
                    continue
                k = start + i
                if k < len(self.order):
                    cid = self.order[k]
                    tile.show(rows[cid], selected=cid == self.cursor, rising=cid in rising, at=at)
                else:
                    tile.show(None, selected=False, rising=False, at=at)

    def _second(self) -> None:
        # Highlights run out and waiting times move; tiles whose words did not change skip it.
        self.tandem.prune_rising()
        if self.order:
            self._paint()

    # --- actions ------------------------------------------------------------------------

    def action_move(self, dx: int, dy: int) -> None:
        if not self.order:
            return
        i = self.pos.get(self.cursor, 0) if self.cursor is not None else 0
        i = max(0, min(len(self.order) - 1, i + dx + dy * self.cols))
        self.cursor = self.order[i]
        self._scroll_to_cursor()
        self._paint()

    def action_page(self, direction: int) -> None:
        self.action_move(0, direction * self.rows_visible)

    def action_jump(self, where: int) -> None:
        if self.order:
            self.cursor = self.order[where]
            self._scroll_to_cursor()
            self._paint()

    def action_open(self) -> None:
        if self.cursor is not None:
            self.tandem.open_conversation(self.cursor)

    def action_take_over(self) -> None:
        if self.cursor is not None:
            self.tandem.take_over(self.cursor, reply_to=self)

    def action_take_next(self) -> None:
        self.tandem.take_next(reply_to=self)

    def action_toggle_away(self) -> None:
        self.tandem.toggle_away()

    def presence_changed(self, status: str) -> None:
        self._update_header()

    def action_filter(self, name: str) -> None:
        if name not in FILTERS:
            return
        self.filter = name
        tabs = self.query_one(Tabs)
        if tabs.active != f"filter-{name}":
            tabs.active = f"filter-{name}"
        self.top = 0
        self.apply()

    def action_search(self) -> None:
        box = self.query_one("#wall-search", Input)
        box.set_class(True, "-active")
        box.focus()

    def action_clear_search(self) -> None:
        box = self.query_one("#wall-search", Input)
        box.value = ""
        box.set_class(False, "-active")
        self.set_focus(None)
        if self.query_text:
            self.query_text = ""
            self.apply()

    def action_supervisor(self) -> None:
        self.tandem.show_supervisor()

    def action_kb_search(self) -> None:
        from console.ui.screens.kb_search import KbSearchScreen

        self.app.push_screen(
            KbSearchScreen(
                self.tandem.backend,
                insert_blocked="Read only here: open a conversation and take it over (t) to insert an article.",
            )
        )

    @on(Tabs.TabActivated, "#wall-filters")
    def _tab(self, event: Tabs.TabActivated) -> None:
        name = (event.tab.id or "filter-all").removeprefix("filter-")
        if name != self.filter:
            self.action_filter(name)

    @on(Input.Changed, "#wall-search")
    def _search_changed(self, event: Input.Changed) -> None:
        self.query_text = event.value.strip()
        self.top = 0
        self.apply()

    @on(Input.Submitted, "#wall-search")
    def _search_done(self, event: Input.Submitted) -> None:
        if not event.value.strip():
            event.input.set_class(False, "-active")
        self.set_focus(None)

    def on_key(self, event: Any) -> None:
        # Escape inside the search box clears it (the Input itself does not bind escape).
        if event.key == "escape" and isinstance(self.focused, Input):
            event.stop()
            self.action_clear_search()

    @on(Tile.Clicked)
    def _clicked(self, event: Tile.Clicked) -> None:
        self.cursor = event.conversation_id
        self._paint()
        self.tandem.open_conversation(event.conversation_id)

    def on_mouse_scroll_down(self, event: MouseScrollDown) -> None:
        self._scroll_rows(1)

    def on_mouse_scroll_up(self, event: MouseScrollUp) -> None:
        self._scroll_rows(-1)

    def _scroll_rows(self, delta: int) -> None:
        self.top += delta
        self._clamp_top()
        if self.cursor is not None and self.cursor in self.pos:
            row = self.pos[self.cursor] // self.cols
            if not self.top <= row < self.top + self.rows_visible:
                k = min(
                    len(self.order) - 1,
                    (self.top if delta > 0 else self.top + self.rows_visible - 1) * self.cols,
                )
                self.cursor = self.order[max(0, k)]
        self._paint()

    def palette_commands(self) -> list[tuple[str, str, Callable[[], object]]]:
        cmds: list[tuple[str, str, Callable[[], object]]] = [
            ("Open conversation", "open the selected tile's transcript", self.action_open),
            ("Take over", "claim the selected conversation and reply", self.action_take_over),
            (
                "Take next in queue",
                "claim whoever needs a person most, longest waiting first",
                self.action_take_next,
            ),
            ("Search", "filter tiles by customer, words or #id", self.action_search),
            (
                "Come back online" if self.tandem.presence == "away" else "Step away",
                "away: no new assignments and not counted in customers' wait; online: back",
                self.action_toggle_away,
            ),
        ]
        for f in FILTERS:
            cmds.append(
                (
                    f"Filter: {FILTER_LABELS[f]}",
                    f"show {FILTER_LABELS[f]} conversations",
                    functools.partial(self.action_filter, f),
                )
            )
        cmds.append(("Supervisor view", "queue, waits vs SLA, agents", self.action_supervisor))
        cmds.append(
            (
                "Search the knowledge base",
                "look up an article (read only on the wall)",
                self.action_kb_search,
            )
        )
        cmds.append(
            (
                "Draft statistics",
                "acceptance, edit distance, time to first text by engine",
                lambda: self.app.push_screen(DraftMetricsScreen(self.tandem.backend)),
            )
        )
        return cmds
