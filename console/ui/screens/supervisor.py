"""The supervisor view: queue length, oldest wait, waits against the SLA, agents and holdings;
the report's figures of the last 24 h and charts of the last 6 (``widgets.live_report``).

Actions (DESIGN.md section 4, supervisor column): assign a waiting conversation, transfer one
an agent holds, release from the queue to the bot, take over, hand back, resolve, add a note.
The table is diffed by conversation id: changed cells are updated, rows added and removed.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any

from rich.cells import cell_len, set_cell_size
from rich.text import Text
from textual import work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical
from textual.coordinate import Coordinate
from textual.screen import Screen
from textual.widgets import DataTable, Footer, Static
from textual.widgets.data_table import CellDoesNotExist, RowDoesNotExist

from console.backend import Backend, StoreError
from console.policy import LEVELS, level_rank, queue_key
from console.ui.commands import ScreenCommands
from console.ui.model import elapsed, minutes, reason_words, safe_text
from console.ui.widgets.draft_metrics import DraftMetricsPanel, DraftMetricsScreen
from console.ui.widgets.live_report import LiveReport
from console.ui.widgets.prompt import PromptScreen
from console.ui.widgets.tile import BADGE_STYLE, over_sla

if TYPE_CHECKING:
    from console.ui.app import TandemApp

COLUMNS = ("id", "customer", "state", "owner", "level", "why", "wait")
AGENT_COLUMNS = ("agent", "role", "seen", "holds", "abuse")
"""The agents table ("abuse": abusive messages in front of them today)."""

NAME_CELLS = 28
PAD = 1
"""The DataTable's cell padding, each side of every column."""
SCROLLBAR = 2
"""Kept free at the queue's right edge for its vertical scrollbar, shown or not."""
WAIT_CELLS = len("10m 00s")
"""The wait column is at least this wide, so it does not widen (and re-lay the table) as
waits tick past a minute."""
# Where the queue gives up cells when the screen is narrow, in this order, and down to what.
QUEUE_SHRINK = (
    ("owner", 10),
    ("customer", 16),
    ("why", 16),
    ("customer", 10),
    ("owner", 6),
    ("why", 8),
)
AGENTS_SHRINK = (("agent", 6), ("holds", 5), ("role", 5))
AGENTS_MAX_SHARE = 1 / 3
"""At most this share of the screen goes to the agents' panel; the queue has the rest."""
AGENTS_MIN = 34
"""The agents' panel is never narrower (the draft figures below the table need it)."""


def _cut(text: str, cells: int) -> str:
    """A value (a customer's name: their input, any length) kept to ``cells``, marked when cut."""
    if cell_len(text) <= cells:
        return text
    return set_cell_size(text, max(cells - 1, 0)) + "…" if cells > 0 else ""


def fit_reasons(words: list[str], cells: int | None) -> str:
    """The reasons in ``cells``: whole ones first, then how many more (``fraud, unhappy +2``);
    a cut reason reads as another, so one is cut only when not even the first fits."""
    full = ", ".join(words)
    if cells is None or cell_len(full) <= cells:
        return full
    for n in range(len(words) - 1, 0, -1):
        shown = f"{', '.join(words[:n])} +{len(words) - n}"
        if cell_len(shown) <= cells:
            return shown
    more = f" +{len(words) - 1}" if len(words) > 1 else ""
    if cells - cell_len(more) >= 4:  # the first reason cut, and still how many more
        return _cut(words[0], cells - cell_len(more)) + more
    return _cut(full, cells)


def fit_widths(
    names: tuple[str, ...],
    rows: list[tuple[str, ...]],
    avail: int | None,
    shrink: tuple[tuple[str, int], ...],
    least: Mapping[str, int] | None = None,
) -> dict[str, int]:
    """Each column as wide as its header and widest value; over ``avail`` cells (padding
    included), the ``shrink`` columns give up cells in order, down to their minimum."""
    widths = {
        name: max(
            cell_len(name),
            (least or {}).get(name, 0),
            *(cell_len(r[i]) for r in rows),
        )
        for i, name in enumerate(names)
    }
    if avail is None:
        return widths
    over = sum(w + 2 * PAD for w in widths.values()) - avail
    for name, floor in shrink:
        if over <= 0:
            break
        take = min(over, widths[name] - max(floor, cell_len(name)))
        if take > 0:
            widths[name] -= take
            over -= take
    return widths


def queue_cells(
    row: dict[str, Any], sla_s: Mapping[str, float], at: float, why_cells: int | None = None
) -> tuple[Text, ...]:
    """One table row: plain ``Text`` cells (never markup); a wait over its level's SLA in red."""
    state = row["state"]
    since = row.get("waiting_since") if state == "waiting" else row.get("claimed_at")
    wait = at - since if since else 0.0
    level = row.get("level") or "calm"
    return (
        Text(str(row["id"])),
        Text(_cut(safe_text(row.get("customer_name") or "?", one_line=True), NAME_CELLS)),
        Text(state, style="bold yellow" if state == "waiting" else ""),
        Text(safe_text(row.get("owner") or "", one_line=True)),
        Text(f" {level} ", style=BADGE_STYLE.get(level, "")),
        Text(fit_reasons(reason_words(row.get("reasons") or []), why_cells)),
        Text(elapsed(wait), style="bold white on red" if over_sla(row, sla_s, at) else ""),
    )


def fitted(
    cells: tuple[Text, ...], names: tuple[str, ...], widths: Mapping[str, int]
) -> tuple[Text, ...]:
    """The cells cut to their columns' widths (marked "…"), styles kept."""
    out = []
    for name, cell in zip(names, cells, strict=True):
        if cell_len(cell.plain) > widths[name]:
            cell = Text(_cut(cell.plain, widths[name]), style=cell.style)
        out.append(cell)
    return tuple(out)


def holds_words(ids: list[int]) -> str:
    """``3: #12 +2``: how many, and the first id (the column stays narrow enough for the
    agents' panel, so no value is cut off at its edge)."""
    if not ids:
        return "0"
    more = f" +{len(ids) - 1}" if len(ids) > 1 else ""
    return f"{len(ids)}: #{ids[0]}{more}"


def queue_order(row: dict[str, Any]) -> tuple[Any, ...]:
    """The queue first, in its own order; then the conversations agents hold, most in need first.

    Waiting rows sort by ``console.policy.queue_key``, the order ``n`` takes them in and the
    one a customer's place in the queue is counted in; held ones by level, longest held first.
    """
    if row["state"] == "waiting":
        return (0, *queue_key(row))
    return (1, -level_rank(row.get("level")), row.get("claimed_at") or 0.0, row["id"])


def seen_words(presence: str | None, last_seen_at: float | None, at: float) -> str:
    """The agents table's "seen" cell: where their console says they are, and how long ago it
    last beat ("online <1m", "away 3m"); the bare time for a console that never said."""
    seen = minutes(at - last_seen_at) if last_seen_at else "-"
    return f"{presence} {seen}" if presence else seen


class SupervisorScreen(Screen[None]):
    """Queues, waits vs SLA and agents, with the supervisor's actions on the selected row."""

    CSS_PATH = "supervisor.tcss"
    COMMANDS = {ScreenCommands}

    BINDINGS = [
        Binding("escape", "back", "Wall", id="supervisor.back"),
        Binding("enter", "open", "Open", id="supervisor.open"),
        Binding(
            "a",
            "assign",
            "Assign",
            id="supervisor.assign",
            tooltip="Give a waiting conversation to an agent",
        ),
        Binding("x", "transfer", "Transfer", id="supervisor.transfer"),
        Binding(
            "l",
            "release",
            "Release",
            id="supervisor.release",
            tooltip="Send a waiting conversation back to the bot",
        ),
        Binding("t", "take_over", "Take over", id="supervisor.take_over"),
        Binding("g", "hand_back", "Hand back", id="supervisor.hand_back"),
        Binding("r", "resolve", "Resolve", id="supervisor.resolve"),
        Binding("n", "note", "Note", id="supervisor.note"),
        Binding(
            "f",
            "final_notice",
            "Final notice",
            id="supervisor.final_notice",
            tooltip="Abusive customer warned before: send the final notice and close",
        ),
        Binding(
            "w",
            "what_if",
            "What if",
            id="supervisor.what_if",
            tooltip="Try a policy file on past conversations against the policy in force",
        ),
    ]

    def __init__(self) -> None:
        super().__init__()
        self.metrics: dict[str, Any] = {}
        self.shown: dict[int, tuple[str, ...]] = {}
        self._agents_shown: list[tuple[str, ...]] = []
        self._widths: dict[str, int] = {}
        self._agent_widths: dict[str, int] = {}

    @property
    def tandem(self) -> TandemApp:
        return self.app  # type: ignore[return-value]

    def compose(self) -> ComposeResult:
        yield Static("supervisor view · loading…", id="sup-header", markup=False)
        yield LiveReport(self.tandem.backend, self.tandem.policy.sla_s, id="sup-live")
        with Horizontal(id="sup-body"):
            with Vertical(id="sup-queue"):
                yield Static(
                    "Queue and conversations with people", classes="sup-title", markup=False
                )
                yield DataTable(id="queue-table", cursor_type="row", zebra_stripes=True)
            with Vertical(id="sup-agents"):
                yield Static("Agents", classes="sup-title", markup=False)
                yield DataTable(id="agents-table", cursor_type="row")
                yield DraftMetricsPanel(self.tandem.backend, id="sup-drafts")
        yield Footer()

    def on_mount(self) -> None:
        # The columns are added with widths fitted to the values (rows_changed, _show_agents).
        table = self.query_one("#queue-table", DataTable)
        table.focus()
        self.call_after_refresh(self._refit)  # once laid out, at the table's own width
        self.rows_changed(())
        self.reader_metrics_now()
        self.set_interval(1.0, lambda: self.rows_changed(()))

    def reader_metrics_now(self) -> None:
        self.tandem.reader.poke()

    def on_resize(self) -> None:
        # Refit once the new layout has given the tables their sizes.
        self.call_after_refresh(self._refit)

    def _refit(self) -> None:
        self.rows_changed(())
        if self.metrics:
            self._show_agents(self.metrics)

    # --- data ---------------------------------------------------------------------------

    def rows_changed(self, _rows: tuple[dict[str, Any], ...]) -> None:
        """Diff the queue table against the app's rows (by conversation id)."""
        table = self.query_one("#queue-table", DataTable)
        sla = self.tandem.policy.sla_s
        at = time.time()
        wanted = sorted(
            (r for r in self.tandem.rows.values() if r["state"] in ("waiting", "human")),
            key=queue_order,
        )
        widths = self._queue_widths(table, wanted, sla, at)
        if widths != self._widths:
            self._widths = widths
            self._rebuild(table, wanted, at)
            self._update_header()
            return
        wanted_ids = {r["id"] for r in wanted}
        for cid in [c for c in self.shown if c not in wanted_ids]:
            try:
                table.remove_row(str(cid))
            except RowDoesNotExist:
                pass
            del self.shown[cid]
        added = False
        for r in wanted:
            cells = self._cells(r, at)
            plain = tuple(c.plain for c in cells)
            old = self.shown.get(r["id"])
            if old is None:
                table.add_row(*cells, key=str(r["id"]))
                added = True
            elif old != plain:
                for col, cell, before, now_ in zip(COLUMNS, cells, old, plain, strict=True):
                    if before != now_:
                        try:
                            table.update_cell(str(r["id"]), col, cell)
                        except CellDoesNotExist:
                            pass
            self.shown[r["id"]] = plain
        if added or len(wanted) > 1:
            self._resort(table, {str(r["id"]): i for i, r in enumerate(wanted)})
        self._update_header()

    def _cells(self, row: dict[str, Any], at: float) -> tuple[Text, ...]:
        cells = queue_cells(row, self.tandem.policy.sla_s, at, self._widths["why"])
        return fitted(cells, COLUMNS, self._widths)

    def _queue_widths(
        self,
        table: DataTable[Any],
        wanted: list[dict[str, Any]],
        sla: Mapping[str, float],
        at: float,
    ) -> dict[str, int]:
        """Every column as wide as its values, all within the table's width (before the first
        layout, when it has none, the values' own widths)."""
        full = [tuple(c.plain for c in queue_cells(r, sla, at)) for r in wanted]
        avail = table.size.width - SCROLLBAR if table.size.width else None
        return fit_widths(COLUMNS, full, avail, QUEUE_SHRINK, {"wait": WAIT_CELLS})

    def _rebuild(self, table: DataTable[Any], wanted: list[dict[str, Any]], at: float) -> None:
        """The columns at new widths (a longer name came, or the screen changed size)."""
        selected = self.selected_id()
        table.clear(columns=True)
        for name in COLUMNS:
            table.add_column(name, key=name, width=self._widths[name])
        self.shown.clear()
        for r in wanted:
            cells = self._cells(r, at)
            table.add_row(*cells, key=str(r["id"]))
            self.shown[r["id"]] = tuple(c.plain for c in cells)
        ids = [r["id"] for r in wanted]
        if selected in ids:
            table.move_cursor(row=ids.index(selected))

    def _resort(self, table: DataTable[Any], order: dict[str, int]) -> None:
        """Rebuild the rows in need order, only when the order changed (rare: a new wait)."""
        current = [
            table.coordinate_to_cell_key(Coordinate(i, 0))[0].value for i in range(table.row_count)
        ]
        if current == sorted(order, key=order.__getitem__):
            return
        selected = self.selected_id()
        table.clear()
        self.shown.clear()
        at = time.time()
        for key in sorted(order, key=order.__getitem__):
            r = self.tandem.rows[int(key)]
            cells = self._cells(r, at)
            table.add_row(*cells, key=key)
            self.shown[int(key)] = tuple(c.plain for c in cells)
        if selected is not None and str(selected) in order:
            table.move_cursor(row=order[str(selected)])

    def metrics_changed(self, metrics: dict[str, Any]) -> None:
        self.metrics = metrics
        self._update_header()
        self._show_agents(metrics)

    def _show_agents(self, metrics: dict[str, Any]) -> None:
        """The agents table, its panel as wide as the values need (at most a share of the
        screen: then names, holdings and roles give up cells, marked "…")."""
        at = time.time()
        rows: list[tuple[Text, ...]] = [
            (
                Text(safe_text(a["name"], one_line=True)),
                Text(a["role"]),
                Text(seen_words(a.get("presence"), a.get("last_seen_at"), at)),
                Text(holds_words(a["holding"])),
                # Abusive messages in front of them today (revealed, or masked in theirs).
                Text(str(a.get("abuse_today") or 0), style="bold" if a.get("abuse_today") else ""),
            )
            for a in metrics.get("agents", [])
        ]
        full = [tuple(c.plain for c in r) for r in rows]

        def width(avail: int | None) -> int:  # and the panel's left border
            widths = fit_widths(AGENT_COLUMNS, full, avail, AGENTS_SHRINK)
            return sum(w + 2 * PAD for w in widths.values()) + 1

        wanted, least = width(None), width(0)  # least: every column shrunk to its floor
        screen = self.size.width
        share = max(least, int(screen * AGENTS_MAX_SHARE))
        panel = max(AGENTS_MIN, min(wanted, share)) if screen else wanted
        widths = fit_widths(AGENT_COLUMNS, full, panel - 1, AGENTS_SHRINK)
        rows = [fitted(r, AGENT_COLUMNS, widths) for r in rows]
        plain = [tuple(c.plain for c in r) for r in rows]
        if plain == self._agents_shown and widths == self._agent_widths:
            return
        self._agents_shown = plain
        self.query_one("#sup-agents").styles.width = panel
        agents = self.query_one("#agents-table", DataTable)
        if widths != self._agent_widths:
            self._agent_widths = widths
            agents.clear(columns=True)
            for name in AGENT_COLUMNS:
                agents.add_column(name, key=name, width=widths[name])
        else:
            agents.clear()
        for a, row in zip(metrics.get("agents", []), rows, strict=True):
            agents.add_row(*row, key=a["name"])

    def _update_header(self) -> None:
        m = self.metrics
        if not m:
            return
        states = m["states"]
        head = Text(no_wrap=True, overflow="ellipsis")
        head.append(f"queue {m['queue']}", style="bold")
        head.append(f" · oldest wait {elapsed(m['oldest_wait'])}")
        head.append(f" · over SLA {m['breaching']}:", style="bold red" if m["breaching"] else "")
        # Per level, most urgent first, each against its own target: "urgent 1 (1m 00s)".
        by_level, targets = m.get("breaching_by_level", {}), m.get("sla_s", {})
        for level in reversed(LEVELS):
            if level in targets:
                n = by_level.get(level, 0)
                head.append(f" {level} {n}", style="bold red" if n else "")
                head.append(f" ({elapsed(targets[level])})", style="dim")
        head.append("\n")
        head.append(
            f"bot {states['bot']} · with people {states['human']} · resolved {states['resolved']}"
            f" · agents {len(m['agents'])}",
            style="dim",
        )
        self.query_one("#sup-header", Static).update(head)

    # --- actions ------------------------------------------------------------------------

    def selected_id(self) -> int | None:
        table = self.query_one("#queue-table", DataTable)
        if table.row_count == 0:
            return None
        try:
            key, _ = table.coordinate_to_cell_key(table.cursor_coordinate)
        except CellDoesNotExist:
            return None
        return int(key.value) if key.value else None

    def _move(self, move: str, cid: int, fn: Callable[[Backend], object], ok: str) -> None:
        # Off the event loop (console.ui.writer); the app says how it went.
        self.tandem.move(move, cid, fn, ok, reply_to=self)

    def _ask_agent(self, question: str, then: Callable[[str], object]) -> None:
        names = [
            a["name"] for a in self.metrics.get("agents", []) if a["name"] != self.tandem.agent
        ]
        hint = "agents: " + ", ".join(names[:12]) if names else ""

        def done(answer: str | None) -> None:
            if answer:
                then(answer)

        self.app.push_screen(PromptScreen(question, hint=hint, placeholder="agent name"), done)

    def action_back(self) -> None:
        self.dismiss()

    def action_open(self) -> None:
        cid = self.selected_id()
        if cid is not None:
            self.tandem.open_conversation(cid)

    def action_assign(self) -> None:
        cid = self.selected_id()
        if cid is None:
            return
        self._ask_agent(
            f"Assign #{cid} to which agent?",
            lambda name: self._move(
                "assign",
                cid,
                lambda b: b.assign(cid, name),
                f"#{cid} assigned to {name}",
            ),
        )

    def action_transfer(self) -> None:
        cid = self.selected_id()
        if cid is None:
            return
        self._ask_agent(
            f"Transfer #{cid} to which agent?",
            lambda name: self._transfer_with_summary(cid, name),
        )

    @work(thread=True, group="transfer-summary", exit_on_error=False)
    def _transfer_with_summary(self, cid: int, name: str) -> None:
        """The hand-over summary goes with the conversation: written here, on this thread
        (the LLM's when configured, within its timeout; a server writes its own), stored with
        the transfer in one transaction by the writer."""
        summary = None
        try:
            llm = None
            if self.tandem.llm is not None:
                from console.llm import LLM

                llm = LLM(self.tandem.llm.config)  # its own client, for this thread's loop
            summary = self.tandem.backend.transfer_summary(cid, name, llm)
        except StoreError:
            pass  # the transfer itself says what is wrong; it goes without a summary
        except Exception as exc:  # the summary is a courtesy; the transfer is not
            self.app.call_from_thread(
                self.notify,
                f"#{cid}: no hand-over summary ({type(exc).__name__}); transferring without",
                severity="warning",
                markup=False,
            )
        self.app.call_from_thread(
            self._move,
            "transfer",
            cid,
            lambda b: b.transfer(cid, name, summary),
            f"#{cid} transferred to {name}" + (" with the hand-over summary" if summary else ""),
        )

    def action_release(self) -> None:
        cid = self.selected_id()
        if cid is not None:
            self._move(
                "release",
                cid,
                lambda b: b.release(cid),
                f"#{cid} released to the bot",
            )

    def action_take_over(self) -> None:
        cid = self.selected_id()
        if cid is not None:
            self.tandem.take_over(cid, reply_to=self)

    def action_hand_back(self) -> None:
        cid = self.selected_id()
        if cid is not None:
            self._move(
                "hand_back",
                cid,
                lambda b: b.hand_back(cid),
                f"#{cid} handed back to the bot",
            )

    def action_resolve(self) -> None:
        cid = self.selected_id()
        if cid is not None:
            self._move("resolve", cid, lambda b: b.resolve(cid), f"#{cid} resolved")

    def action_final_notice(self) -> None:
        cid = self.selected_id()
        if cid is not None:
            self._move(
                "final_notice",
                cid,
                lambda b: b.final_notice(cid),
                f"#{cid}: final notice sent, closed",
            )

    def action_note(self) -> None:
        cid = self.selected_id()
        if cid is None:
            return

        def done(text: str | None) -> None:
            if text:
                self._move(
                    "note",
                    cid,
                    lambda b: b.note(cid, text),
                    f"note added to #{cid}",
                )

        self.app.push_screen(
            PromptScreen(f"Internal note on #{cid}", placeholder="only agents see this"), done
        )

    def action_what_if(self) -> None:
        from console.ui.screens.whatif import WhatIfScreen

        self.app.push_screen(WhatIfScreen())

    def palette_commands(self) -> list[tuple[str, str, Callable[[], object]]]:
        return [
            ("Open conversation", "the selected row's transcript", self.action_open),
            (
                "Assign to agent",
                "give the selected waiting conversation to an agent",
                self.action_assign,
            ),
            (
                "Transfer to agent",
                "move the selected conversation to another agent",
                self.action_transfer,
            ),
            (
                "Release to the bot",
                "send the selected waiting conversation back to the bot",
                self.action_release,
            ),
            ("Take over", "claim the selected conversation yourself", self.action_take_over),
            (
                "Hand back to the bot",
                "return the selected conversation to the bot",
                self.action_hand_back,
            ),
            ("Resolve", "close the selected conversation", self.action_resolve),
            ("Add internal note", "on the selected conversation", self.action_note),
            (
                "Final notice and close",
                "an abusive customer, warned before: the fixed final notice, then resolve",
                self.action_final_notice,
            ),
            (
                "Draft statistics",
                "acceptance, edit distance, time to first text by engine",
                lambda: self.app.push_screen(DraftMetricsScreen(self.tandem.backend)),
            ),
            (
                "What if: try a policy",
                "replay past conversations under a policy file, side by side with the one in force",
                self.action_what_if,
            ),
            ("Back to the wall", "", self.action_back),
        ]
