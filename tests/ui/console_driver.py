"""A console in its own process for the multi-process test, driven by its argv, reporting on stdout.

``python console_driver.py DB AGENT claim CID``: wait for the tile, press ``t`` on it, wait
for the conversation to open, print ``CLAIMED <unix time>`` and any notifications, then stay
up until stdin closes.
``python console_driver.py DB AGENT watch CID OWNER``: wait until the tile shows OWNER, print
``SEEN <unix time>``, press ``t`` (a claim that must be refused), wait for the refusal, print
the notifications. Both print ``READY`` once the tile is on the wall.
"""

from __future__ import annotations

import asyncio
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # tests/, for waiting.py
from waiting import wait_until_async  # noqa: E402

from console.ui.app import TandemApp  # noqa: E402
from console.ui.screens.conversation import ConversationScreen  # noqa: E402
from console.ui.screens.wall import WallScreen  # noqa: E402


async def main(db: str, agent: str, mode: str, cid: int, owner: str | None) -> None:
    app = TandemApp(db, agent, interval=0.05)
    async with app.run_test(size=(120, 40), notifications=True) as pilot:
        await wait_until_async(lambda: cid in app.rows, pause=pilot.pause, what="the tile")
        print("READY", flush=True)
        wall = app.screen
        assert isinstance(wall, WallScreen)
        if mode == "claim":
            line = await asyncio.to_thread(sys.stdin.readline)  # the test says when
            assert line.strip() == "go"
            wall.cursor = cid
            await pilot.press("t")
            await wait_until_async(
                lambda: isinstance(app.screen, ConversationScreen), pause=pilot.pause, what="claim"
            )
            print(f"CLAIMED {time.time():.6f}", flush=True)
            for n in app._notifications:
                print(f"NOTE {n.message}", flush=True)
            await asyncio.to_thread(sys.stdin.read)
            return
        await wait_until_async(
            lambda: (app.rows.get(cid) or {}).get("owner") == owner,
            interval=0.005,
            what="the other agent's claim",
        )
        print(f"SEEN {time.time():.6f}", flush=True)
        wall.cursor = cid
        await pilot.press("t")
        # The refusal itself, not whichever notification comes first.
        await wait_until_async(
            lambda: any("taken by" in n.message for n in app._notifications),
            pause=pilot.pause,
            what="the refusal",
        )
        for n in app._notifications:
            print(f"NOTE {n.message}", flush=True)
        print("DONE", flush=True)


if __name__ == "__main__":
    args = sys.argv[1:]
    asyncio.run(main(args[0], args[1], args[2], int(args[3]), args[4] if len(args) > 4 else None))
