"""Tiles keep their width whatever emoji a customer sends (zero-width joiners included)."""

from __future__ import annotations

from pathlib import Path

from rich.segment import Segment
from ui_support import wait_until

from console.ui.app import TandemApp
from console.ui.widgets.tile import Tile
from store import Store, lifecycle

ZWJ = "\u200d"
FAMILY = f"\U0001f468{ZWJ}\U0001f469{ZWJ}\U0001f467{ZWJ}\U0001f466"
CODER = f"\U0001f469\U0001f3fd{ZWJ}\U0001f4bb"
NAMES = [
    f"Maya {FAMILY}",
    f"Ana{ZWJ}",  # a joiner with nothing after it, right before the tile's " #id"
    f"{CODER}{ZWJ}",
    f"中文{ZWJ}{ZWJ}",
    f"\u2764\ufe0f{ZWJ}\U0001f525 Lee",
    "\U0001f1f8\U0001f1ea Sven",
]


async def test_every_tile_line_is_exactly_the_tile_wide(db_path: Path) -> None:
    with Store(db_path) as s:
        for name in NAMES:
            cid = lifecycle.open_conversation(s, name)
            lifecycle.add_customer_message(s, cid, f"{FAMILY * 12}{ZWJ} trip {CODER}{ZWJ}")
    app = TandemApp(db_path, "me", interval=0.05)
    async with app.run_test(size=(160, 48)) as pilot:
        await wait_until(pilot, lambda: len(app.rows) == len(NAMES), what="all rows")
        tiles = [t for t in app.screen.query(Tile) if t.row is not None]
        await wait_until(pilot, lambda: len(tiles) == len(NAMES), what="tiles")
        for tile in tiles:
            for y in range(tile.size.height):
                strip = tile.render_line(y)
                # Measured as Strip and the compositor measure: segment by segment.
                width = Segment.get_line_length(list(strip))
                assert width == strip.cell_length == tile.size.width, (tile.row, y)
        for line in app.screen._compositor.render_strips():
            assert line.cell_length == 160
