"""Helpers for the console's Pilot tests (a uniquely named module, imported by the tests)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from waiting import DEADLINE, wait_until_async


async def wait_until(
    pilot: Any, cond: Callable[[], object], timeout: float = DEADLINE, what: str = ""
) -> None:
    """Let the app run until ``cond()`` is true (the feed thread posts at ~10 Hz)."""
    await wait_until_async(cond, timeout=timeout, interval=0.05, what=what, pause=pilot.pause)


def notes(app: Any) -> list[str]:
    """Messages of the notifications shown so far."""
    return [n.message for n in app._notifications]
