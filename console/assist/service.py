"""Running a draft: pick the engine, stream its text, time it, log it in ``drafts``.

:class:`DraftService` is UI-agnostic and async: the composer iterates :meth:`DraftService.draft`
and gets :class:`DraftStarted`, then :class:`DraftText` fragments (possibly a
:class:`DraftReset` when the LLM fails mid-stream and the embedded engine takes over), then
one :class:`DraftFinished`. Nothing here sends anything to the customer: the agent does that,
and the composer reports it back through :meth:`DraftService.sent` or
:meth:`DraftService.discard`.

Store calls are short and synchronous. By default :meth:`DraftService.draft` makes them on
the caller's thread; a caller whose thread must never wait for SQLite's lock (the console's
event loop) passes ``offload``, which runs each call where the ``Store`` lives (the console's
writer thread) and is awaited. The other methods are plain calls, for the caller to place.

Timings: ``first_text_ms`` runs from the start of the engine that wrote the text (the call
of :meth:`~DraftService.draft`, before the transcript is read, or the moment a failed LLM
handed over to the embedded engine) to the moment its first fragment is handed to the
consumer; ``llm_lost_ms`` is the time the failed LLM cost before that; ``total_ms`` runs from
the call to the last fragment. So the embedded engine's time to first text stays its own,
and what a broken endpoint costs agents is counted apart.

A stream that ends without a proper finish (the token limit, no finish reason, the connection
cut after text arrived) keeps its text and comes with ``incomplete`` set: the agent sees a
partial draft marked as such, never one passed off as finished.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import AsyncGenerator, Awaitable, Callable
from contextlib import aclosing
from dataclasses import dataclass
from typing import Protocol, TypeVar

from console.assist import checks, embedded, llm_engine
from console.assist.context import DraftContext, build_context
from console.llm import LLM, LLMError, LLMIncomplete
from store import drafts as log
from store.db import Store
from store.drafts import DraftMetrics

logger = logging.getLogger("tandem.assist")


@dataclass(frozen=True, slots=True)
class DraftStarted:
    """A draft was recorded and its engine chosen."""

    draft_id: int
    engine: str
    model: str | None
    based_on_message_id: int | None
    kb_ids: tuple[str, ...]
    """Articles retrieved for the draft (the cited ones come with :class:`DraftFinished`)."""


@dataclass(frozen=True, slots=True)
class DraftText:
    """The next piece of the draft's text, to append to the editor."""

    text: str


@dataclass(frozen=True, slots=True)
class DraftReset:
    """The text streamed so far is void (the LLM failed mid-way); a fallback draft follows."""

    notice: str
    engine: str


@dataclass(frozen=True, slots=True)
class DraftFinished:
    """The draft is complete (or was stopped)."""

    draft_id: int
    engine: str
    model: str | None
    text: str
    kb_ids: tuple[str, ...]
    """Articles the draft used: cited by the LLM, or quoted by the embedded engine."""
    first_text_ms: float | None
    total_ms: float
    notice: str | None
    stale: bool
    """A newer customer message arrived while it was written."""
    kb_titles: tuple[str, ...] = ()
    """The titles of ``kb_ids``, in the same order (for the agent's status line)."""
    incomplete: str | None = None
    """Why the text stops short: the LLM's stream ended without a proper finish."""
    llm_lost_ms: float | None = None
    """Time spent on an LLM that failed before the engine that wrote ``text`` started."""


DraftEvent = DraftStarted | DraftText | DraftReset | DraftFinished

T = TypeVar("T")


class Offload(Protocol):
    """Runs a store call somewhere else and lets the caller await its result."""

    def __call__(self, fn: Callable[[], T], /) -> Awaitable[T]: ...


async def _inline(fn: Callable[[], T]) -> T:
    return fn()


class DraftService:
    """Writes drafts for one agent over one store connection.

    :param store: the caller's connection (used from the caller's thread only)
    :param agent: the agent the drafts are for
    :param llm: a :class:`console.llm.LLM`; ``None`` or a disabled one means embedded only
    :param llm_timeout: seconds for the LLM's first piece and each gap (default: the LLM config's)
    :param clock: monotonic seconds (tests and benchmarks may pass their own)
    :param offload: runs :meth:`draft`'s store calls (default: right here, on this thread)
    """

    def __init__(
        self,
        store: Store,
        *,
        agent: str,
        llm: LLM | None = None,
        llm_timeout: float | None = None,
        clock: Callable[[], float] = time.perf_counter,
        offload: Offload = _inline,
    ) -> None:
        self.store = store
        self.offload = offload
        self.agent = agent
        self.llm = llm if llm is not None and getattr(llm, "enabled", False) else None
        self.llm_timeout = llm_timeout
        self.clock = clock

    @property
    def engine(self) -> str:
        """The engine a new draft starts with."""
        return llm_engine.ENGINE if self.llm is not None else embedded.ENGINE

    @property
    def model(self) -> str | None:
        """The model name of the LLM, if one is used."""
        return getattr(self.llm, "model", None) if self.llm is not None else None

    def _seed(self, conversation_id: int) -> int:
        # Each new draft of a conversation gets new wording: a regenerate never repeats itself.
        return log.draft_count(self.store, conversation_id)

    def context(self, conversation_id: int, instruction: str | None = None) -> DraftContext:
        """What a draft for ``conversation_id`` would be written from."""
        return build_context(
            self.store,
            conversation_id,
            agent=self.agent,
            instruction=instruction,
            seed=self._seed(conversation_id),
        )

    async def draft(
        self, conversation_id: int, *, instruction: str | None = None
    ) -> AsyncGenerator[DraftEvent, None]:
        """Write one draft and yield its events; the draft is logged whatever happens.

        Closing the iterator early (the agent discarded or regenerated) still records what was
        written and the timings; the caller decides the outcome.

        :param instruction: the agent's regenerate instruction ("shorter", "more formal", free text)
        """
        t0 = self.clock()
        engine, model = self.engine, self.model

        # One offloaded call to begin and one to end: each hop to another thread costs time
        # before the first text.
        def begin() -> tuple[DraftContext, int]:
            ctx = self.context(conversation_id, instruction)
            draft_id = log.start(
                self.store,
                conversation_id,
                engine=engine,
                model=model,
                agent=self.agent,
                instruction=instruction,
                based_on_message_id=ctx.based_on_message_id,
            )
            return ctx, draft_id

        starting = asyncio.ensure_future(self.offload(begin))
        try:
            ctx, draft_id = await asyncio.shield(starting)
        except asyncio.CancelledError:
            # Stopped while the row was being written (an offloaded call waits for the lock):
            # the row exists all the same, so it is closed as discarded rather than left open.
            with contextlib.suppress(Exception):
                _, stopped = await starting
                await self.offload(lambda: log.discard(self.store, stopped))
            raise
        yield DraftStarted(
            draft_id, engine, model, ctx.based_on_message_id, tuple(a.id for a in ctx.articles)
        )
        parts: list[str] = []
        first_ms: float | None = None
        notice: str | None = None
        kb_ids: tuple[str, ...] = ()
        incomplete: str | None = None
        lost_ms: float | None = None
        started = t0  # when the engine that writes the text began (a fallback starts late)
        failed = False  # stays False when the consumer stops early: that is not a failure
        try:
            if self.llm is not None:
                citations = llm_engine.CitationFilter([a.id for a in ctx.articles])
                try:
                    # aclosing: a consumer that stops early closes the HTTP stream now, not at GC.
                    async with aclosing(
                        llm_engine.stream(
                            ctx,
                            self.llm,
                            timeout=self.llm_timeout,
                            citations=citations,
                        )
                    ) as pieces:
                        async for text in pieces:
                            if first_ms is None:
                                first_ms = (self.clock() - t0) * 1000
                            parts.append(text)
                            yield DraftText(text)
                    if not "".join(parts).strip():
                        raise _Empty("the LLM returned an empty draft")
                except LLMIncomplete as exc:
                    if not "".join(parts).strip():
                        notice, lost_ms, started = self._fall_back(exc, t0)
                        engine, model, first_ms = embedded.ENGINE, None, None
                    else:
                        # What came is real but stops short: the agent sees it, marked, with
                        # f5 one key away; it is never passed off as a finished draft.
                        incomplete = _describe(exc)
                except Exception as exc:  # LLMError and its kin; CancelledError passes through
                    notice, lost_ms, started = self._fall_back(exc, t0)
                    engine, model = embedded.ENGINE, None
                    if parts:
                        parts.clear()
                        yield DraftReset(notice, engine)
                    first_ms = None
                if engine == llm_engine.ENGINE:
                    kb_ids = tuple(citations.cited)
                if citations.invented:
                    # An id it was not given is not a source: taken out of the text, said here.
                    gone = f"the LLM cited {', '.join(citations.invented)}, which it was not given"
                    notice = f"{notice}; {gone}" if notice else gone
                if engine == llm_engine.ENGINE:
                    # The whole text, read once more: what it must not slip past the agent.
                    for warning in checks.warnings("".join(parts), ctx.articles):
                        notice = f"{notice}; {warning}" if notice else warning
            if engine == embedded.ENGINE:
                written = embedded.write(ctx)
                kb_ids = written.kb_ids
                notice = notice or written.notice
                for fragment in written.fragments:
                    if first_ms is None:
                        first_ms = (self.clock() - started) * 1000
                    parts.append(fragment)
                    yield DraftText(fragment)
            failed = not "".join(parts).strip()
        finally:
            total_ms = (self.clock() - t0) * 1000
            text = "".join(parts)

            def finish() -> bool:
                log.finish(
                    self.store,
                    draft_id,
                    text=text,
                    first_text_ms=first_ms,
                    total_ms=total_ms,
                    engine=engine,
                    model=model,
                    kb_ids=list(kb_ids),
                    notice=notice,
                    failed=failed,
                    incomplete=incomplete,
                    llm_lost_ms=lost_ms,
                )
                # A customer message that arrived meanwhile makes the draft stale.
                return bool(log.mark_stale(self.store, conversation_id, draft_id=draft_id))

            stale = await self.offload(finish)
        titles = {a.id: a.title for a in ctx.articles}
        yield DraftFinished(
            draft_id,
            engine,
            model,
            text,
            kb_ids,
            first_ms,
            total_ms,
            notice,
            stale,
            tuple(titles.get(k, "") for k in kb_ids),
            incomplete,
            lost_ms,
        )

    def _fall_back(self, exc: BaseException, t0: float) -> tuple[str, float, float]:
        """The LLM failed: (the notice, the time it cost in ms, when the fallback starts)."""
        now = self.clock()
        return f"{_describe(exc)}: offline draft instead", (now - t0) * 1000, now

    def mark_stale(self, conversation_id: int) -> list[int]:
        """A customer message arrived: pending drafts that answer an older one become stale."""
        return log.mark_stale(self.store, conversation_id)

    def is_stale(self, draft_id: int) -> bool:
        """Whether the draft is marked stale."""
        return log.get_draft(self.store, draft_id)["outcome"] == "stale"

    def sent(self, draft_id: int, text: str, *, message_id: int | None = None) -> str:
        """The agent sent ``text``, which started from this draft: ``accepted`` or ``edited``."""
        return log.mark_sent(self.store, draft_id, text, message_id=message_id)

    def discard(self, draft_id: int) -> bool:
        """The agent threw the draft away (or replaced it)."""
        return log.discard(self.store, draft_id)

    def metrics(self, since: float | None = None) -> DraftMetrics:
        """Acceptance, edit distance and time to first text, for the console's panel."""
        return log.draft_metrics(self.store, since)


class _Empty(Exception):
    pass


def _describe(exc: BaseException) -> str:
    # Our own errors are written for agents; any other exception's text is internal (it can
    # quote the model's reply or our code) and stays in the log.
    if isinstance(exc, (LLMError, _Empty)):
        return (str(exc).strip() or "the LLM draft failed")[:120]
    logger.warning("LLM draft failed: %s: %s", type(exc).__name__, exc)
    return "the LLM draft failed"
