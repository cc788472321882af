"""The one interface the console's screens talk to (DESIGN section 3).

Two implementations: :class:`console.backend.local.LocalBackend` opens the SQLite file (one
machine, ``make demo``), :class:`console.backend.remote.RemoteBackend` talks to ``tandem
serve``'s agent API with an account token (a team). Screens do not know which one they have.

Every method blocks, and none is called on the event loop:

- **moves** run on the app's writer thread, one at a time, in the order the agent made them
  (a reply, then the hand back): ``TandemApp.write(lambda b: b.claim(12))``;
- **reads** run on worker threads (the feed reader, the supervisor panels);
- **drafts** are the exception: :meth:`Backend.drafts` gives an object whose ``draft`` is an
  async generator the composer iterates on the event loop.

Refusals raise the store's own exceptions (``Taken`` says "taken by ana") whichever backend
raised them, so a screen handles them once. :class:`SessionEnded` is the remote backend's own:
the server no longer accepts this console's token.
"""

from __future__ import annotations

import threading
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol, TypeVar

from store.errors import StoreError

if TYPE_CHECKING:
    from console.assist.service import DraftEvent
    from console.assist.summary import HandoverSummary
    from console.llm import LLM
    from console.policy import PolicySettings
    from store.drafts import DraftMetrics
    from store.kb import KbHit

T = TypeVar("T")


class SessionEnded(StoreError):
    """The server refused this console's token (disabled, rotated, or never valid)."""


@dataclass(frozen=True, slots=True)
class FeedEvent:
    """One change of the feed, as the reader needs it (local and remote alike)."""

    id: int
    kind: str
    conversation_id: int | None
    message_id: int | None
    actor: str | None = None
    data: dict[str, Any] | None = None


@dataclass(frozen=True, slots=True)
class Replied:
    """A reply was stored as ``message_id``; ``draft_outcome`` is what became of its draft
    (``sent`` or ``edited``), or ``None`` without one or when its log failed."""

    message_id: int
    draft_outcome: str | None


StatusCallback = Callable[[str | None], None]
"""Told the connection's state from the reader's side: a line such as ``"reconnecting…"``
while the live updates are interrupted, ``None`` once they are back."""


class Feed(Protocol):
    """The change feed and the reads that follow it, for one reader thread (opened on it)."""

    batch: int
    """A poll that returns this many events stopped short of the end: read on at once."""

    def snapshot(self) -> tuple[list[dict[str, Any]], int]:
        """Every live conversation's wall row, and the event id they are current to."""
        ...

    def poll(self) -> list[FeedEvent]:
        """The events since the last poll (or the snapshot), oldest first, without waiting."""
        ...

    @property
    def cursor(self) -> int:
        """The id of the last event returned."""
        ...

    def rows(self, ids: list[int]) -> list[dict[str, Any]]:
        """Fresh wall rows for these conversations, in any state."""
        ...

    def conversation(self, conversation_id: int) -> dict[str, Any]:
        """One conversation's row (``NotFound`` when it does not exist)."""
        ...

    def transcript(
        self,
        conversation_id: int,
        *,
        after: int = 0,
        last: int | None = None,
        limit: int | None = None,
    ) -> list[dict[str, Any]]:
        """Messages (notes included), oldest first: after ``after``, or the newest ``last``."""
        ...

    def context(self, conversation_id: int) -> dict[str, Any]:
        """The side panel's context (history, triage over time, articles)."""
        ...

    def metrics(self, sla_s: Mapping[str, float]) -> dict[str, Any]:
        """The supervisor's figures (queue, waits, agents)."""
        ...

    def revealed(self, conversation_id: int) -> set[int]:
        """Ids of abusive messages this agent chose to read in the conversation."""
        ...

    def message(self, message_id: int) -> dict[str, Any] | None:
        """One message (a whisper to announce), or ``None``."""
        ...

    def close(self) -> None: ...


class DraftClient(Protocol):
    """Drafts for one composer (used on the event loop)."""

    def draft(
        self, conversation_id: int, *, instruction: str | None = None
    ) -> AsyncIterator[DraftEvent]:
        """Start, text pieces, maybe a reset, finished (``console.assist.service``)."""
        ...

    async def mark_stale(self, conversation_id: int) -> bool:
        """A newer customer message arrived: this agent's pending drafts are stale."""
        ...

    def discard_soon(self, draft_id: int) -> None:
        """Log the draft as discarded, best effort, without waiting."""
        ...

    def close(self) -> None:
        """The composer is gone: let go of what the drafts held (after queued writes)."""
        ...


class Runner(Protocol):
    """Where a drafts client's log writes run in order (the app's writer thread)."""

    def run(self, fn: Callable[[], T]) -> Awaitable[T]:
        """Queue ``fn`` now; await its result."""
        ...

    def run_soon(self, fn: Callable[[], object]) -> bool:
        """Queue ``fn`` now, best effort: nobody waits, a ``StoreError`` is dropped; whether
        it was queued (not once the runner stopped)."""
        ...


class Backend(Protocol):
    """What the console does, whichever side holds the store (see the module docstring)."""

    agent: str
    """Who this console is (for a remote console: the account's name, from the server)."""
    supervisor: bool
    where: str
    """The database file or the server's URL, for the agent's notices."""

    # --- moves: on the app's writer thread ----------------------------------------------

    def heartbeat(self, presence: str) -> None:
        """The console is up (the supervisor view's "seen"); ``presence``: ``online``,
        ``away`` (no new assignments) or ``offline`` (the console is closing)."""
        ...

    def set_presence(self, presence: str) -> None: ...
    def claim(self, conversation_id: int) -> None: ...
    def claim_next(self, capacity: int | None = None) -> int | None:
        """Claim the first free conversation in the queue's order; ``None``: nobody waits.

        :param capacity: with routing on, refuse (``AtCapacity``) when the agent already
            holds this many"""
        ...

    def reply(self, conversation_id: int, text: str, draft_id: int | None = None) -> Replied: ...
    def note(self, conversation_id: int, text: str) -> int: ...
    def hand_back(self, conversation_id: int) -> None: ...
    def resolve(self, conversation_id: int) -> None: ...
    def assign(self, conversation_id: int, agent: str) -> None: ...
    def transfer(
        self, conversation_id: int, agent: str, summary: tuple[str, dict[str, Any]] | None = None
    ) -> None:
        """A supervisor moves it to ``agent``, with ``summary`` (from :meth:`transfer_summary`:
        its text and meta) in the same transaction. A server writes its own."""
        ...

    def release(self, conversation_id: int) -> None: ...
    def final_notice(self, conversation_id: int) -> None: ...
    def reveal(self, message_id: int) -> None: ...
    def whisper(self, conversation_id: int, text: str) -> None:
        """A supervisor's note only the agent holding the conversation sees."""
        ...

    def barge(self, conversation_id: int) -> None:
        """A supervisor takes the conversation over from the agent holding it."""
        ...

    def viewing(self, conversation_id: int, is_open: bool) -> None:
        """This console has the conversation open (renewed every 30 s), or closed it."""
        ...

    # --- reads: on worker threads -------------------------------------------------------

    def earlier_messages(self, conversation_id: int, before: int) -> list[dict[str, Any]]: ...
    def recent_messages(self, conversation_id: int, last: int = 50) -> list[dict[str, Any]]:
        """The newest ``last`` messages without notes."""
        ...

    def kb_search(self, query: str, limit: int) -> list[KbHit]: ...
    def draft_metrics(self, since: float | None) -> DraftMetrics: ...
    def support_report(
        self, *, since: float, until: float, sla_s: Mapping[str, float]
    ) -> dict[str, Any]: ...
    def supervisor_series(
        self, *, since: float, sla_s: Mapping[str, float], bucket_s: float, at: float
    ) -> dict[str, Any]: ...
    def handover(
        self, conversation_id: int, llm: LLM | None
    ) -> Iterator[tuple[HandoverSummary, str | None]]:
        """The hand-over summary and who sent it with a transfer (``None``: written now).

        The one a transfer brought to this agent; else the quick one, then (with an LLM) a
        better one."""
        ...

    def transfer_summary(
        self, conversation_id: int, agent: str, llm: LLM | None
    ) -> tuple[str, dict[str, Any]] | None:
        """The summary to send with a transfer to ``agent`` (``None``: none, or the server
        writes its own)."""
        ...

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
        """Past conversations replayed under both policies (``console.whatif.compare``)."""
        ...

    def open_feed(self, wake: threading.Event, on_status: StatusCallback) -> Feed:
        """The feed for the calling (reader) thread; ``wake`` is set when events arrive."""
        ...

    def warm(self) -> None:
        """Work worth doing once after the first frame (the local knowledge-base index)."""
        ...

    # --- drafts: on the event loop ------------------------------------------------------

    def drafts(self, llm: LLM | None, runner: Runner) -> DraftClient: ...

    def close(self) -> None: ...
