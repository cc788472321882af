"""A console in its own process for the multi-process test, driven by its argv, reporting on stdout.

``python console_driver.py DB AGENT claim CID``: wait for the tile, press ``t`` on it, print
``CLAIMED <unix time>`` and any notifications, then stay up until stdin closes.
``python console_driver.py DB AGENT watch CID OWNER``: wait until the tile shows OWNER, print
``SEEN <unix time>``, press ``t`` (a claim that must be refused), print the notifications.
Both print ``READY`` once the tile is on the wall.
"""

from __future__ import annotations

import asyncio
import sys
import time

from console.ui.app import TandemApp
from console.ui.screens.wall import WallScreen


async def main(db: str, agent: str, mode: str, cid: int, owner: str | None) -> None:
    app = TandemApp(db, agent, interval=0.05)
    async with app.run_test(size=(120, 40), notifications=True) as pilot:
        while cid not in app.rows:
            await pilot.pause(0.02)
        print("READY", flush=True)
        wall = app.screen
        assert isinstance(wall, WallScreen)
        if mode == "claim":
            line = await asyncio.to_thread(sys.stdin.readline)  # the test says when
            assert line.strip() == "go"
            wall.cursor = cid
            await pilot.press("t")
            print(f"CLAIMED {time.time():.6f}", flush=True)
            for n in app._notifications:
                print(f"NOTE {n.message}", flush=True)
            await asyncio.to_thread(sys.stdin.read)
            return
        while (app.rows.get(cid) or {}).get("owner") != owner:
            await asyncio.sleep(0.005)
        print(f"SEEN {time.time():.6f}", flush=True)
        wall.cursor = cid
        await pilot.press("t")
        await pilot.pause(0.1)
        for n in app._notifications:
            print(f"NOTE {n.message}", flush=True)
        print("DONE", flush=True)


if __name__ == "__main__":
    args = sys.argv[1:]
    asyncio.run(main(args[0], args[1], args[2], int(args[3]), args[4] if len(args) > 4 else None))
