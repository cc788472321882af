"""A headless first-frame probe for ``tandem bench console``.

:func:`install` patches :class:`TandemApp` so that the real ``tandem console`` start runs
headless and exits as soon as the wall has drawn its first frame with tiles, printing
``FRAME``. It lives here because it patches the Textual app, and only ``console/ui`` may
import Textual; the entry point that runs the command is ``console.bench.first_frame``.
"""

from __future__ import annotations

from typing import Any

from textual.app import App

from console.ui.app import TandemApp


def _display(self: TandemApp, screen: Any, renderable: Any) -> None:
    App._display(self, screen, renderable)
    if renderable is not None and getattr(self, "_wall", None) is not None and self._wall.loaded:
        print("FRAME", flush=True)
        self.exit()


def _run_headless(self: TandemApp, **_: Any) -> Any:
    return App.run(self, headless=True, size=(160, 48))


def install() -> None:
    """Make every :class:`TandemApp` run headless and exit after its first frame."""
    TandemApp._display = _display  # type: ignore[method-assign,assignment]
    TandemApp.run = _run_headless  # type: ignore[method-assign,assignment]
