"""How the drafts are doing: acceptance, edits, time to first text per engine, time lost to a
failed LLM, and drafts that stopped short.

:class:`DraftMetricsPanel` is a small self-refreshing panel (mount it in any screen with the
store path); :class:`DraftMetricsScreen` shows the same panel as a modal, for a key or a
command palette entry. Both read ``store.drafts.draft_metrics`` on a worker thread with a
connection of their own, so a refresh never blocks the UI.

Mounting, e.g. in the supervisor view::

    from console.ui.widgets.draft_metrics import DraftMetricsPanel
    yield DraftMetricsPanel(self.app.backend, id="draft-metrics")

or from anywhere::

    self.app.push_screen(DraftMetricsScreen(self.app.backend))
"""

from __future__ import annotations

import time

from rich.text import Text
from textual import work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Vertical
from textual.screen import ModalScreen
from textual.widgets import Static

from console.backend import Backend, DraftMetrics, StoreError

REFRESH_SECONDS = 5.0


def _pct(value: float | None) -> str:
    return "–" if value is None else f"{value * 100:.0f}%"


def _ms(value: float | None) -> str:
    if value is None:
        return "–"
    return f"{value:.0f} ms" if value >= 10 else f"{value:.1f} ms"


def metrics_text(m: DraftMetrics, *, title: str = "Drafts") -> Text:
    """The panel's content as plain ``Text`` (no markup)."""
    out = Text()
    out.append(f"{title}\n", style="bold underline")
    if m.total == 0:
        out.append("no drafts yet\n", style="dim")
        return out
    out.append(f"{m.total} written · ")
    out.append(" · ".join(f"{k} {v}" for k, v in m.by_outcome.items() if v) + "\n", style="dim")
    out.append("sent from a draft ")
    out.append(_pct(m.acceptance_rate), style="bold")
    out.append(f" · unchanged {_pct(m.unchanged_rate)}")
    edit = "–" if m.mean_edit_distance is None else f"{m.mean_edit_distance:.0f} chars"
    out.append(f" · mean edit {edit}\n")
    for engine, t in m.first_text_by_engine.items():
        out.append(f"first text, {engine}: ", style="dim")
        out.append(f"p50 {_ms(t.p50_ms)} · p90 {_ms(t.p90_ms)} ({t.drafts})\n")
    if m.llm_lost is not None:
        # Kept apart from the fallback engine's own time: a slow endpoint shows here.
        lost = m.llm_lost
        out.append("waited on a failed LLM: ", style="dim")
        out.append(f"p50 {_ms(lost.p50_ms)} · p90 {_ms(lost.p90_ms)} ({lost.drafts})\n")
    if m.incomplete:
        out.append(f"{m.incomplete} stopped short (cut off or at the token limit)\n", style="dim")
    return out


class DraftMetricsPanel(Static):
    """Drafts metrics for the last ``hours`` (0: all time), refreshed every few seconds.

    Args:
        backend: where the metrics are read (on a worker thread).
        hours: the window; 0 counts every draft ever written.
    """

    DEFAULT_CSS = """
    DraftMetricsPanel {
        height: auto;
        padding: 0 1;
    }
    """

    def __init__(self, backend: Backend, *, hours: float = 24.0, **kw: object) -> None:
        super().__init__("", markup=False, **kw)  # type: ignore[arg-type]
        self.backend = backend
        self.hours = hours

    def on_mount(self) -> None:
        self.refresh_metrics()
        self.set_interval(REFRESH_SECONDS, self.refresh_metrics, name="draft-metrics")

    @work(thread=True, exclusive=True, group="draft-metrics", exit_on_error=False)
    def refresh_metrics(self) -> None:
        """Read the metrics on a worker thread and show them."""
        since = time.time() - self.hours * 3600 if self.hours else None
        try:
            m = self.backend.draft_metrics(since)
        except StoreError as exc:
            self.app.call_from_thread(self.update, Text(f"drafts: {exc}"))
            return
        title = f"Drafts, last {self.hours:g} h" if self.hours else "Drafts"
        self.app.call_from_thread(self.update, metrics_text(m, title=title))


class DraftMetricsScreen(ModalScreen[None]):
    """The drafts panel as a modal; escape closes it."""

    BINDINGS = [Binding("escape", "dismiss", "Close")]
    DEFAULT_CSS = """
    DraftMetricsScreen { align: center middle; }
    DraftMetricsScreen > Vertical { width: 72; height: auto; padding: 1 2; border: thick $accent;
                                    background: $surface; }
    """

    def __init__(self, backend: Backend, *, hours: float = 24.0) -> None:
        super().__init__()
        self.backend = backend
        self.hours = hours

    def compose(self) -> ComposeResult:
        with Vertical():
            yield DraftMetricsPanel(self.backend, hours=self.hours)
            yield Static("escape closes", markup=False, classes="hint")
