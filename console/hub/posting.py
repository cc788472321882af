"""The bot's replies, posted in groups: one transaction for every conversation answered in one
pass of the event loop.

A reply's commit, not its statements, is most of what posting it costs (the WAL frames of the
pages it touched; with several hub workers, each commit also makes the others' connections
drop their page caches). The conversations of one feed batch are answered one after another
in the same pass of the loop, so each asks for its reply to be posted and waits; the first
to ask schedules the flush after them, and :func:`store.lifecycle.bot_replies` writes them
all in one transaction, each under its own savepoint with its own checks (a conversation an
agent claimed meanwhile is still refused, alone).

Nothing waits on anyone else's answer: the flush is a plain callback that runs the store
call and returns, so an LLM's answer never holds a transaction open, and a conversation
stays in hand (the cursor stays before it) until its reply is committed or refused.
"""

from __future__ import annotations

import asyncio

from console.hub.shared import Shared
from store import lifecycle as lc


class ReplyPoster:
    """Collects the replies asked for in one pass of the loop and posts them together."""

    def __init__(self, shared: Shared) -> None:
        self.shared = shared
        self._pending: list[tuple[lc.BotReply, asyncio.Future[int]]] = []
        self._scheduled = False
        # Replies posted whose conversation has not observed them yet: the feed may show one
        # first, and it is no news to the hub.
        self.posted: set[int] = set()

    async def post(self, reply: lc.BotReply) -> int:
        """Post ``reply`` with the others of this pass; its id, or what the store raised."""
        loop = asyncio.get_running_loop()
        done: asyncio.Future[int] = loop.create_future()
        self._pending.append((reply, done))
        if not self._scheduled:
            # After every task already scheduled in this pass: they join this group.
            loop.call_soon(self.flush)
            self._scheduled = True
        return await done

    def flush(self) -> None:
        """Post every reply asked for so far (in one transaction) and hand out the outcomes."""
        self._scheduled = False
        # A task cancelled while it waited (the hub stopping) gave up its reply: not posted.
        pending = [(r, f) for r, f in self._pending if not f.done()]
        self._pending = []
        if not pending:
            return
        try:
            results = lc.bot_replies(self.shared.store, [r for r, _ in pending])
        except BaseException as exc:
            # Nothing of the group was kept (locked, disk trouble): each conversation sees
            # the error as it did posting alone, and retries.
            for _, done in pending:
                done.set_exception(exc if isinstance(exc, Exception) else RuntimeError(str(exc)))
            if not isinstance(exc, Exception):
                raise
            return
        for (_, done), result in zip(pending, results, strict=True):
            if isinstance(result, Exception):
                done.set_exception(result)
            else:
                self.posted.add(result)
                done.set_result(result)
