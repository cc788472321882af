"""The console's moves, off the event loop: one thread, in order.

A write waits for SQLite's lock for up to ``busy_timeout`` (5 s) when another process holds
it; made on the event loop, that wait froze key handling. So every write of the console
(claims, replies, notes, hand back, resolve, supervisor moves, the drafts log, the agent's
heartbeat) goes through :meth:`StoreWriter.run`, which hands the call to a single worker
thread and returns an awaitable. Screens await it in a Textual worker and turn the result
into a past-tense message (``Claimed``, ``Moved``, ``ReplySent``...).

One thread rather than one per write: the agent's actions must reach the store in the order
they were made (a reply, then the hand back), and a ``sqlite3`` connection serves one thread
at a time. The moves themselves are the backend's (``console.backend``): a local one gives
this thread its own connection, a remote one its own HTTP connection.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from concurrent.futures import ThreadPoolExecutor
from typing import TypeVar

from console.backend import StoreError

T = TypeVar("T")


class StoreWriter:
    """Runs calls one at a time on a thread of its own."""

    def __init__(self) -> None:
        self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="tandem-writer")
        self._closed = False

    def run(self, fn: Callable[[], T]) -> Awaitable[T]:
        """Queue ``fn`` now; await the result or its exception.

        The call is queued before this returns, so calls run in the order ``run`` was called.
        Once queued it runs even if the awaiting task is cancelled (the agent left the screen):
        what the agent did is recorded, only the answer goes unheard.
        """
        future = self._pool.submit(fn)
        return asyncio.shield(asyncio.wrap_future(future))

    def run_soon(self, fn: Callable[[], object]) -> bool:
        """Queue a best-effort write nobody waits for (the drafts log): a ``StoreError`` is
        dropped. Returns whether it was queued (not once the writer is closed)."""

        def quietly() -> None:
            try:
                fn()
            except StoreError:
                pass  # a log line lost to a locked database must not cost the agent anything

        if self._closed:  # the console is closing: a log line is not worth an error
            return False
        self._pool.submit(quietly)
        return True

    def close(self, *, wait: bool = True) -> None:
        """Stop taking calls; the queued ones still run (idempotent).

        Args:
            wait: block until then; without it the writes still finish (the interpreter joins
                the thread at exit) but the event loop goes on at once.
        """
        if self._closed:
            return
        self._closed = True
        self._pool.shutdown(wait=wait)
