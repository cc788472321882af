"""The supervisor's live figures: the report's headline numbers and charts of the last hours.

:class:`LiveReport` reads ``store.report.support_report`` (the last 24 h, the same definitions
as ``tandem report``) and ``store.views.supervisor_series`` (six hours in 10-minute buckets) on
a worker thread with a connection of its own, every few seconds, and shows them: figures in a
table whose columns size to their values (nothing is cut; a narrow screen scrolls it), and
sparklines for escalations, the queue's length and SLA breaches. The charts are read every
5 s, the report every 30 s (see ``FIGURES_SECONDS``).
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from typing import Any

from rich.text import Text
from textual import work
from textual.app import ComposeResult
from textual.containers import Horizontal, Vertical
from textual.widgets import DataTable, Sparkline, Static

from console.backend import Backend, StoreError
from console.policy import LEVELS
from console.ui.model import elapsed

# The charts and the queue move by the second; the day's figures by the minute. The report
# over 24 h is the expensive read (about 1 s on a million messages, `tandem bench report`): a
# supervisor console reads it twice a minute, the charts (tens of ms) every few seconds.
REFRESH_SECONDS = 5.0
FIGURES_SECONDS = 30.0
REPORT_HOURS = 24.0
CHART_HOURS = 6.0
BUCKET_S = 600.0
CHARTS = (
    ("escalations", "escalations per 10 min"),
    ("queue", "queue length (longest in 10 min)"),
    ("breaches", "SLA breaches per 10 min"),
)


def _pct(value: float | None) -> str:
    return "–" if value is None else f"{value * 100:.0f}%"


def _secs(value: float | None) -> str:
    return "–" if value is None else elapsed(value)


def report_rows(report: Mapping[str, Any]) -> list[tuple[str, str]]:
    """The figures the screen shows, as (label, value) in words: every value whole."""
    bot = report["bot"]
    ttp = report["time_to_person"]
    first = report["first_response"]
    abandon = report["abandonment"]
    rows = [
        ("conversations", f"{report['conversations']:,}"),
        ("bot involvement", _pct(bot["involvement"])),
        ("bot resolution", f"{_pct(bot['resolution'])} ({bot['resolved_alone']:,} alone)"),
        ("automation rate", _pct(bot["automation_rate"])),
        (
            "time to a person",
            f"p50 {_secs(ttp['p50_s'])} · p90 {_secs(ttp['p90_s'])} ({ttp['n']:,})",
        ),
        ("first response in SLA", f"{_pct(first['met_share'])} of {first['n']:,}"),
    ]
    targets = report.get("sla_s", {})
    for level in reversed(LEVELS):
        s = first["by_level"].get(level)
        target = f" ≤{elapsed(targets[level])}" if level in targets else ""
        value = f"{_pct(s['met_share'])} of {s['n']:,}" if s else "–"
        rows.append((f"· {level}{target}", value))
    rows.append(
        (
            "abandonment",
            f"{_pct(abandon['rate'])} ({abandon['abandoned']:,} of {abandon['escalations']:,})",
        )
    )
    return rows


def chart_label(title: str, values: list[int]) -> Text:
    """``escalations per 10 min · now 3 · peak 7`` (the sparkline scales to its own range)."""
    label = Text(no_wrap=True, overflow="ellipsis")
    label.append(title, style="bold")
    now_, peak = (values[-1], max(values)) if values else (0, 0)
    label.append(f" · now {now_} · peak {peak}", style="dim")
    return label


class LiveReport(Horizontal):
    """Figures of the last 24 h beside charts of the last 6 h, refreshed every few seconds.

    Args:
        backend: where the figures are read (on a worker thread).
        sla_s: the queue's target per level (the policy's).
    """

    DEFAULT_CSS = """
    LiveReport { height: auto; max-height: 14; }
    LiveReport > DataTable { width: auto; max-width: 60%; height: auto; max-height: 14; }
    LiveReport > Vertical { width: 1fr; height: auto; padding: 0 1; }
    LiveReport .chart-label { height: 1; }
    LiveReport Sparkline { height: 2; width: 36; margin-bottom: 1; }
    LiveReport .live-status { height: auto; color: $text-muted; }
    """

    def __init__(self, backend: Backend, sla_s: Mapping[str, float], **kw: Any) -> None:
        super().__init__(**kw)
        self.backend = backend
        self.sla_s = dict(sla_s)
        self.report: dict[str, Any] | None = None
        self.series: dict[str, Any] | None = None
        self.took_ms = {"figures": 0.0, "charts": 0.0}
        self._figures_at = 0.0

    def compose(self) -> ComposeResult:
        yield DataTable(id="live-figures", cursor_type="none", show_cursor=False)
        with Vertical(id="live-charts"):
            for key, title in CHARTS:
                yield Static(chart_label(title, []), id=f"label-{key}", classes="chart-label")
                yield Sparkline([], id=f"chart-{key}")
            yield Static("loading…", classes="live-status", id="live-status", markup=False)

    def on_mount(self) -> None:
        table = self.query_one("#live-figures", DataTable)
        table.add_column(f"last {REPORT_HOURS:g} h", key="label")
        table.add_column("", key="value")
        self.refresh_figures()
        self.set_interval(REFRESH_SECONDS, self.refresh_figures, name="live-report")

    @work(thread=True, exclusive=True, group="live-report", exit_on_error=False)
    def refresh_figures(self, force: bool = False) -> None:
        """Read the series (and the report, when due) on a worker thread, then show them."""
        at = time.time()
        report = None
        took = dict(self.took_ms)
        try:
            backend = self.backend
            if force or self.report is None or at - self._figures_at >= FIGURES_SECONDS:
                t0 = time.perf_counter()
                report = backend.support_report(
                    since=at - REPORT_HOURS * 3600, until=at, sla_s=self.sla_s
                )
                took["figures"] = (time.perf_counter() - t0) * 1000
                self._figures_at = at
            t0 = time.perf_counter()
            series = backend.supervisor_series(
                since=at - CHART_HOURS * 3600, sla_s=self.sla_s, bucket_s=BUCKET_S, at=at
            )
            took["charts"] = (time.perf_counter() - t0) * 1000
        except StoreError as exc:
            self.app.call_from_thread(self._failed, str(exc))
            return
        self.app.call_from_thread(self.show, report, series, took)

    def _failed(self, error: str) -> None:
        self.query_one("#live-status", Static).update(f"figures: {error}")

    def show(
        self, report: dict[str, Any] | None, series: dict[str, Any], took_ms: dict[str, float]
    ) -> None:
        """Put fresh figures (``None``: keep the last) and charts on screen (on the event loop)."""
        self.series, self.took_ms = series, took_ms
        if report is not None:
            self.report = report
            self._show_figures(report)
        for key, title in CHARTS:
            values = list(series[key])
            self.query_one(f"#chart-{key}", Sparkline).data = values
            self.query_one(f"#label-{key}", Static).update(chart_label(title, values))
        self.query_one("#live-status", Static).update(
            f"charts: last {CHART_HOURS:g} h, a bar per 10 min, read in {took_ms['charts']:.0f} ms"
            f" · figures read in {took_ms['figures']:.0f} ms, every {FIGURES_SECONDS:.0f} s"
        )

    def _show_figures(self, report: dict[str, Any]) -> None:
        table = self.query_one("#live-figures", DataTable)
        rows = report_rows(report)
        if table.row_count != len(rows):
            table.clear()
            for i, (label, value) in enumerate(rows):
                table.add_row(Text(label), Text(value, style="bold"), key=str(i))
        else:
            for i, (_label, value) in enumerate(rows):
                table.update_cell(str(i), "value", Text(value, style="bold"), update_width=True)
