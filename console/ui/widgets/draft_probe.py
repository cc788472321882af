"""A headless measurement of drafts in the composer, for ``tandem bench drafts``.

It lives under ``console/ui`` because it runs a Textual app (the only place that may import
textual); the benchmark itself stays UI-free.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from textual.app import App, ComposeResult

from console.backend import LocalBackend
from console.ui.widgets.composer import Composer


class ComposerProbe(App[None]):
    """Just a composer, for measuring."""

    def __init__(self, db_path: Path, conversation_id: int, llm: Any) -> None:
        super().__init__()
        self.backend = LocalBackend(db_path, "bench")
        self.conversation_id, self.llm = conversation_id, llm

    def compose(self) -> ComposeResult:
        yield Composer(self.backend, self.conversation_id, llm=self.llm, id="composer")

    def on_unmount(self) -> None:
        self.backend.close()


async def first_text_after(
    db_path: Path,
    ids: Sequence[int],
    llm: Any,
    mark: Callable[[], float | None],
    *,
    timeout: float = 10.0,
) -> list[float]:
    """For each conversation, ms from ``mark()`` (e.g. when the LLM's first chunk arrived) to
    the first text in the composer's editor, polled every millisecond.
    """
    seen: list[float] = []
    app = ComposerProbe(db_path, ids[0], llm)
    async with app.run_test() as pilot:
        composer = app.query_one(Composer)
        for cid in ids:
            composer.clear()
            composer.conversation_id = cid
            composer.start_draft()
            deadline = time.perf_counter() + timeout
            while not composer.text and time.perf_counter() < deadline:
                await asyncio.sleep(0.001)
            at = mark()
            if composer.text and at is not None:
                seen.append((time.perf_counter() - at) * 1000)
            composer.clear()
            await pilot.pause(0.01)
    return seen
