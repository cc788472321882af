"""The wall on a real store file: filling, ordering as levels rise, filters, search, empty."""

from __future__ import annotations

from pathlib import Path

from remote_support import Consoles
from textual.events import MouseScrollDown
from ui_support import notes, type_into, wait_until

from console.ui.app import TandemApp
from console.ui.model import needs_human
from console.ui.screens.wall import WallScreen
from console.ui.widgets.tile import Tile
from store import Store, lifecycle
from store.lifecycle import TriageMark
from store.queries import list_conversations

SIZE = (160, 48)


def _wall(app: TandemApp) -> WallScreen:
    screen = app.screen
    assert isinstance(screen, WallScreen)
    return screen


def _tiles(app: TandemApp) -> list[Tile]:
    return [t for t in app.screen.query(Tile) if t.row is not None]


async def test_wall_fills_from_a_seeded_store(seeded: Path, consoles: Consoles) -> None:
    with Store(seeded) as s:
        live = list_conversations(s)
    app = consoles.app("me")
    async with app.run_test(size=SIZE) as pilot:
        await wait_until(pilot, lambda: len(app.rows) == len(live), what="all live rows")
        wall = _wall(app)
        await wait_until(pilot, lambda: len(_tiles(app)) > 0, what="tiles")
        tiles = _tiles(app)
        # Only what fits is mounted: 4 columns of 38+ cells in 160, 6 rows of 7 lines.
        assert wall.cols == 4
        assert len(list(app.screen.query(Tile))) == wall.cols * wall.rows_visible
        assert len(tiles) == min(len(live), wall.cols * wall.rows_visible)
        # Most in need first: the first tile is the most urgent conversation.
        levels = [app.rows[cid]["level"] for cid in wall.order]
        assert levels[0] == "urgent"
        assert levels.index("calm") > levels.index("empathy")
        header = str(app.screen.query_one("#wall-header").render())
        assert f"{len(live)} live" in header


async def test_tile_moves_up_and_is_highlighted_when_its_level_rises(
    db_path: Path, consoles: Consoles
) -> None:
    with Store(db_path) as s:
        ids = []
        for i in range(12):
            cid = lifecycle.open_conversation(s, f"customer {i}")
            lifecycle.add_customer_message(s, cid, f"question {i}")
            ids.append(cid)
    app = consoles.app("me")
    async with app.run_test(size=SIZE, notifications=True) as pilot:
        await wait_until(pilot, lambda: len(app.rows) == 12, what="rows")
        wall = _wall(app)
        # The rows can arrive before the wall's first layout (one column until then).
        await wait_until(pilot, lambda: len(_tiles(app)) == 12, what="the tiles laid out")
        # The agent has the cursor on the fifth tile (second row, first column).
        await pilot.press("down")
        selected = wall.cursor
        assert selected is not None
        visual_row = wall.pos[selected] // wall.cols - wall.top
        target = wall.order[-1]
        assert target != selected
        with Store(db_path) as s:
            lifecycle.record_triage(s, target, TriageMark("empathy", 0.8, ["bereavement"]))
        await wait_until(pilot, lambda: wall.order[0] == target, what="the flagged tile on top")
        assert target in app.rising
        first = next(t for t in app.screen.query(Tile) if t.conversation_id == target)
        assert first.rising and first.frame() == "rising" and first.row["level"] == "empathy"
        assert "╔" in first.render_line(0).text  # drawn with the double "rising" frame
        # Urgent is said in words too, whatever the agent is looking at.
        with Store(db_path) as s:
            lifecycle.record_triage(s, target, TriageMark("urgent", 0.95, ["fraud"]))
        await wait_until(
            pilot,
            lambda: any(f"#{target} is urgent: fraud" in n for n in notes(app)),
            what="the urgent notice",
        )
        # The wall did not jump under the agent: the selected tile is on the same screen row.
        assert wall.cursor == selected
        assert wall.pos[selected] // wall.cols - wall.top == visual_row


async def test_filters_show_only_what_they_say(seeded: Path) -> None:
    app = TandemApp(seeded, "me", interval=0.05)
    async with app.run_test(size=SIZE) as pilot:
        await wait_until(pilot, lambda: app.rows, what="rows")
        wall = _wall(app)
        everything = len(wall.order)
        await pilot.press("2")
        assert wall.filter == "needs"
        assert wall.order and all(needs_human(app.rows[c]) for c in wall.order)
        assert len(wall.order) < everything
        await pilot.press("3")
        assert all(app.rows[c]["state"] == "waiting" for c in wall.order)
        await pilot.press("4")
        assert wall.order == []
        empty = app.screen.query_one("#wall-empty")
        assert empty.has_class("-shown")
        assert "you hold no conversations" in str(empty.render())
        # Take one over from the wall, come back: it is under "mine".
        await pilot.press("1")
        first = wall.order[0]
        await pilot.press("t")
        await wait_until(pilot, lambda: app.screen is not wall, what="conversation screen")
        await pilot.press("escape")
        await wait_until(pilot, lambda: app.rows[first]["owner"] == "me", what="claim in the feed")
        await pilot.press("4")
        assert wall.order == [first]


async def test_search_narrows_the_wall(seeded: Path) -> None:
    app = TandemApp(seeded, "me", interval=0.05)
    async with app.run_test(size=SIZE) as pilot:
        await wait_until(pilot, lambda: app.rows, what="rows")
        wall = _wall(app)
        await type_into(pilot, "slash", "wall-search", "bereavement", enter=False)
        assert wall.order and all("bereavement" in app.rows[c]["reasons"] for c in wall.order)
        await pilot.press("escape")
        assert wall.query_text == "" and len(wall.order) == len(app.rows)


async def test_empty_store_says_so(db_path: Path) -> None:
    app = TandemApp(db_path, "me", interval=0.05)
    async with app.run_test(size=(80, 24)) as pilot:
        wall = _wall(app)
        await wait_until(pilot, lambda: wall.loaded, what="first snapshot")
        empty = app.screen.query_one("#wall-empty")
        assert empty.has_class("-shown")
        assert "no live conversations yet" in str(empty.render())
        await pilot.press("2")
        assert "no conversation needs you" in str(empty.render())
        # Keys on an empty wall do nothing harmful.
        await pilot.press("enter", "t", "down", "pagedown")
        assert app.screen is wall
        # A first customer arrives: the tile appears.
        with Store(db_path) as s:
            cid = lifecycle.open_conversation(s, "first customer")
            lifecycle.add_customer_message(s, cid, "hello")
            lifecycle.escalate(s, cid, reasons=["human_request"])
        await wait_until(pilot, lambda: wall.order == [cid], what="the new tile")
        assert not empty.has_class("-shown")


async def test_mouse_scrolls_the_wall_and_clicks_filters(db_path: Path) -> None:
    with Store(db_path) as s:
        for i in range(40):
            lifecycle.open_conversation(s, f"customer {i}")
    app = TandemApp(db_path, "me", interval=0.05)
    async with app.run_test(size=(80, 24)) as pilot:
        await wait_until(pilot, lambda: len(app.rows) == 40, what="rows")
        wall = _wall(app)
        first = {t.conversation_id for t in _tiles(app)}
        tile = _tiles(app)[0]
        # The wheel over a tile: the event bubbles from the tile up to the wall.
        tile.post_message(MouseScrollDown(tile, 2, 2, 0, 1, 0, False, False, False))
        await pilot.pause()
        assert wall.top >= 1
        assert {t.conversation_id for t in _tiles(app)} != first
        assert wall.pos[wall.cursor] // wall.cols >= wall.top  # the cursor came along, on screen
        await pilot.click("#filter-waiting")
        # The click reaches the wall as the tabs' message, a hop after the click itself.
        await wait_until(pilot, lambda: wall.filter == "waiting", what="the waiting filter")
        assert wall.order == []
