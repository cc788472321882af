"""The local backend: the console opens the SQLite file itself (one machine, ``make demo``).

Anyone with write access to the file can do anything; that is this mode's trust model
(DESIGN section 12). Each thread that calls gets its own connection (a ``sqlite3``
connection serves one thread at a time); in WAL mode a reader never waits for a writer.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from console.backend.base import Feed, FeedEvent, Replied, Runner, StatusCallback
from console.policy import queue_order
from store import Store, lifecycle, oversight, protection
from store import drafts as draft_log
from store import presence as presence_store
from store.errors import StoreError
from store.feed import Follower
from store.handover import for_owner
from store.queries import get_conversation, message, transcript
from store.report import support_report
from store.routing import claim_next
from store.views import (
    conversation_context,
    earlier_messages,
    supervisor_metrics,
    supervisor_series,
    wall_rows,
)

if TYPE_CHECKING:
    from console.assist.service import DraftService
    from console.assist.summary import HandoverSummary
    from console.llm import LLM
    from console.policy import PolicySettings
    from store.drafts import DraftMetrics
    from store.kb import KbHit


class LocalBackend:
    """The store file at ``db_path``, used as ``agent``.

    Opening creates and migrates the file, here, so a broken path fails the command with one
    line instead of a dead console.
    """

    def __init__(self, db_path: Path | str, agent: str, *, supervisor: bool = False) -> None:
        self.db_path = Path(db_path)
        self.agent = agent
        self.supervisor = supervisor
        self.where = str(self.db_path)
        self.role = "supervisor" if supervisor else "agent"
        self._local = threading.local()
        self._opened: list[tuple[threading.Thread, Store]] = []
        self._lock = threading.Lock()
        self._closed = False
        self._store()  # create and migrate now (see above)

    def _store(self) -> Store:
        store: Store | None = getattr(self._local, "store", None)
        if store is None:
            store = Store(self.db_path)
            self._local.store = store
            with self._lock:
                # Worker threads come and go (a Textual thread worker is a new thread): the
                # connections of those that ended are closed here, not kept for the session.
                done = [(t, s) for t, s in self._opened if not t.is_alive()]
                self._opened = [(t, s) for t, s in self._opened if t.is_alive()]
                self._opened.append((threading.current_thread(), store))
            for _, old in done:
                old.close()
        return store

    def close(self) -> None:
        """Close the connections of threads that are done (and this one's).

        A worker thread still inside a read keeps its connection: SQLite closed under a
        running statement can crash the process (seen once in the suite, with a drafts
        connection). It is closed when its thread ends and the connection is collected.
        """
        with self._lock:
            opened, self._opened = self._opened, []
            self._closed = True
        me = threading.current_thread()
        for thread, store in opened:
            if thread is me or not thread.is_alive():
                store.close()

    # --- moves ----------------------------------------------------------------------------

    def heartbeat(self, presence: str) -> None:
        store = self._store()
        lifecycle.register_agent(store, self.agent, role=self.role)
        # Said again on every beat: a console restarted elsewhere, or a database restored,
        # learns where this agent is within one beat.
        presence_store.set_presence(store, self.agent, presence)

    def set_presence(self, presence: str) -> None:
        presence_store.set_presence(self._store(), self.agent, presence)

    def claim(self, conversation_id: int) -> None:
        lifecycle.claim(self._store(), conversation_id, self.agent)

    def claim_next(self, capacity: int | None = None) -> int | None:
        # The queue is read from the store, not from the wall's last snapshot: the wall may
        # be a tenth of a second behind, and "next" must not mean one already taken.
        return claim_next(self._store(), self.agent, in_queue_order, capacity=capacity)

    def reply(self, conversation_id: int, text: str, draft_id: int | None = None) -> Replied:
        store = self._store()
        mid = lifecycle.agent_reply(store, conversation_id, self.agent, text, draft_id=draft_id)
        outcome = None
        if draft_id is not None:
            try:
                outcome = draft_log.mark_sent(store, draft_id, text, message_id=mid)
            except StoreError:
                outcome = None  # the log is best effort; the reply is stored
        return Replied(mid, outcome)

    def note(self, conversation_id: int, text: str) -> int:
        return lifecycle.add_note(self._store(), conversation_id, self.agent, text)

    def hand_back(self, conversation_id: int) -> None:
        lifecycle.hand_back(self._store(), conversation_id, by=self.agent)

    def resolve(self, conversation_id: int) -> None:
        lifecycle.resolve(self._store(), conversation_id, by=self.agent)

    def assign(self, conversation_id: int, agent: str) -> None:
        lifecycle.assign(self._store(), conversation_id, agent, by=self.agent)

    def transfer(
        self, conversation_id: int, agent: str, summary: tuple[str, dict[str, Any]] | None = None
    ) -> None:
        lifecycle.transfer(
            self._store(),
            conversation_id,
            agent,
            by=self.agent,
            summary=summary[0] if summary else None,
            summary_meta=summary[1] if summary else None,
        )

    def release(self, conversation_id: int) -> None:
        lifecycle.release(self._store(), conversation_id, by=self.agent)

    def final_notice(self, conversation_id: int) -> None:
        protection.final_notice(self._store(), conversation_id, by=self.agent)

    def reveal(self, message_id: int) -> None:
        protection.reveal(self._store(), message_id, by=self.agent)

    def whisper(self, conversation_id: int, text: str) -> None:
        oversight.whisper(self._store(), conversation_id, text, by=self.agent)

    def barge(self, conversation_id: int) -> None:
        oversight.barge(self._store(), conversation_id, by=self.agent)

    def viewing(self, conversation_id: int, is_open: bool) -> None:
        if is_open:
            oversight.view(self._store(), conversation_id, self.agent)
        else:
            oversight.leave(self._store(), conversation_id, self.agent)

    # --- reads ----------------------------------------------------------------------------

    def earlier_messages(self, conversation_id: int, before: int) -> list[dict[str, Any]]:
        store = self._store()
        reader = oversight.reader_in(store, self.agent, self.role)
        return earlier_messages(store, conversation_id, before, reader=reader)

    def recent_messages(self, conversation_id: int, last: int = 50) -> list[dict[str, Any]]:
        return transcript(self._store(), conversation_id, last=last, include_notes=False)

    def kb_search(self, query: str, limit: int) -> list[KbHit]:
        from console.kb.rank import ranked_hits

        return ranked_hits(self._store(), query, limit)

    def draft_metrics(self, since: float | None) -> DraftMetrics:
        return draft_log.draft_metrics(self._store(), since)

    def support_report(
        self, *, since: float, until: float, sla_s: Mapping[str, float]
    ) -> dict[str, Any]:
        return support_report(self._store(), since=since, until=until, sla_s=sla_s)

    def supervisor_series(
        self, *, since: float, sla_s: Mapping[str, float], bucket_s: float, at: float
    ) -> dict[str, Any]:
        return supervisor_series(self._store(), since=since, sla_s=sla_s, bucket_s=bucket_s, at=at)

    def handover(
        self, conversation_id: int, llm: LLM | None
    ) -> Iterator[tuple[HandoverSummary, str | None]]:
        yield from handover(self._store(), conversation_id, self.agent, llm)

    def transfer_summary(
        self, conversation_id: int, agent: str, llm: LLM | None
    ) -> tuple[str, dict[str, Any]] | None:
        from console.assist.summary import as_meta, summary_for

        summary = summary_for(self._store(), conversation_id, agent=agent, llm=llm)
        return None if summary is None else (summary.as_text(), as_meta(summary))

    def whatif(
        self,
        current: PolicySettings,
        proposed: PolicySettings,
        *,
        since: float,
        until: float,
        progress: Callable[[int, int], None] | None = None,
        sample: int = 25,
    ) -> dict[str, Any]:
        from console.whatif import compare

        return compare(
            self._store(),
            current,
            proposed,
            since=since,
            until=until,
            progress=progress,
            sample=sample,
        )

    def open_feed(self, wake: threading.Event, on_status: StatusCallback) -> Feed:
        del wake, on_status  # the reader polls a file: nothing announces, nothing drops
        return LocalFeed(self.db_path, self.agent, self.role)

    def warm(self) -> None:
        from console.kb.rank import warm

        warm(self.db_path)

    # --- drafts ---------------------------------------------------------------------------

    def drafts(self, llm: LLM | None, runner: Runner) -> LocalDrafts:
        # Its own connection, used only inside ``runner`` (the app's writer thread), and
        # closed there too (LocalDrafts.close).
        return LocalDrafts(Store(self.db_path), self.agent, llm, runner)


class LocalDrafts:
    """:class:`console.assist.service.DraftService` on the console's machine."""

    def __init__(self, store: Store, agent: str, llm: LLM | None, runner: Runner) -> None:
        from console.assist.service import DraftService

        self.runner = runner
        self.store = store
        self.service: DraftService = DraftService(store, agent=agent, llm=llm, offload=runner.run)

    def draft(self, conversation_id: int, *, instruction: str | None = None) -> Any:
        stream: Any = self.service.draft(conversation_id, instruction=instruction)
        return stream

    async def mark_stale(self, conversation_id: int) -> bool:
        service = self.service
        return bool(await self.runner.run(lambda: service.mark_stale(conversation_id)))

    def discard_soon(self, draft_id: int) -> None:
        service = self.service
        self.runner.run_soon(lambda: service.discard(draft_id))

    def close(self) -> None:
        # After the writes queued before it, on the thread that makes them; a runner that
        # already stopped runs nothing more, so closing here is safe.
        if not self.runner.run_soon(self.store.close):
            self.store.close()


class LocalFeed:
    """The feed of the file, for the reader thread: one connection and one follower."""

    def __init__(self, db_path: Path, agent: str, role: str = "agent") -> None:
        self.agent = agent
        self.role = role
        self.store = Store(db_path)
        self.follower = Follower(db_path, after=None)
        self.batch = self.follower.batch

    @property
    def cursor(self) -> int:
        return self.follower.cursor or 0

    def snapshot(self) -> tuple[list[dict[str, Any]], int]:
        self.follower.poll()  # fixes the cursor before the rows, so nothing falls between
        return wall_rows(self.store), self.cursor

    def poll(self) -> list[FeedEvent]:
        return [
            FeedEvent(e.id, e.kind, e.conversation_id, e.message_id, e.actor, e.data)
            for e in self.follower.poll()
        ]

    def rows(self, ids: list[int]) -> list[dict[str, Any]]:
        return wall_rows(self.store, ids=ids)

    def conversation(self, conversation_id: int) -> dict[str, Any]:
        return get_conversation(self.store, conversation_id)

    def transcript(
        self,
        conversation_id: int,
        *,
        after: int = 0,
        last: int | None = None,
        limit: int | None = None,
    ) -> list[dict[str, Any]]:
        # A whisper only for its addressee, its author and supervisors (the role read now: a
        # supervisor made an agent mid-session stops reading others' whispers).
        reader = oversight.reader_in(self.store, self.agent, self.role)
        return transcript(
            self.store, conversation_id, after=after, last=last, limit=limit, reader=reader
        )

    def context(self, conversation_id: int) -> dict[str, Any]:
        return conversation_context(self.store, conversation_id)

    def metrics(self, sla_s: Mapping[str, float]) -> dict[str, Any]:
        return supervisor_metrics(self.store, sla_s=sla_s)

    def revealed(self, conversation_id: int) -> set[int]:
        return protection.revealed_ids(self.store, conversation_id, self.agent)

    def message(self, message_id: int) -> dict[str, Any] | None:
        return message(self.store, message_id)

    def close(self) -> None:
        self.follower.close()
        self.store.close()


def in_queue_order(rows: list[dict[str, Any]]) -> list[int]:
    """The waiting conversations' ids in the order take-next claims them: the policy's."""
    return [int(r["id"]) for r in queue_order(rows)]


def handover(
    store: Store, conversation_id: int, agent: str, llm: LLM | None
) -> Iterator[tuple[HandoverSummary, str | None]]:
    """The summary a transfer brought to the owner, with its sender; else the extractive
    summary at once and then, with an LLM, the LLM's."""
    from console.assist.context import build_context
    from console.assist.summary import cited_titles, embedded_summary, from_meta, summarize

    passed = for_owner(store, conversation_id)
    carried = from_meta(passed["summary"]) if passed is not None else None
    if passed is not None and carried is not None:
        yield carried, str(passed["author"] or "?")
        return
    ctx = build_context(store, conversation_id, agent=agent)
    titles = cited_titles(store, ctx)
    yield embedded_summary(ctx, titles), None
    if llm is not None:
        yield asyncio.run(summarize(ctx, llm=llm, titles=titles)), None
