"""A remote console (``tandem console --server``) in its own process, for the claim race.

``TANDEM_TOKEN=... python remote_console_driver.py URL CID``: connect, wait for the tile, print
``READY``; on ``go`` from stdin press ``t`` on it, then print ``WON`` once the conversation is
open as ours, or ``LOST <notification>`` once told it is taken; stay up until stdin closes.
"""

from __future__ import annotations

import asyncio
import os
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # tests/, for waiting.py
from waiting import wait_until_async  # noqa: E402

from console.backend.remote import RemoteBackend  # noqa: E402
from console.ui.app import TandemApp  # noqa: E402
from console.ui.screens.conversation import ConversationScreen  # noqa: E402
from console.ui.screens.wall import WallScreen  # noqa: E402


async def main(url: str, cid: int) -> None:
    app = TandemApp(RemoteBackend(url, os.environ["TANDEM_TOKEN"]), interval=0.05)
    async with app.run_test(size=(120, 40), notifications=True) as pilot:
        await wait_until_async(lambda: cid in app.rows, pause=pilot.pause, what="the tile")
        wall = app.screen
        assert isinstance(wall, WallScreen)
        print("READY", flush=True)
        line = await asyncio.to_thread(sys.stdin.readline)  # the test says when
        assert line.strip() == "go"
        wall.cursor = cid
        await pilot.press("t")

        def told() -> str | None:
            return next((n.message for n in app._notifications if "taken" in n.message), None)

        def outcome() -> bool:
            won = isinstance(app.screen, ConversationScreen) and app.screen.mine
            return won or told() is not None

        await wait_until_async(outcome, pause=pilot.pause, what="the claim's outcome")
        print(f"LOST {told()}" if told() else "WON", flush=True)
        await asyncio.to_thread(sys.stdin.read)


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1], int(sys.argv[2])))
