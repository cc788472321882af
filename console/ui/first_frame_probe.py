"""``python -m console.ui.first_frame_probe DB``: the real ``tandem console`` start, headless.

Used by ``tandem bench console`` to time start -> first frame in a new process: it prints
``FRAME`` once the wall has drawn its first frame with tiles, then exits. It lives here
because it patches the Textual app, and only ``console/ui`` may import Textual.
"""

from __future__ import annotations

import sys
from typing import Any

from textual.app import App

from console.ui.app import TandemApp


def _display(self: TandemApp, screen: Any, renderable: Any) -> None:
    App._display(self, screen, renderable)
    if renderable is not None and getattr(self, "_wall", None) is not None and self._wall.loaded:
        print("FRAME", flush=True)
        self.exit()


def main(db: str) -> int:
    """Run ``tandem console`` on ``db`` headless at 160x48 until its first frame."""
    from console.cli import main as tandem

    TandemApp._display = _display  # type: ignore[method-assign]
    TandemApp.run = lambda self, **kw: App.run(self, headless=True, size=(160, 48))  # type: ignore[method-assign]
    return tandem(["console", "--db", db, "--agent", "bench-start"])


if __name__ == "__main__":
    sys.exit(main(sys.argv[1]))
