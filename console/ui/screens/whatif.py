"""What-if: pick a policy file, replay past conversations under it, see both side by side.

The same comparison as ``tandem whatif`` (``console.whatif.compare``), against the policy the
console runs with: the figures of both policies, the reasons, the load per hour against the
agents at work then, and the conversations that change (enter opens one's transcript). The
replay runs on a worker thread with its own store connection, so keys and the wall's feed never
wait for it; a progress bar follows it, and leaving the screen or picking another file stops it.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from rich.text import Text
from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical
from textual.screen import Screen
from textual.suggester import Suggester
from textual.widgets import DataTable, Footer, Input, OptionList, ProgressBar, Select, Static
from textual.widgets.option_list import Option
from textual.worker import get_current_worker

from console.backend import StoreError
from console.policy import EXAMPLES, PolicySettings, load_settings
from console.ui.commands import ScreenCommands
from console.ui.model import reason_words, safe_text
from console.ui.widgets.tile import BADGE_STYLE

if TYPE_CHECKING:
    from console.ui.app import TandemApp

# The windows offered, as ``tandem whatif --since`` takes them (label, seconds back from now).
WINDOWS: tuple[tuple[str, int], ...] = (
    ("last 24 h", 86_400),
    ("last 7 days", 7 * 86_400),
    ("last 30 days", 30 * 86_400),
    ("last 90 days", 90 * 86_400),
)
DEFAULT_WINDOW = 7 * 86_400
SAMPLE = 200  # changed conversations listed (the table scrolls; the command lists 25)
MAX_FILES = 60  # policy files listed; more than this in one place is not a policies folder


class _Stopped(Exception):
    """The screen asked the replay to stop (another file was picked, or it closed)."""


class PathSuggester(Suggester):
    """Completes a typed path from the file system: directories, and ``.toml`` files."""

    def __init__(self) -> None:
        # Files come and go while the screen is open: no cache.
        super().__init__(use_cache=False, case_sensitive=True)

    async def get_suggestion(self, value: str) -> str | None:
        return complete_path(value)


def complete_path(value: str) -> str | None:
    """The first directory or ``.toml`` file that ``value`` is the start of, as typed."""
    if not value:
        return None
    typed = Path(value).expanduser()
    folder, start = (typed, "") if value.endswith(("/", "\\")) else (typed.parent, typed.name)
    try:
        names = sorted(p.name for p in folder.iterdir() if p.name.startswith(start))
    except OSError:
        return None
    for name in names:
        candidate = folder / name
        if candidate.is_dir() and not name.startswith("."):
            return value[: len(value) - len(start)] + name + "/"
        if name.endswith(".toml"):
            return value[: len(value) - len(start)] + name
    return None


def policy_files(places: Iterable[Path], limit: int = MAX_FILES) -> list[Path]:
    """Policy files in ``places`` (folders): ``*.toml`` that load as a policy, sorted, once each."""
    found: dict[Path, None] = {}
    for place in places:
        try:
            candidates = sorted(place.glob("*.toml"))
        except OSError:
            continue
        for path in candidates:
            if len(found) >= limit:
                return list(found)
            try:
                load_settings(path)
            except (ValueError, OSError):
                continue  # pyproject.toml, a lexicon, a broken draft: not offered
            found.setdefault(path.resolve(), None)
    return list(found)


def shown_path(path: Path) -> Path:
    """``path`` relative to the working directory when it is under it (shorter to read)."""
    try:
        return path.relative_to(Path.cwd())
    except ValueError:
        return path


def _path_words(path: Path | None) -> str:
    # A file name is anyone's text: no terminal escapes, no line breaks.
    return safe_text(str(path), one_line=True)


def _count(value: Any) -> str:
    return "—" if value is None else str(value)


def _rate(value: float | None) -> str:
    return "—" if value is None else f"{value:.1%}"


def _turn(value: float | None) -> str:
    return "—" if value is None else f"{value:.1f}"


def _change(before: float | None, after: float | None, *, fmt: str = "{:+d}") -> Text:
    if before is None or after is None or before == after:
        return Text("")
    delta = after - before
    text = fmt.format(int(delta) if fmt == "{:+d}" else delta)
    return Text(text, style="bold")


def figure_rows(result: dict[str, Any]) -> list[tuple[str, str, str, Text]]:
    """The side-by-side table: figure, current, proposed, change."""
    cur, new = result["current"], result["proposed"]
    rows: list[tuple[str, str, str, Text]] = [
        (
            "conversations",
            str(cur["conversations"]),
            str(new["conversations"]),
            _change(cur["conversations"], new["conversations"]),
        ),
        (
            "reach a person",
            str(cur["escalated"]),
            str(new["escalated"]),
            _change(cur["escalated"], new["escalated"]),
        ),
        ("↳ really escalated", _count(cur.get("actually_escalated")), "", Text("")),
        (
            "escalation rate",
            _rate(cur["escalation_rate"]),
            _rate(new["escalation_rate"]),
            Text(""),
        ),
        (
            "mean turn of hand-off",
            _turn(cur["mean_turn"]),
            _turn(new["mean_turn"]),
            _change(cur["mean_turn"], new["mean_turn"], fmt="{:+.2f}"),
        ),
        (
            "SLA breaches (model)",
            str(cur["sla_breaches"]),
            str(new["sla_breaches"]),
            _change(cur["sla_breaches"], new["sla_breaches"]),
        ),
    ]
    levels = list(dict.fromkeys([*cur["sla_breaches_by_level"], *new["sla_breaches_by_level"]]))
    for level in levels:
        a = cur["sla_breaches_by_level"].get(level, 0)
        b = new["sla_breaches_by_level"].get(level, 0)
        rows.append((f"↳ breaches {level}", str(a), str(b), _change(a, b)))
    return rows


def outcome_words(outcome: dict[str, Any]) -> Text:
    """``turn 2 empathy`` with the level's badge colour, or ``stays with the bot``."""
    if not outcome["escalated"]:
        return Text("stays with the bot", style="dim")
    out = Text(f"turn {outcome['turn']} ")
    out.append(f" {outcome['level']} ", style=BADGE_STYLE.get(outcome["level"], ""))
    return out


def difference_words(result: dict[str, Any]) -> str:
    d = result["difference"]
    return (
        f"{d['newly_escalated']} more would reach a person, {d['no_longer_escalated']} fewer; "
        f"{d['earlier']} earlier, {d['later']} later; at a higher level {d['level_raised']}, "
        f"lower {d['level_lowered']}; SLA breaches {d['sla_breaches']:+d}"
    )


class WhatIfScreen(Screen[None]):
    """A proposed policy against the one in force, replayed on the store's past conversations."""

    CSS_PATH = "whatif.tcss"
    COMMANDS = {ScreenCommands}
    AUTO_FOCUS = "#wi-files"

    BINDINGS = [
        Binding("escape", "back", "Back", id="whatif.back"),
        Binding(
            "f3",
            "focus_path",
            "Policy file",
            id="whatif.path",
            tooltip="Type a policy file's path (→ accepts the completion)",
        ),
        Binding("f5", "run", "Run again", id="whatif.run"),
        Binding(
            "f6",
            "focus_changed",
            "Changed",
            id="whatif.changed",
            tooltip="The conversations that change: enter opens the transcript",
        ),
    ]

    def __init__(self, places: Iterable[Path] | None = None) -> None:
        super().__init__()
        self._places = list(places) if places is not None else None
        self.policy_path: Path | None = None
        self.window_s = DEFAULT_WINDOW
        self.result: dict[str, Any] | None = None
        """The last comparison shown (``console.whatif.compare``'s dict)."""
        self.running = False

    @property
    def tandem(self) -> TandemApp:
        return self.app  # type: ignore[return-value]

    def compose(self) -> ComposeResult:
        in_force = self.tandem.policy_path
        yield Static(
            "What if · policy in force: "
            + (_path_words(in_force) if in_force else "the built-in policy")
            + " · pick a proposed policy file",
            id="wi-header",
            markup=False,
        )
        with Horizontal(id="wi-pick"):
            yield Input(
                placeholder="policy file to try (→ completes the path, enter runs)",
                suggester=PathSuggester(),
                id="wi-path",
            )
            yield Select(
                [(label, seconds) for label, seconds in WINDOWS],
                value=DEFAULT_WINDOW,
                allow_blank=False,
                id="wi-window",
            )
        with Horizontal(id="wi-body"):
            with Vertical(id="wi-left"):
                yield Static("Policy files", classes="wi-title", markup=False)
                yield OptionList(id="wi-files")
            with Vertical(id="wi-right"):
                with Horizontal(id="wi-run"):
                    yield ProgressBar(id="wi-progress", show_eta=False)
                    yield Static("", id="wi-status", markup=False)
                with Horizontal(id="wi-top"):
                    yield DataTable(id="wi-sides", cursor_type="none", zebra_stripes=True)
                    yield DataTable(id="wi-reasons", cursor_type="none")
                yield Static("", id="wi-summary", markup=False)
                with Horizontal(id="wi-bottom"):
                    with Vertical(id="wi-changed-box"):
                        yield Static(
                            "Conversations that change (enter opens the transcript)",
                            classes="wi-title",
                            markup=False,
                        )
                        yield DataTable(id="wi-changed", cursor_type="row", zebra_stripes=True)
                    with Vertical(id="wi-hours-box"):
                        yield Static("Escalations per hour vs agents at work", classes="wi-title")
                        yield DataTable(id="wi-hours", cursor_type="row")
        yield Footer()

    def on_mount(self) -> None:
        sides = self.query_one("#wi-sides", DataTable)
        for name in ("figure", "current", "proposed", "change"):
            sides.add_column(name, key=name)
        reasons = self.query_one("#wi-reasons", DataTable)
        for name in ("reason", "current", "proposed"):
            reasons.add_column(name, key=name)
        changed = self.query_one("#wi-changed", DataTable)
        for name in ("id", "turn", "current", "proposed", "reasons"):
            changed.add_column(name, key=name)
        hours = self.query_one("#wi-hours", DataTable)
        for name in ("hour", "agents", "current", "proposed"):
            hours.add_column(name, key=name)
        self.query_one("#wi-progress", ProgressBar).display = False
        self._status(
            Text("pick a policy file on the left (enter), or type a path (f3)", style="dim")
        )
        self._list_files()

    def places(self) -> list[Path]:
        """Where policy files are looked for: the folder of the one in force, ``policies/``
        and the working directory, then the examples shipped with Tandem (the screen's
        ``places`` when given)."""
        if self._places is not None:
            return self._places
        out: list[Path] = []
        if self.tandem.policy_path is not None:
            out.append(self.tandem.policy_path.parent)
        cwd = Path.cwd()
        out += [cwd / "policies", cwd, EXAMPLES]
        return out

    @work(thread=True, exclusive=True, group="whatif-files")
    def _list_files(self) -> None:
        files = policy_files(self.places())
        if not get_current_worker().is_cancelled:  # a newer listing replaced this one
            self.app.call_from_thread(self._show_files, files)

    def _show_files(self, files: list[Path]) -> None:
        options = self.query_one("#wi-files", OptionList)
        options.clear_options()
        in_force = self.tandem.policy_path
        in_force = in_force.resolve() if in_force is not None else None
        examples = EXAMPLES.resolve()
        for path in files:
            example = path.parent == examples and path != in_force
            label = Text(_path_words(Path(path.name) if example else shown_path(path)))
            if path == in_force:
                label.append("  in force", style="dim italic")
            elif example:
                label.append("  example", style="dim italic")
            options.add_option(Option(label, id=str(path)))
        if not files:
            options.add_option(
                Option(Text("no policy files here: type a path above", style="dim"), disabled=True)
            )

    # --- running ------------------------------------------------------------------------

    @on(OptionList.OptionSelected, "#wi-files")
    def _file_picked(self, event: OptionList.OptionSelected) -> None:
        if event.option.id is None:
            return
        path = shown_path(Path(event.option.id))
        self.query_one("#wi-path", Input).value = str(path)
        self.pick(path)

    @on(Input.Submitted, "#wi-path")
    def _path_submitted(self, event: Input.Submitted) -> None:
        value = event.value.strip()
        if value:
            self.pick(Path(value).expanduser())

    @on(Select.Changed, "#wi-window")
    def _window_changed(self, event: Select.Changed) -> None:
        if isinstance(event.value, int) and event.value != self.window_s:
            self.window_s = event.value
            if self.policy_path is not None:
                self.action_run()

    def pick(self, path: Path) -> None:
        """Compare ``path`` against the policy in force (a bad file is said in one line)."""
        try:
            proposed = load_settings(path)
        except ValueError as exc:
            self._status(Text(str(exc), style="bold red"))
            return
        self.policy_path = path
        self._start(proposed)

    def action_run(self) -> None:
        if self.policy_path is not None:
            self.pick(self.policy_path)

    def _start(self, proposed: PolicySettings) -> None:
        self.running = True
        bar = self.query_one("#wi-progress", ProgressBar)
        bar.update(total=None, progress=0)
        bar.display = True
        self._status(Text(f"replaying under {_path_words(self.policy_path)} …"))
        self._replay(self.tandem.policy, proposed, self.window_s)

    @work(thread=True, exclusive=True, group="whatif", exit_on_error=False)
    def _replay(self, current: PolicySettings, proposed: PolicySettings, window_s: int) -> None:
        worker = get_current_worker()
        app = self.app

        def tick(done: int, total: int) -> None:
            if worker.is_cancelled:
                raise _Stopped
            app.call_from_thread(self._progress, done, total)

        until = time.time()
        try:
            result = self.tandem.backend.whatif(
                current,
                proposed,
                since=until - window_s,
                until=until,
                progress=tick,
                sample=SAMPLE,
            )
        except _Stopped:
            return
        except StoreError as exc:
            if not worker.is_cancelled:
                app.call_from_thread(self._failed, str(exc))
            return
        except Exception as exc:  # a bug must not leave the bar running for ever: say it
            if not worker.is_cancelled:
                app.call_from_thread(self._failed, f"{type(exc).__name__}: {exc}"[:200])
            return
        if not worker.is_cancelled:
            app.call_from_thread(self._show, result)

    def _progress(self, done: int, total: int) -> None:
        self.query_one("#wi-progress", ProgressBar).update(total=max(total, 1), progress=done)

    def _failed(self, error: str) -> None:
        self.running = False
        self.query_one("#wi-progress", ProgressBar).display = False
        self._status(
            Text(f"the replay stopped: {safe_text(error, one_line=True)}", style="bold red")
        )

    def _status(self, text: Text) -> None:
        self.query_one("#wi-status", Static).update(text)

    # --- the comparison -----------------------------------------------------------------

    def _show(self, result: dict[str, Any]) -> None:
        self.result = result
        self.running = False
        self.query_one("#wi-progress", ProgressBar).display = False
        since = datetime.fromtimestamp(result["window"]["since"]).strftime("%Y-%m-%d %H:%M")
        shown = _path_words(self.policy_path)
        self._status(Text(f"{shown} · conversations opened since {since}", style="bold"))
        sides = self.query_one("#wi-sides", DataTable)
        sides.clear()
        for label, a, b, change in figure_rows(result):
            sides.add_row(Text(label), Text(a), Text(b), change)
        reasons = self.query_one("#wi-reasons", DataTable)
        reasons.clear()
        cur, new = result["current"]["by_reason"], result["proposed"]["by_reason"]
        for reason in sorted(set(cur) | set(new), key=lambda r: (-new.get(r, 0), r)):
            a, b = cur.get(reason, 0), new.get(reason, 0)
            words = reason_words([reason])
            reasons.add_row(
                Text(words[0] if words else reason),
                Text(str(a)),
                Text(str(b), style="bold" if a != b else ""),
            )
        self.query_one("#wi-summary", Static).update(Text(difference_words(result)))
        changed = self.query_one("#wi-changed", DataTable)
        changed.clear()
        for c in result["changed"]:
            why = c["proposed"]["reasons"] or c["current"]["reasons"]
            changed.add_row(
                Text(f"#{c['id']}"),
                Text(_count(c["first_differing_turn"])),
                outcome_words(c["current"]),
                outcome_words(c["proposed"]),
                Text(", ".join(reason_words(why))),
                key=c["id"],
            )
        hours = self.query_one("#wi-hours", DataTable)
        hours.clear()
        per_agent = 60.0 / max(self.tandem.policy.minutes_per_customer, 1e-9)
        for h in result["load_by_hour"]:
            # More escalations in the hour than its agents could take: the queue grows.
            over = h["proposed"] > h["agents"] * per_agent
            hours.add_row(
                Text(datetime.fromtimestamp(h["hour"]).strftime("%m-%d %H:00")),
                Text(str(h["agents"])),
                Text(str(h["current"])),
                Text(
                    str(h["proposed"]),
                    style="bold white on red"
                    if over
                    else ("bold" if h["current"] != h["proposed"] else ""),
                ),
            )
        if result["changed"]:
            changed.move_cursor(row=0)

    @on(DataTable.RowSelected, "#wi-changed")
    def _open_changed(self, event: DataTable.RowSelected) -> None:
        cid = event.row_key.value
        if cid and cid.isdigit():
            self.tandem.open_conversation(int(cid))

    # --- actions ------------------------------------------------------------------------

    def action_back(self) -> None:
        self.workers.cancel_group(self, "whatif")
        self.dismiss()

    def action_focus_path(self) -> None:
        self.query_one("#wi-path", Input).focus()

    def action_focus_changed(self) -> None:
        self.query_one("#wi-changed", DataTable).focus()

    def on_unmount(self) -> None:
        self.workers.cancel_group(self, "whatif")

    def palette_commands(self) -> list[tuple[str, str, Callable[[], object]]]:
        return [
            ("Type a policy file", "a path, completed as you type", self.action_focus_path),
            ("Run the comparison again", "the same file, read again", self.action_run),
            ("Conversations that change", "enter opens a transcript", self.action_focus_changed),
            ("Back to the supervisor view", "", self.action_back),
        ]
