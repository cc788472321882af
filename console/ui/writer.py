"""The console's store writes, off the event loop: one thread, one connection, in order.

A write waits for SQLite's lock for up to ``busy_timeout`` (5 s) when another process holds
it; made on the event loop, that wait froze key handling. So every write of the console
(claims, replies, notes, hand back, resolve, supervisor moves, the drafts log, the agent's
heartbeat) goes through :meth:`StoreWriter.run`, which hands the call to a single worker
thread and returns an awaitable. Screens await it in a Textual worker and turn the result
into a past-tense message (``Claimed``, ``Moved``, ``ReplySent``...).

One thread rather than one per write: the agent's actions must reach the store in the order
they were made (a reply, then the hand back), and a ``sqlite3`` connection serves one thread
at a time. Reads stay where they are: in WAL mode a reader never waits for a writer.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from concurrent.futures import ThreadPoolExecutor
from typing import TypeVar

from store import Store
from store.errors import StoreError

T = TypeVar("T")


class StoreWriter:
    """Runs store calls one at a time on a thread of its own.

    Args:
        store: a connection that from now on is used by the writer's thread only (it can be
            opened anywhere: ``Store`` connections are not tied to the opening thread).
    """

    def __init__(self, store: Store) -> None:
        self.store = store
        """The writer's connection, for objects whose calls go through :meth:`run` (drafts)."""
        self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="tandem-writer")
        self._closed = False

    def run(self, fn: Callable[[], T]) -> Awaitable[T]:
        """Queue ``fn`` (which uses :attr:`store`) now; await the result or its exception.

        The call is queued before this returns, so calls run in the order ``run`` was called.
        Once queued it runs even if the awaiting task is cancelled (the agent left the screen):
        what the agent did is recorded, only the answer goes unheard.
        """
        future = self._pool.submit(fn)
        return asyncio.shield(asyncio.wrap_future(future))

    def run_soon(self, fn: Callable[[], object]) -> None:
        """Queue a best-effort write nobody waits for (the drafts log): a ``StoreError`` is dropped."""

        def quietly() -> None:
            try:
                fn()
            except StoreError:
                pass  # a log line lost to a locked database must not cost the agent anything

        if not self._closed:  # the console is closing: a log line is not worth an error
            self._pool.submit(quietly)

    def close(self, *, wait: bool = True) -> None:
        """Close the connection once the queued writes are done (idempotent).

        Args:
            wait: block until then; without it the writes still finish (the interpreter joins
                the thread at exit) but the event loop goes on at once.
        """
        if self._closed:
            return
        self._closed = True
        self._pool.submit(self.store.close)
        self._pool.shutdown(wait=wait)
