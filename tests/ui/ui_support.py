"""Helpers for the console's Pilot tests (a uniquely named module, imported by the tests)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from typing import Any


async def wait_until(
    pilot: Any, cond: Callable[[], object], timeout: float = 5.0, what: str = ""
) -> None:
    """Let the app run until ``cond()`` is true (the feed thread posts at ~10 Hz)."""
    deadline = time.monotonic() + timeout
    while True:
        if cond():
            return
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what or cond}")
        await pilot.pause(0.05)
        await asyncio.sleep(0)


def notes(app: Any) -> list[str]:
    """Messages of the notifications shown so far."""
    return [n.message for n in app._notifications]
