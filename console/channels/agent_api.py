"""The agent API (DESIGN section 12): what a console does, over HTTP, under ``/agent/v1/``.

Mounted by ``tandem serve`` beside the channel API, on the same listener. The caller's name
and role come from its account token (``Authorization: Bearer tdm_...``) and from nothing
else: no route reads a name from the URL or the body for the actor, and a token in the URL
is refused rather than accepted (URLs end up in logs and proxies). Every request looks its
token up again, so a rotated or disabled account is refused on its next request; an open
event stream looks again on every wake and at least once a second, and closes.

The store checks roles and disabled accounts once more in each move's own transaction, so
a token disabled between the lookup and the move still moves nothing.

Customer tokens open ``/v1/conversations/{id}/...`` only; account tokens open
``/agent/v1/...`` only (their hashes live in different tables); the integration token opens
neither of the agent routes.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import math
import time
from collections.abc import AsyncGenerator, Awaitable, Callable
from contextlib import aclosing
from dataclasses import asdict, dataclass, is_dataclass
from pathlib import Path
from typing import Any, Protocol

from aiohttp import web

from console.channels.api import (
    CODES,
    ApiError,
    ApiLimits,
    _Buckets,
    is_number,
    json_object,
    read_body,
)
from console.kb.rank import ranked_hits
from console.policy import LEVELS, RoutingSettings, queue_order
from store import (
    DatabaseUnavailable,
    Forbidden,
    InvalidInput,
    NotFound,
    Store,
    StoreError,
    Taken,
    accounts,
    handover,
    oversight,
    presence,
    protection,
)
from store import drafts as draft_store
from store import lifecycle as lc
from store.accounts import Account
from store.db import location
from store.feed import Event, Follower, last_event_id, messages_of, read_events
from store.queries import get_conversation, transcript
from store.report import support_report
from store.routing import AtCapacity, claim_next
from store.views import (
    conversation_context,
    earlier_messages,
    supervisor_metrics,
    supervisor_series,
    wall_rows,
)


class Drafter(Protocol):
    """What the agent API needs of :class:`console.assist.service.DraftService` (the server
    passes a factory in; the channels layer does not import the assist engines)."""

    def draft(
        self, conversation_id: int, *, instruction: str | None = None
    ) -> AsyncGenerator[Any, None]: ...


DrafterFactory = Callable[[Store, str], Drafter]

Summarizer = Callable[[Store, int, str], Awaitable[tuple[str, dict[str, Any]]]]
"""The hand-over summary a transfer takes along: ``(store, conversation id, receiving agent)``
-> ``(note text, meta)`` (the server passes :mod:`console.assist.summary`'s in)."""

log = logging.getLogger("tandem.agent_api")

PREFIX = "/agent/v1"
MAX_INSTRUCTION = 500
TOKEN_RECHECK_S = 1.0
"""How often an idle stream looks its token up again."""
TOKEN_BUSY_RECHECK_S = 0.25
"""How often a stream that is sending looks again (not on every batch: 50 consoles at 30
wakes a second would be 1,500 lookups a second for nothing)."""
HEARTBEAT_S = 15.0
MAX_STREAMS = 500
MAX_STREAMS_PER_ACCOUNT = 8
"""A console holds one stream; a few more allow reconnects that overlap the old socket."""
STREAM_BATCH = 500


# One event's stream bytes and, for a whisper, its feed data and author (who may read it).
_Part = tuple[bytes, tuple[dict[str, Any] | None, str | None] | None]


@dataclass(frozen=True, slots=True)
class _Batch:
    """A range of the feed encoded once for every console that asks for it."""

    shared: bytes
    """Every event, as a supervisor reads them (and anyone, when ``parts`` is ``None``)."""
    last: int
    full: bool
    parts: tuple[_Part, ...] | None = None
    """Per event, only when the range holds a whisper: the others read it without those."""

    def for_reader(self, reader: str | None) -> bytes:
        """The bytes ``reader`` may read (``None``: a supervisor, every event)."""
        if reader is None or self.parts is None:
            return self.shared
        return b"".join(
            chunk
            for chunk, whisper in self.parts
            if whisper is None or oversight.readable(whisper[0], whisper[1], reader)
        )


class AgentApi:
    """The aiohttp sub-application for consoles, and the state behind it.

    :param db_path: the store
    :param poll_interval: how often the feed pump looks for new events when idle
    :param failure_rate: sustained failed credentials per second per address before 429
    :param routing: the policy's ``[routing]`` (take-next respects its capacity when on)
    """

    def __init__(
        self,
        db_path: str | Path,
        *,
        poll_interval: float = 0.02,
        failure_rate: float = 1.0,
        failure_burst: int = 10,
        drafts: DrafterFactory | None = None,
        routing: RoutingSettings | None = None,
        summaries: Summarizer | None = None,
    ) -> None:
        self.db_path = location(db_path)
        # With routing on, take-next stops at the agent's capacity, as the hub's assignment does.
        self.routing = routing or RoutingSettings()
        self.poll_interval = poll_interval
        self.drafts = drafts
        self.summaries = summaries
        self.store = Store(self.db_path)
        self._failures = _Buckets(failure_rate, failure_burst)
        # One Event per open stream: the pump sets them all when the feed moves. (No shared
        # Condition: its lock made 20 woken streams queue for each other.)
        self._wakes: set[asyncio.Event] = set()
        self._head = 0
        self._encoded: dict[tuple[int, int], _Batch] = {}
        self._streams: set[asyncio.Task[Any]] = set()
        self._per_account: dict[str, int] = {}
        self._closing = False
        self._pump: asyncio.Task[None] | None = None
        self.app = self._build()

    # --- plumbing ---------------------------------------------------------------------

    def _build(self) -> web.Application:
        app = web.Application(middlewares=[self._errors])
        r = app.router
        r.add_get("/me", self.me)
        r.add_get("/wall", self.wall)
        r.add_get("/events", self.events)
        r.add_post("/presence", self.presence)
        r.add_get("/conversations/{id}", self.conversation)
        r.add_get("/conversations/{id}/messages", self.messages)
        r.add_post("/claim-next", self.claim_next)
        r.add_post("/conversations/{id}/claim", self.claim)
        r.add_post("/conversations/{id}/reply", self.reply)
        r.add_post("/conversations/{id}/note", self.note)
        r.add_post("/conversations/{id}/escalate", self.escalate)
        r.add_post("/conversations/{id}/hand-back", self.hand_back)
        r.add_post("/conversations/{id}/resolve", self.resolve)
        r.add_post("/conversations/{id}/assign", self.assign)
        r.add_post("/conversations/{id}/transfer", self.transfer)
        r.add_post("/conversations/{id}/release", self.release)
        r.add_post("/conversations/{id}/draft", self.draft)
        r.add_post("/drafts/{draft}/discard", self.discard_draft)
        r.add_get("/kb", self.kb_search)
        r.add_get("/drafts/stats", self.draft_stats)
        r.add_get("/metrics", self.metrics)
        self._console_routes(r)
        self._oversight_routes(r)
        app.on_startup.append(self._start)
        app.on_shutdown.append(self._shutdown)
        app.on_cleanup.append(self._cleanup)
        return app

    def mount(self, parent: web.Application) -> None:
        """Serve these routes under ``/agent/v1/`` of ``parent`` (the channel API's app)."""
        parent.add_subapp(PREFIX, self.app)

    @web.middleware
    async def _errors(
        self, request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
    ) -> web.StreamResponse:
        try:
            return await handler(request)
        except ApiError as exc:
            return _error(exc.status, str(exc), exc.code)
        except web.HTTPException as exc:
            if exc.status >= 400:
                return _error(
                    exc.status, (exc.reason or "error").lower(), CODES.get(exc.status, "error")
                )
            raise
        except Forbidden as exc:
            return _error(403, str(exc), "forbidden")
        except AtCapacity as exc:
            return _error(409, str(exc), "at_capacity")
        except Taken as exc:
            return _error(409, str(exc), "taken", owner=exc.owner)
        except NotFound as exc:
            return _error(404, str(exc), "not_found")
        except InvalidInput as exc:
            return _error(422, str(exc), "invalid")
        except DatabaseUnavailable as exc:
            return _error(503, f"temporarily unavailable: {exc}", "unavailable")
        except StoreError as exc:
            return _error(409, str(exc), "refused")

    async def _start(self, _app: web.Application) -> None:
        self._head = last_event_id(self.store)
        self._pump = asyncio.create_task(self._pump_feed())

    async def _shutdown(self, _app: web.Application) -> None:
        self._closing = True
        for wake in self._wakes:
            wake.set()

    async def _cleanup(self, _app: web.Application) -> None:
        if self._pump:
            self._pump.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._pump
        self.store.close()

    async def _pump_feed(self) -> None:
        """One follower for every stream: it only says "the feed moved"; each stream reads
        the events after its own cursor, so none is skipped or sent twice."""
        follower = Follower(self.db_path, after=None, batch=1)
        try:
            while True:
                if follower.poll():
                    head = last_event_id(self.store)
                    follower.cursor = head
                    if head != self._head:
                        self._head = head
                        for wake in self._wakes:
                            wake.set()
                await asyncio.sleep(self.poll_interval)
        finally:
            follower.close()

    def _account(self, request: web.Request) -> Account:
        address = request.remote or "?"
        if self._failures.exhausted(address):
            raise ApiError(429, "too many failed credentials from this address: slow down")
        if "token" in request.query:
            self._failures.allow(address)
            raise ApiError(400, "tokens travel in the Authorization header only, never in a URL")
        header = request.headers.get("Authorization", "")
        token = header[7:].strip() if header.startswith("Bearer ") else ""
        if not token:
            raise ApiError(401, "missing account token (Authorization: Bearer ...)")
        account = accounts.authenticate(self.store, token)
        if account is None:
            self._failures.allow(address)
            raise ApiError(401, "invalid, rotated or disabled account token")
        request["token_hash"] = accounts.hash_token(token)
        return account

    def _supervisor(self, request: web.Request, action: str) -> Account:
        account = self._account(request)
        if account.role != "supervisor":
            raise ApiError(403, f"only a supervisor can {action} ({account.name} is not one)")
        return account

    @staticmethod
    def _cid(request: web.Request) -> int:
        raw = request.match_info["id"]
        if not is_number(raw):
            raise ApiError(404, f"conversation {raw[:40]!r} not found")
        return int(raw)

    @staticmethod
    async def _body(request: web.Request) -> dict[str, Any]:
        return json_object(await read_body(request, ApiLimits.body_timeout))

    @staticmethod
    def _string(body: dict[str, Any], key: str) -> str:
        value = body.get(key)
        if not isinstance(value, str) or not value.strip():
            raise ApiError(422, f"{key} must be a non-empty string")
        try:
            value.encode("utf-8")
        except UnicodeEncodeError:
            # JSON can carry a lone surrogate ("\ud800"); no UTF-8 text, and SQLite, can.
            raise ApiError(422, f"{key} is not valid Unicode (a lone surrogate)") from None
        return value

    # --- reading ------------------------------------------------------------------------

    async def me(self, request: web.Request) -> web.Response:
        account = self._account(request)
        return web.json_response({"name": account.name, "role": account.role})

    async def presence(self, request: web.Request) -> web.Response:
        """The console's heartbeat, and where its agent is: ``{"status": "online" | "away" |
        "offline"}`` (optional; routing assigns only to ``online``, the wait estimate counts
        only them)."""
        account = self._account(request)
        body = await self._body(request)
        status = body.get("status")
        if status is not None and status not in presence.PRESENCES:
            raise ApiError(422, f"status must be one of {', '.join(presence.PRESENCES)}")
        lc.register_agent(self.store, account.name, role=account.role)
        if status is not None:
            presence.set_presence(self.store, account.name, status)
        return web.json_response({"ok": True})

    async def wall(self, request: web.Request) -> web.Response:
        """Every live conversation, and the event id to stream from so nothing is missed;
        with ``?ids=1,2,3`` those conversations in any state (to refresh after events)."""
        self._account(request)
        if "ids" in request.query:
            ids = _ids(request.query["ids"])
            return web.json_response(
                {"conversations": wall_rows(self.store, ids=ids)}, dumps=_dumps
            )
        # The id first: an event that commits between the two reads is streamed again, and
        # applying a conversation's newer row twice is harmless; missing one would not be.
        head = last_event_id(self.store)
        return web.json_response(
            {"last_event_id": head, "conversations": wall_rows(self.store)}, dumps=_dumps
        )

    async def conversation(self, request: web.Request) -> web.Response:
        account = self._account(request)
        reader = oversight.reader_of(account.name, account.role)
        cid = self._cid(request)
        conv = get_conversation(self.store, cid)
        q = request.query
        # A console following the feed asks for the parts it needs (``?messages=0``,
        # ``?context=0``): the row alone is one indexed read.
        last = _count(q.get("messages", "500"), "messages", 500)
        return web.json_response(
            {
                "conversation": conv,
                "messages": transcript(self.store, cid, last=last, reader=reader) if last else [],
                "context": conversation_context(self.store, cid)
                if q.get("context", "1") != "0"
                else None,
                "drafts": draft_store.list_drafts(self.store, cid)[-20:],
                # The hand-over summary that came with a transfer to the present owner.
                "handover": handover.for_owner(self.store, cid),
            },
            dumps=_dumps,
        )

    async def messages(self, request: web.Request) -> web.Response:
        """A window of the transcript, notes included: ``?after=ID`` (what is new), ``?last=N``
        (the newest N), or ``?before=ID`` (the N just before, scrolling back). A whisper only
        for its addressee, its author and supervisors."""
        account = self._account(request)
        reader = oversight.reader_of(account.name, account.role)
        cid = self._cid(request)
        get_conversation(self.store, cid)  # 404 for a conversation that does not exist
        q = request.query
        limit = _count(q.get("limit", "200"), "limit", 500)
        if "before" in q:
            before = _count(q["before"], "before")
            rows = earlier_messages(self.store, cid, before, limit=limit, reader=reader)
        elif "after" in q:
            after = _count(q["after"], "after")
            rows = transcript(self.store, cid, after=after, limit=limit, reader=reader)
        else:
            last = _count(q.get("last", "200"), "last", 500)
            rows = transcript(self.store, cid, last=last, reader=reader)
        return web.json_response({"messages": rows}, dumps=_dumps)

    async def claim_next(self, request: web.Request) -> web.Response:
        """Claim the first conversation in the queue (policy order) that nobody took first."""
        account = self._account(request)
        routing = self.routing
        cid = claim_next(
            self.store,
            account.name,
            lambda rows: [r["id"] for r in queue_order(rows)],
            capacity=routing.capacity_of(account.name) if routing.enabled else None,
        )
        if cid is None:
            raise ApiError(404, "nobody is waiting")
        return self._moved(cid)

    async def kb_search(self, request: web.Request) -> web.Response:
        self._account(request)
        query = request.query.get("q", "")
        if len(query) > 2000:
            raise ApiError(413, "q is too long (limit 2000 characters)")
        try:
            limit = min(50, max(1, int(request.query.get("limit", "10"))))
        except ValueError:
            raise ApiError(400, "limit must be an integer") from None
        # The ranker the drafts and a local console's ctrl+k use, so both backends agree.
        hits = ranked_hits(self.store, query, limit)
        return web.json_response({"articles": [asdict(h) for h in hits]})

    async def draft_stats(self, request: web.Request) -> web.Response:
        """The drafts panel's figures; ``?since=`` (epoch seconds) for a window."""
        self._account(request)
        since = _seconds(request.query["since"], "since") if "since" in request.query else None
        return web.json_response(asdict(draft_store.draft_metrics(self.store, since)))

    async def metrics(self, request: web.Request) -> web.Response:
        """The supervisor's figures; ``?sla=`` one target for every level, or ``?sla_urgent=``
        and so on per level (the console's policy)."""
        self._supervisor(request, "see supervisor metrics")
        sla = _sla(request.query.get("sla", "120"), "sla")
        per_level = _sla_levels(request)
        return web.json_response(
            supervisor_metrics(self.store, sla_s=per_level or None, sla_seconds=sla), dumps=_dumps
        )

    # --- the stream ---------------------------------------------------------------------

    async def events(self, request: web.Request) -> web.StreamResponse:
        """Server-sent events: every feed event after ``Last-Event-ID`` (or ``?after=``),
        each with its message for ``message`` events; resumable without a gap or a repeat."""
        account = self._account(request)
        reader = oversight.reader_of(account.name, account.role)
        token_hash = request["token_hash"]
        raw = request.headers.get("Last-Event-ID") or request.query.get("after") or ""
        if raw and not is_number(raw):
            raise ApiError(400, "Last-Event-ID must be an event id from this stream")
        cursor = int(raw) if raw else last_event_id(self.store)
        if len(self._streams) >= MAX_STREAMS:
            raise ApiError(429, "too many open streams")
        if self._per_account.get(account.name, 0) >= MAX_STREAMS_PER_ACCOUNT:
            raise ApiError(429, f"too many open streams for {account.name}")
        self._per_account[account.name] = self._per_account.get(account.name, 0) + 1
        task = asyncio.current_task()
        assert task is not None
        self._streams.add(task)
        wake = asyncio.Event()
        self._wakes.add(wake)
        response = web.StreamResponse(
            headers={
                "Content-Type": "text/event-stream",
                "Cache-Control": "no-cache",
                "X-Accel-Buffering": "no",
            }
        )
        try:
            await response.prepare(request)
            await response.write(f"event: hello\ndata: {json.dumps(asdict(account))}\n\n".encode())
            last_check = time.monotonic()
            last_beat = last_check
            while not self._closing:
                # Cleared before the read: a move the pump announces after it sets it again.
                wake.clear()
                if cursor < self._head:
                    batch_ = self._batch(cursor)
                    data, last, full = batch_.for_reader(reader), batch_.last, batch_.full
                    if data:
                        await response.write(data)
                    batch = last > cursor
                    cursor = max(cursor, last)
                    if full:
                        continue
                else:
                    batch = False
                transport = request.transport
                if transport is None or transport.is_closing():
                    break  # the console went away: give its slot back now, not at a write
                now = time.monotonic()
                if now - last_check >= (TOKEN_BUSY_RECHECK_S if batch else TOKEN_RECHECK_S):
                    if not _still_valid(self.store, account.name, token_hash):
                        await response.write(
                            b'event: revoked\ndata: {"error": "this account token was disabled'
                            b' or rotated"}\n\n'
                        )
                        break
                    last_check = now
                if now - last_beat >= HEARTBEAT_S:
                    await response.write(b": keep-alive\n\n")
                    last_beat = now
                if self._head <= cursor and not self._closing:
                    with contextlib.suppress(TimeoutError):
                        await asyncio.wait_for(wake.wait(), TOKEN_RECHECK_S)
        except (ConnectionResetError, asyncio.CancelledError):
            pass
        finally:
            self._streams.discard(task)
            self._wakes.discard(wake)
            left = self._per_account.get(account.name, 1) - 1
            if left:
                self._per_account[account.name] = left
            else:
                self._per_account.pop(account.name, None)
        return response

    def _batch(self, cursor: int) -> _Batch:
        """The encoded events after ``cursor`` up to the pump's head (at most STREAM_BATCH),
        the last id, and whether more may follow.

        Consoles in step ask for the same range, which is read and encoded once and the bytes
        shared: a console then costs a write, not a query and a JSON encoding. The range ends
        at the head, never past it, so it is the same for every console that asks: ids are
        given in commit order, and once the head is visible every smaller id is final.
        """
        head = self._head
        if cursor >= head:
            return _Batch(b"", cursor, False)
        key = (cursor, head)
        hit = self._encoded.get(key)
        if hit is not None:
            return hit
        rows = read_events(self.store, cursor, STREAM_BATCH)
        events = [e for e in rows if e.id <= head]
        full = len(rows) == STREAM_BATCH and len(events) == len(rows)
        shared, parts = self._encode(events)
        result = _Batch(shared, events[-1].id if events else head, full, parts)
        if len(self._encoded) > 256:
            self._encoded.clear()
        self._encoded[key] = result
        return result

    def _encode(self, batch: list[Event]) -> tuple[bytes, tuple[_Part, ...] | None]:
        """The batch's bytes for a reader of every event, and (only when it holds a whisper)
        each event's bytes with who may read it, for the other readers.

        First a ``rows`` event: the wall rows of the conversations the batch touched, read
        after its events, so a console has every row as new as the events that follow it
        without asking (``GET wall?ids=`` from each console after each batch cost the server
        more than the stream itself). No ``id:``: resuming from ``Last-Event-ID`` is the
        feed's alone.
        """
        messages = messages_of(self.store, [e.message_id for e in batch if e.message_id])
        out: list[_Part] = []
        touched = sorted({e.conversation_id for e in batch if e.conversation_id is not None})
        if touched:
            rows = {"conversations": wall_rows(self.store, ids=touched)}
            out.append((f"event: rows\ndata: {_dumps(rows)}\n\n".encode(), None))
        private = False
        for e in batch:
            payload = asdict(e)
            if e.message_id is not None and e.message_id in messages:
                payload["message"] = messages[e.message_id]
            whisper = e.kind == "message" and bool((e.data or {}).get(oversight.WHISPER))
            private = private or whisper
            chunk = f"id: {e.id}\nevent: feed\ndata: {_dumps(payload)}\n\n".encode()
            out.append((chunk, (e.data, e.actor) if whisper else None))
        return b"".join(chunk for chunk, _ in out), tuple(out) if private else None

    # --- moves: the actor is always the token's account ----------------------------------

    def _moved(self, cid: int) -> web.Response:
        conv = get_conversation(self.store, cid)
        return web.json_response(
            {"id": str(cid), "state": conv["state"], "owner": conv["owner"]}, dumps=_dumps
        )

    async def claim(self, request: web.Request) -> web.Response:
        account = self._account(request)
        cid = self._cid(request)
        lc.claim(self.store, cid, account.name)
        return self._moved(cid)

    async def reply(self, request: web.Request) -> web.Response:
        account = self._account(request)
        cid = self._cid(request)
        body = await self._body(request)
        draft_id = body.get("draft_id")
        if draft_id is not None and (
            not isinstance(draft_id, int) or isinstance(draft_id, bool) or not 0 < draft_id < 2**63
        ):
            # Past 2**63 - 1 no store can hold it (SQLite's OverflowError was a 500).
            raise ApiError(422, "draft_id must be a draft's id (a positive integer)")
        text = self._string(body, "text")
        if draft_id is not None:
            self._own_draft(draft_id, account, cid)
        mid = lc.agent_reply(self.store, cid, account.name, text, draft_id=draft_id)
        outcome = None
        if draft_id is not None:
            # What the agent did with the draft (sent as written, or edited first).
            outcome = draft_store.mark_sent(self.store, draft_id, text, message_id=mid)
        return web.json_response({"id": mid, "draft_outcome": outcome}, status=201)

    def _own_draft(self, draft_id: int, account: Account, cid: int | None = None) -> None:
        row = draft_store.get_draft(self.store, draft_id)
        if row["agent"] != account.name or (cid is not None and row["conversation_id"] != cid):
            raise ApiError(403, f"draft {draft_id} is not yours for this conversation")

    async def draft(self, request: web.Request) -> web.StreamResponse:
        """Write a draft on the server (the LLM and its key stay here) and stream it as
        server-sent events: ``started``, ``text`` pieces, maybe ``reset``, ``finished``."""
        account = self._account(request)
        cid = self._cid(request)
        body = await self._body(request)
        instruction = body.get("instruction")
        if instruction is not None:
            instruction = self._string(body, "instruction")
            if len(instruction) > MAX_INSTRUCTION:
                raise ApiError(413, f"instruction is too long (limit {MAX_INSTRUCTION})")
        if self.drafts is None:
            raise ApiError(404, "this server does not write drafts")
        conv = get_conversation(self.store, cid)
        if conv["state"] != "human" or conv["owner"] != account.name:
            if conv["state"] == "human":
                raise Taken(conv["owner"])
            raise ApiError(409, f"claim conversation {cid} before drafting a reply")
        service = self.drafts(self.store, account.name)
        response = web.StreamResponse(
            headers={"Content-Type": "text/event-stream", "Cache-Control": "no-cache"}
        )
        stream = service.draft(cid, instruction=instruction)
        try:
            # Inside the try, as the event streams do: the console can be gone already.
            await response.prepare(request)
            # aclosing: a console that goes away stops the draft now, and it is still logged.
            async with aclosing(stream) as events:
                async for event in events:
                    kind = type(event).__name__.removeprefix("Draft").lower()
                    payload = (
                        asdict(event) if is_dataclass(event) and not isinstance(event, type) else {}
                    )
                    await response.write(f"event: {kind}\ndata: {_dumps(payload)}\n\n".encode())
        except (ConnectionResetError, asyncio.CancelledError):
            pass
        return response

    async def discard_draft(self, request: web.Request) -> web.Response:
        account = self._account(request)
        raw = request.match_info["draft"]
        if not is_number(raw):
            raise ApiError(404, f"draft {raw[:40]!r} not found")
        self._own_draft(int(raw), account)
        return web.json_response({"discarded": draft_store.discard(self.store, int(raw))})

    async def note(self, request: web.Request) -> web.Response:
        account = self._account(request)
        cid = self._cid(request)
        body = await self._body(request)
        mid = lc.add_note(self.store, cid, account.name, self._string(body, "text"))
        return web.json_response({"id": mid}, status=201)

    async def escalate(self, request: web.Request) -> web.Response:
        account = self._account(request)
        cid = self._cid(request)
        body = await self._body(request)
        reason = body.get("reason", "agent_request")
        if not isinstance(reason, str) or not 0 < len(reason) <= 64:
            raise ApiError(422, "reason must be a string of 1-64 characters")
        reason = self._string({"reason": reason}, "reason")
        lc.escalate(self.store, cid, reasons=[reason], by=account.name)
        return self._moved(cid)

    async def hand_back(self, request: web.Request) -> web.Response:
        account = self._account(request)
        cid = self._cid(request)
        lc.hand_back(self.store, cid, by=account.name)
        return self._moved(cid)

    async def resolve(self, request: web.Request) -> web.Response:
        account = self._account(request)
        cid = self._cid(request)
        lc.resolve(self.store, cid, by=account.name)
        return self._moved(cid)

    async def assign(self, request: web.Request) -> web.Response:
        account = self._supervisor(request, "assign")
        cid = self._cid(request)
        body = await self._body(request)
        lc.assign(self.store, cid, self._string(body, "agent"), by=account.name)
        return self._moved(cid)

    async def transfer(self, request: web.Request) -> web.Response:
        account = self._supervisor(request, "transfer")
        cid = self._cid(request)
        body = await self._body(request)
        agent = self._string(body, "agent")
        summary: tuple[str, dict[str, Any]] | None = None
        if self.summaries is not None:
            # The summary the sender's console would show goes with it (store.handover). It is
            # a courtesy: whatever goes wrong writing it, the transfer still happens.
            try:
                summary = await self.summaries(self.store, cid, agent)
            except Exception as exc:
                log.warning("transfer of %s without a hand-over summary: %r", cid, exc)
        lc.transfer(
            self.store,
            cid,
            agent,
            by=account.name,
            summary=summary[0] if summary else None,
            summary_meta=summary[1] if summary else None,
        )
        return self._moved(cid)

    async def release(self, request: web.Request) -> web.Response:
        account = self._supervisor(request, "release")
        cid = self._cid(request)
        lc.release(self.store, cid, by=account.name)
        return self._moved(cid)

    # --- live oversight (issue 16): whisper, barge in, who has a conversation open -----------

    def _oversight_routes(self, r: web.UrlDispatcher) -> None:
        r.add_post("/conversations/{id}/whisper", self.whisper)
        r.add_post("/conversations/{id}/barge", self.barge)
        r.add_get("/conversations/{id}/viewers", self.viewers)
        r.add_post("/conversations/{id}/viewers", self.view)
        r.add_delete("/conversations/{id}/viewers", self.leave)

    async def whisper(self, request: web.Request) -> web.Response:
        """A supervisor's note to the agent holding the conversation (never the customer's)."""
        account = self._supervisor(request, "whisper")
        cid = self._cid(request)
        body = await self._body(request)
        mid = oversight.whisper(self.store, cid, self._string(body, "text"), by=account.name)
        return web.json_response({"id": mid}, status=201)

    async def barge(self, request: web.Request) -> web.Response:
        """A supervisor takes over a conversation another agent holds; ``from``: who held it."""
        account = self._supervisor(request, "barge in")
        cid = self._cid(request)
        displaced = oversight.barge(self.store, cid, by=account.name)
        conv = get_conversation(self.store, cid)
        return web.json_response(
            {"id": str(cid), "state": conv["state"], "owner": conv["owner"], "from": displaced},
            dumps=_dumps,
        )

    async def viewers(self, request: web.Request) -> web.Response:
        """Whose consoles have the conversation open now."""
        self._account(request)
        cid = self._cid(request)
        get_conversation(self.store, cid)  # 404 for a conversation that does not exist
        rows = oversight.viewers(self.store, ids=[cid]).get(cid, [])
        return web.json_response({"viewers": rows}, dumps=_dumps)

    async def view(self, request: web.Request) -> web.Response:
        """The caller's console shows the conversation (sent on open, then on its heartbeat)."""
        account = self._account(request)
        cid = self._cid(request)
        until = oversight.view(self.store, cid, account.name)
        return web.json_response({"until": until})

    async def leave(self, request: web.Request) -> web.Response:
        """The caller's console closed the conversation."""
        account = self._account(request)
        cid = self._cid(request)
        get_conversation(self.store, cid)
        return web.json_response({"left": oversight.leave(self.store, cid, account.name)})

    # --- what else a console does (the remote backend, console/backend/remote.py) -------------

    def _console_routes(self, r: web.UrlDispatcher) -> None:
        r.add_post("/conversations/{id}/final-notice", self.final_notice)
        r.add_post("/conversations/{id}/drafts/stale", self.drafts_stale)
        r.add_get("/conversations/{id}/revealed", self.revealed)
        r.add_get("/conversations/{id}/summary", self.summary)
        r.add_post("/messages/{mid}/reveal", self.reveal)
        r.add_get("/report", self.report)
        r.add_get("/series", self.series)

    async def final_notice(self, request: web.Request) -> web.Response:
        account = self._account(request)  # the store refuses anyone but a supervisor
        cid = self._cid(request)
        protection.final_notice(self.store, cid, by=account.name)
        return self._moved(cid)

    async def drafts_stale(self, request: web.Request) -> web.Response:
        """A newer customer message arrived: the caller's pending drafts here are stale."""
        account = self._account(request)
        cid = self._cid(request)
        conv = get_conversation(self.store, cid)
        if conv["state"] != "human" or conv["owner"] != account.name:
            return web.json_response({"stale": []})  # not theirs: nothing of theirs to mark
        return web.json_response({"stale": draft_store.mark_stale(self.store, cid)})

    async def revealed(self, request: web.Request) -> web.Response:
        """The abusive messages the caller chose to read in this conversation."""
        account = self._account(request)
        cid = self._cid(request)
        get_conversation(self.store, cid)
        ids = sorted(protection.revealed_ids(self.store, cid, account.name))
        return web.json_response({"ids": ids})

    async def reveal(self, request: web.Request) -> web.Response:
        account = self._account(request)
        raw = request.match_info["mid"]
        if not is_number(raw):
            raise ApiError(404, f"message {raw[:40]!r} not found")
        protection.reveal(self.store, int(raw), by=account.name)
        return web.json_response({"revealed": int(raw)})

    async def summary(self, request: web.Request) -> web.Response:
        """The hand-over summary for the caller: the one a transfer brought them, else the
        one the server writes now (its LLM's when configured, else embedded)."""
        account = self._account(request)
        cid = self._cid(request)
        get_conversation(self.store, cid)
        passed = handover.for_owner(self.store, cid)
        if passed is not None and passed["summary"]:
            return web.json_response(
                {"summary": passed["summary"], "from": passed["author"]}, dumps=_dumps
            )
        if self.summaries is None:
            raise ApiError(404, "this server does not write summaries")
        _text, meta = await self.summaries(self.store, cid, account.name)
        return web.json_response({"summary": meta, "from": None}, dumps=_dumps)

    async def report(self, request: web.Request) -> web.Response:
        """``tandem report``'s figures over ``[since, until)`` (the supervisor view's)."""
        self._supervisor(request, "see the report")
        q = request.query
        until = _seconds(q["until"], "until") if "until" in q else time.time()
        since = _seconds(q.get("since", str(until - 86_400)), "since")
        sla_s = _sla_levels(request) or dict.fromkeys(LEVELS, _sla(q.get("sla", "600"), "sla"))
        return web.json_response(
            support_report(self.store, since=since, until=until, sla_s=sla_s), dumps=_dumps
        )

    async def series(self, request: web.Request) -> web.Response:
        """The supervisor view's sparklines: buckets of ``bucket`` seconds since ``since``."""
        self._supervisor(request, "see the report")
        q = request.query
        at = _seconds(q["at"], "at") if "at" in q else time.time()
        since = _seconds(q.get("since", str(at - 6 * 3600)), "since")
        bucket = _seconds(q.get("bucket", "600"), "bucket")
        if since >= at:
            raise ApiError(400, "since must be before at")
        if bucket < 10 or (at - since) / bucket > 1000:
            raise ApiError(400, "bucket must be at least 10 s and at most 1000 buckets")
        sla_s = _sla_levels(request) or dict.fromkeys(LEVELS, _sla(q.get("sla", "600"), "sla"))
        return web.json_response(
            supervisor_series(self.store, since=since, sla_s=sla_s, bucket_s=bucket, at=at),
            dumps=_dumps,
        )


def _seconds(raw: str, what: str) -> float:
    try:
        value = float(raw)
    except ValueError:
        raise ApiError(400, f"{what} must be a number (epoch seconds)") from None
    if not math.isfinite(value) or value < 0:
        raise ApiError(400, f"{what} must be a non-negative number")
    return value


def _sla(raw: str, what: str) -> float:
    try:
        sla = float(raw)
    except ValueError:
        raise ApiError(400, f"{what} must be a number of seconds") from None
    if not 0 < sla < 86_400 * 7:
        raise ApiError(400, f"{what} must be between 0 and a week of seconds")
    return sla


def _sla_levels(request: web.Request) -> dict[str, float]:
    """``?sla_<level>=seconds`` for the levels given."""
    return {
        level: _sla(request.query[f"sla_{level}"], f"sla_{level}")
        for level in LEVELS
        if f"sla_{level}" in request.query
    }


def _still_valid(store: Store, name: str, token_hash: str) -> bool:
    return accounts.token_is_current(store, name, token_hash)


def _count(raw: str, what: str, cap: int | None = None) -> int:
    if not is_number(raw):
        raise ApiError(400, f"{what} must be a non-negative integer")
    return min(int(raw), cap) if cap is not None else int(raw)


def _ids(raw: str) -> list[int]:
    parts = [p for p in raw.split(",") if p]
    if len(parts) > 500:
        raise ApiError(400, "at most 500 ids at once")
    return [_count(p, "ids") for p in parts]


def _error(status: int, message: str, code: str | None = None, **extra: Any) -> web.Response:
    body: dict[str, Any] = {"error": message}
    if code:
        body["code"] = code
    body.update(extra)
    return web.json_response(body, status=status)


def _dumps(value: Any) -> str:
    return json.dumps(value, separators=(",", ":"), default=str)
