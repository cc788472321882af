"""SLA targets per level on the wall and in the supervisor view (issue 16, point 3).

An urgent report waiting 90 s is over its 1 minute; a "watch" question waiting as long is
well within its 10: only the first is red, on its tile and in the queue, and the header counts
the breach against its level.
"""

from __future__ import annotations

import time
from pathlib import Path

from rich.style import Style
from textual.widgets import DataTable
from ui_support import screen_up, wait_until

from console.policy import PolicySettings, load_settings
from console.ui.app import TandemApp
from console.ui.screens.supervisor import SupervisorScreen
from console.ui.widgets.tile import Tile
from store import Store, lifecycle


def _two_waiting(db_path: Path) -> tuple[int, int]:
    at = time.time() - 90
    with Store(db_path) as s:
        urgent = lifecycle.open_conversation(s, "Una")
        lifecycle.add_customer_message(s, urgent, "someone took money from my card", at=at)
        lifecycle.escalate(s, urgent, reasons=["fraud"], level="urgent", at=at)
        watch = lifecycle.open_conversation(s, "Wes")
        lifecycle.add_customer_message(s, watch, "how do I change my address", at=at)
        lifecycle.escalate(s, watch, reasons=["human_request"], level="watch", at=at)
    return urgent, watch


def _status_style(tile: Tile) -> Style:
    """The style of the status words ("waiting 1m 30s") on the tile's first text line."""
    for seg in tile.render_line(1)._segments:
        if seg.text.startswith("waiting"):
            assert seg.style is not None
            return seg.style
    raise AssertionError("no waiting status on the tile")


def _red(style: Style) -> bool:
    return style.bgcolor is not None and style.bgcolor.name == "red"


def _tile(app: TandemApp, cid: int) -> Tile:
    return next(t for t in app.screen.query(Tile) if t.conversation_id == cid)


async def _wall_and_queue(app: TandemApp, urgent: int, watch: int) -> dict[int, bool]:
    """Whether each conversation's wait is red on its tile; checks the queue row agrees."""
    async with app.run_test(size=(160, 40)) as pilot:
        await wait_until(pilot, lambda: len(app.rows) == 2, what="rows")
        await wait_until(
            pilot, lambda: {t.conversation_id for t in app.screen.query(Tile)} >= {urgent, watch}
        )
        await pilot.pause()
        on_wall = {cid: _red(_status_style(_tile(app, cid))) for cid in (urgent, watch)}
        await pilot.press("s")
        sup = await screen_up(pilot, SupervisorScreen)
        await wait_until(pilot, lambda: sup.metrics.get("queue") == 2, what="metrics")
        table = sup.query_one("#queue-table", DataTable)
        for cid in (urgent, watch):
            wait_cell = table.get_cell(str(cid), "wait")
            assert _red(Style.parse(str(wait_cell.style))) == on_wall[cid], cid
        header = str(sup.query_one("#sup-header").render())
        breaches = sum(on_wall.values())
        assert f"over SLA {breaches}:" in header
        assert f"urgent {int(on_wall[urgent])} (1m 00s)" in header
        return on_wall


async def test_the_policy_targets_per_level_colour_the_wall_and_the_queue(db_path: Path) -> None:
    urgent, watch = _two_waiting(db_path)
    app = TandemApp(db_path, "lead", supervisor=True, interval=0.05, policy=PolicySettings())
    red = await _wall_and_queue(app, urgent, watch)
    assert red == {urgent: True, watch: False}


async def test_a_policy_file_moves_the_watch_target(db_path: Path, tmp_path: Path) -> None:
    urgent, watch = _two_waiting(db_path)
    policy = tmp_path / "policy.toml"
    policy.write_text("[policy.sla_s]\nwatch = 30\n")
    app = TandemApp(db_path, "lead", supervisor=True, interval=0.05, policy=load_settings(policy))
    red = await _wall_and_queue(app, urgent, watch)
    assert red == {urgent: True, watch: True}


def test_queue_cells_keep_reasons_whole_and_mark_a_cut_name() -> None:
    from console.ui.screens.supervisor import queue_cells

    row = {
        "id": 7,
        "state": "waiting",
        "level": "urgent",
        "waiting_since": 1000.0,
        "customer_name": "A" * 60,
        "reasons": ["fraud", "complaint_threat", "churn_risk", "human_request"],
    }
    cells = queue_cells(row, PolicySettings().sla_s, 1030.0)
    assert cells[1].plain == "A" * 27 + "…"
    assert cells[5].plain.count(",") == 3 and not cells[5].plain.endswith(",")
    assert cells[6].plain == "30s" and not _red(Style.parse(str(cells[6].style)))
