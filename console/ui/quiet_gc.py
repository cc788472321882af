"""Full garbage collections only while the agent is not typing.

With 1,000 live conversations the heap holds a few hundred thousand objects, and CPython's
automatic full (generation 2) collection then takes 20-120 ms: measured, it was the cause of
nearly every key press that took longer than 50 ms to show. This module freezes what exists
after the first load (Textual, the screens, the rows: they live as long as the app), turns the
automatic full collection off, and runs it from a timer once input has been quiet for a moment,
or after a few minutes regardless, so memory still gets reclaimed. Young generations are
collected automatically as usual (under 2 ms).
"""

from __future__ import annotations

import gc
import time

QUIET_SECONDS = 2.0
MIN_INTERVAL = 30.0
MAX_INTERVAL = 300.0


class QuietCollector:
    """Owns the process's gen-2 policy between :meth:`start` and :meth:`stop`."""

    def __init__(self) -> None:
        self.last_input = time.monotonic()
        self.last_full = time.monotonic()
        self.collections = 0
        self._saved: tuple[int, int, int] | None = None

    def start(self) -> None:
        """Freeze the current heap and take over full collections (idempotent)."""
        if self._saved is not None:
            return
        self._saved = gc.get_threshold()
        gc.freeze()
        gen0, gen1, _gen2 = self._saved
        # A huge third threshold: the interpreter never starts a full collection by itself.
        gc.set_threshold(gen0, gen1, 1_000_000_000)

    def stop(self) -> None:
        """Give the process its usual collector back."""
        if self._saved is None:
            return
        gc.set_threshold(*self._saved)
        self._saved = None
        gc.unfreeze()

    def touched(self) -> None:
        """The agent pressed a key or clicked."""
        self.last_input = time.monotonic()

    def tick(self) -> bool:
        """Call about once a second; collect if input is quiet (or it has been too long)."""
        if self._saved is None:
            return False
        t = time.monotonic()
        since = t - self.last_full
        quiet = t - self.last_input >= QUIET_SECONDS
        if (quiet and since >= MIN_INTERVAL) or since >= MAX_INTERVAL:
            gc.collect()
            self.last_full = time.monotonic()
            self.collections += 1
            return True
        return False
