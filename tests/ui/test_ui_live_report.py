"""The supervisor screen's live figures and charts (issue 16, point 2).

A hand-built history of the last hour; the screen must show the figures ``tandem report``
computes for the same store and the charts ``supervisor_series`` draws, with no value cut off.
"""

from __future__ import annotations

import time
from pathlib import Path

from rich.text import Text
from textual.widgets import DataTable, Sparkline
from ui_support import screen_up, wait_until

from console.policy import PolicySettings
from console.ui.app import TandemApp
from console.ui.screens.supervisor import SupervisorScreen
from console.ui.widgets.live_report import LiveReport, report_rows
from store import Store, lifecycle
from store.report import support_report


def _history(db_path: Path) -> None:
    now = time.time()
    with Store(db_path) as s:
        for i, (level, claim_after) in enumerate(
            [("urgent", 30.0), ("urgent", 200.0), ("empathy", 100.0), ("watch", None)]
        ):
            at = now - 3000 + i * 600
            cid = lifecycle.open_conversation(s, f"Customer {i}", at=at)
            lifecycle.add_customer_message(s, cid, "I need a person", at=at)
            lifecycle.escalate(s, cid, reasons=["human_request"], level=level, at=at + 1)
            if claim_after is not None:
                lifecycle.claim(s, cid, "ana", at=at + 1 + claim_after)
                lifecycle.agent_reply(s, cid, "ana", "Hello, I am Ana", at=at + 2 + claim_after)
        bot = lifecycle.open_conversation(s, "Solo", at=now - 100)
        lifecycle.add_customer_message(s, bot, "opening hours?", at=now - 100)


def _cells(table: DataTable[object]) -> list[tuple[str, str]]:
    out = []
    for i in range(table.row_count):
        row = table.get_row_at(i)
        out.append(tuple(c.plain if isinstance(c, Text) else str(c) for c in row))
    return out  # type: ignore[return-value]


async def test_the_supervisor_screen_shows_the_report_live(db_path: Path) -> None:
    _history(db_path)
    app = TandemApp(db_path, "lead", supervisor=True, interval=0.05)
    async with app.run_test(size=(160, 48)) as pilot:
        await wait_until(pilot, lambda: len(app.rows) == 5, what="rows")
        await pilot.press("s")
        sup = await screen_up(pilot, SupervisorScreen)
        live = sup.query_one(LiveReport)
        await wait_until(pilot, lambda: live.report is not None, what="the figures")
        assert live.report is not None and live.series is not None
        with Store(db_path) as s:
            expected = support_report(
                s,
                since=live.report["window"]["since"],
                until=live.report["window"]["until"],
                sla_s=PolicySettings().sla_s,
            )
        table = sup.query_one("#live-figures", DataTable)
        shown = dict(_cells(table))
        assert shown == dict(report_rows(expected))
        assert shown["conversations"] == "5"
        assert shown["time to a person"].startswith("p50 1m 40s · p90 3m 20s (3)")
        assert shown["· urgent ≤1m 00s"] == "50% of 2"
        assert shown["abandonment"] == "0% (0 of 4)"
        # The charts draw the series: four escalations in the last hour, the watch still waiting.
        escalations = sup.query_one("#chart-escalations", Sparkline).data
        assert escalations is not None and sum(escalations) == 4
        queue = sup.query_one("#chart-queue", Sparkline).data
        assert queue is not None and queue[-1] == 1
        breaches = sup.query_one("#chart-breaches", Sparkline).data
        # The urgent one claimed after 200 s, and the watch one waiting for 20 minutes.
        assert breaches is not None and sum(breaches) == 2
        # No figure is cut: the table is as wide as its widest value, and fits on screen.
        await pilot.pause()
        widest = max(len(label) for label, _ in shown.items())
        assert table.virtual_size.width <= table.content_region.width
        assert table.columns["label"].get_render_width(table) >= widest
        assert table.columns["value"].get_render_width(table) >= max(len(v) for v in shown.values())
