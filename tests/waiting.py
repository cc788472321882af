"""Waiting in tests: poll for a condition until a deadline.

Tests never sleep a fixed time and then look (too short on a busy machine, wasted time on an
idle one), never assert how long something took (numbers belong to ``tandem bench``), and
never sleep and then assert that something did *not* happen: they wait for a later event
that proves the absent thing would have happened by then.

The deadline only bounds a failure: a passing test returns as soon as the condition holds, so
deadlines are generous (a shared CI core can stall for seconds).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from typing import TypeVar

T = TypeVar("T")

DEADLINE = 15.0
"""Seconds before a wait gives up, unless a test says otherwise."""


def wait_until(
    predicate: Callable[[], T], *, timeout: float = DEADLINE, interval: float = 0.02, what: str = ""
) -> T:
    """Call ``predicate`` until it returns something truthy, and return that.

    :param timeout: seconds before giving up with an ``AssertionError`` naming ``what``
    :param interval: seconds between two calls
    :param what: the condition in words, for the failure message
    """
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout} s waiting for {what or predicate}")
        time.sleep(interval)


async def wait_until_async(
    predicate: Callable[[], T],
    *,
    timeout: float = DEADLINE,
    interval: float = 0.02,
    what: str = "",
    pause: Callable[[float], Awaitable[object]] = asyncio.sleep,
) -> T:
    """:func:`wait_until` for async tests: the event loop (an app, a hub) runs between calls.

    :param pause: how to wait between calls; Pilot tests pass ``pilot.pause``, which also lets
        the screen process what is pending
    """
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout} s waiting for {what or predicate}")
        await pause(interval)
