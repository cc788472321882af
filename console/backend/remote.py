"""The remote backend: a console connected to ``tandem serve`` (``tandem console --server``).

Everything goes through the agent API under ``/agent/v1/`` with the account's token in the
``Authorization`` header (never in a URL). The server takes the name and role from the token;
this side only asks. Refusals come back as the store's own exceptions (409 ``taken`` is
``Taken("taken by ana")``), so the screens handle both backends the same way. A 401 is
:class:`SessionEnded`: the token was disabled or rotated, and the console says so and closes.

The change feed is the server's event stream (server-sent events). It resumes from the last
event id it saw (``Last-Event-ID``), so a dropped connection loses nothing and repeats nothing;
while it is down the reader is told (``on_status``) and the console shows a banner.

Blocking ``http.client`` on purpose: every call runs on a console thread (the writer, the
reader, a worker), never on the event loop; each thread keeps its own keep-alive connection.
"""

from __future__ import annotations

import asyncio
import contextlib
import http.client
import json
import socket
import ssl
import threading
from collections import deque
from collections.abc import AsyncIterator, Callable, Iterator, Mapping, Sequence
from dataclasses import fields
from http import HTTPMethod
from typing import TYPE_CHECKING, Any
from urllib.parse import urlencode, urlsplit

from console.backend.base import FeedEvent, Replied, Runner, SessionEnded, StatusCallback
from store.drafts import DraftMetrics, EngineTiming
from store.errors import (
    DatabaseUnavailable,
    Forbidden,
    InvalidInput,
    InvalidTransition,
    NotFound,
    StoreError,
    Taken,
)
from store.kb import KbHit
from store.routing import AtCapacity

if TYPE_CHECKING:
    from console.assist.service import DraftEvent
    from console.assist.summary import HandoverSummary
    from console.llm import LLM
    from console.policy import PolicySettings

PREFIX = "/agent/v1"
TIMEOUT_S = 15.0
"""A request that takes longer is a server in trouble: the console says so instead of hanging."""
STREAM_IDLE_S = 40.0
"""The server sends a keep-alive every 15 s: this long without a byte is a dead connection."""
RECONNECT_S = (0.2, 0.5, 1.0, 2.0, 5.0)
"""Waits between reconnection attempts, the last one repeated."""
MESSAGE_CACHE = 2000
ROW_CACHE = 5000
"""Wall rows the stream carried, kept for the reader (a wall of live conversations fits)."""


class RemoteBackend:
    """The agent API at ``url`` with ``token``.

    Asks the server who the token belongs to (``GET /me``) at once: a wrong URL or token
    fails the command with one line, before any screen.

    :param ca_file: a CA bundle to trust for ``https`` (a self-signed server certificate);
        default: the system's
    """

    def __init__(self, url: str, token: str, *, ca_file: str | None = None) -> None:
        parts = urlsplit(url.rstrip("/"))
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise InvalidInput(f"server URL must be http(s)://host[:port], got {url!r}")
        if parts.username or parts.password or parts.query:
            raise InvalidInput(
                "the server URL carries no credentials and no query (the token does)"
            )
        self.url = f"{parts.scheme}://{parts.netloc}{parts.path}"
        self.where = self.url
        self._https = parts.scheme == "https"
        self._host = parts.hostname
        self._port = parts.port or (443 if self._https else 80)
        self._prefix = parts.path + PREFIX
        self._token = token
        self._tls = ssl.create_default_context(cafile=ca_file) if self._https else None
        self._local = threading.local()
        self._conns: list[http.client.HTTPConnection] = []
        self._lock = threading.Lock()
        me = self.call("GET", "/me")
        self.agent: str = str(me["name"])
        self.supervisor: bool = me["role"] == "supervisor"

    # --- HTTP -----------------------------------------------------------------------------

    def connect(self, timeout: float = TIMEOUT_S) -> http.client.HTTPConnection:
        """A new connection to the server (not shared: the caller closes it)."""
        if self._tls is not None:
            return http.client.HTTPSConnection(
                self._host, self._port, timeout=timeout, context=self._tls
            )
        return http.client.HTTPConnection(self._host, self._port, timeout=timeout)

    def _conn(self) -> http.client.HTTPConnection:
        conn: http.client.HTTPConnection | None = getattr(self._local, "conn", None)
        if conn is None:
            conn = self.connect()
            self._local.conn = conn
            with self._lock:
                self._conns.append(conn)
        return conn

    def _drop(self) -> None:
        conn = getattr(self._local, "conn", None)
        if conn is not None:
            conn.close()
            self._local.conn = None

    def headers(self, extra: Mapping[str, str] | None = None) -> dict[str, str]:
        out = {"Authorization": f"Bearer {self._token}", "Accept": "application/json"}
        out.update(extra or {})
        return out

    def path(self, path: str, query: Mapping[str, Any] | None = None) -> str:
        return self._prefix + path + (("?" + urlencode(query)) if query else "")

    def call(
        self,
        method: str,
        path: str,
        body: Mapping[str, Any] | None = None,
        query: Mapping[str, Any] | None = None,
    ) -> Any:
        """One request on this thread's connection; the answer's JSON, or the store's exception."""
        data = json.dumps(body).encode() if body is not None else None
        headers = self.headers({"Content-Type": "application/json"} if data is not None else None)
        target = self.path(path, query)
        for attempt in (1, 2):
            conn = self._conn()
            try:
                conn.request(method, target, body=data, headers=headers)
                response = conn.getresponse()
                raw = response.read()
                break
            except (http.client.RemoteDisconnected, BrokenPipeError, ConnectionResetError) as exc:
                # A kept-alive connection the server closed while idle: the request never got
                # there, so it is sent once more on a new one.
                self._drop()
                if attempt == 2:
                    raise DatabaseUnavailable(f"lost the connection to {self.url}: {exc}") from None
            except (OSError, http.client.HTTPException) as exc:
                self._drop()
                raise DatabaseUnavailable(f"cannot reach {self.url}: {_why(exc)}") from None
        if response.status >= 400:
            raise refusal(response.status, raw)
        return json.loads(raw) if raw else None

    def close(self) -> None:
        with self._lock:
            conns, self._conns = self._conns, []
        for conn in conns:
            conn.close()

    # --- moves ----------------------------------------------------------------------------

    def heartbeat(self, presence: str) -> None:
        self.call("POST", "/presence", {"status": presence})

    def set_presence(self, presence: str) -> None:
        self.call("POST", "/presence", {"status": presence})

    def _on(self, conversation_id: int, what: str, body: Mapping[str, Any] | None = None) -> Any:
        return self.call("POST", f"/conversations/{conversation_id}/{what}", body or {})

    def claim(self, conversation_id: int) -> None:
        self._on(conversation_id, "claim")

    def claim_next(self, capacity: int | None = None) -> int | None:
        del capacity  # the server's policy says it (serve --policy)
        try:
            moved = self.call("POST", "/claim-next", {})
        except NotFound:
            return None  # nobody is waiting
        return int(moved["id"])

    def reply(self, conversation_id: int, text: str, draft_id: int | None = None) -> Replied:
        body: dict[str, Any] = {"text": text}
        if draft_id is not None:
            body["draft_id"] = draft_id
        out = self._on(conversation_id, "reply", body)
        return Replied(int(out["id"]), out.get("draft_outcome"))

    def note(self, conversation_id: int, text: str) -> int:
        return int(self._on(conversation_id, "note", {"text": text})["id"])

    def hand_back(self, conversation_id: int) -> None:
        self._on(conversation_id, "hand-back")

    def resolve(self, conversation_id: int) -> None:
        self._on(conversation_id, "resolve")

    def assign(self, conversation_id: int, agent: str) -> None:
        self._on(conversation_id, "assign", {"agent": agent})

    def transfer(
        self, conversation_id: int, agent: str, summary: tuple[str, dict[str, Any]] | None = None
    ) -> None:
        del summary  # the server writes the hand-over summary itself (its LLM, its key)
        self._on(conversation_id, "transfer", {"agent": agent})

    def release(self, conversation_id: int) -> None:
        self._on(conversation_id, "release")

    def final_notice(self, conversation_id: int) -> None:
        self._on(conversation_id, "final-notice")

    def reveal(self, message_id: int) -> None:
        self.call("POST", f"/messages/{message_id}/reveal", {})

    def whisper(self, conversation_id: int, text: str) -> None:
        self._on(conversation_id, "whisper", {"text": text})

    def barge(self, conversation_id: int) -> None:
        self._on(conversation_id, "barge")

    def viewing(self, conversation_id: int, is_open: bool) -> None:
        # HTTPMethod, not a bare "DELETE": the SQL-outside-the-store check reads that as SQL.
        method = HTTPMethod.POST if is_open else HTTPMethod.DELETE
        self.call(method, f"/conversations/{conversation_id}/viewers")

    # --- reads ----------------------------------------------------------------------------

    def earlier_messages(self, conversation_id: int, before: int) -> list[dict[str, Any]]:
        path = f"/conversations/{conversation_id}/messages"
        return list(self.call("GET", path, query={"before": before, "limit": 100})["messages"])

    def recent_messages(self, conversation_id: int, last: int = 50) -> list[dict[str, Any]]:
        path = f"/conversations/{conversation_id}/messages"
        rows = self.call("GET", path, query={"last": last})["messages"]
        return [m for m in rows if m["role"] != "note"]

    def kb_search(self, query: str, limit: int) -> list[KbHit]:
        hits = self.call("GET", "/kb", query={"q": query[:2000], "limit": limit})["articles"]
        return [
            KbHit(h["id"], h["title"], h["body"], h.get("tags") or "", float(h["score"]))
            for h in hits
        ]

    def draft_metrics(self, since: float | None) -> DraftMetrics:
        query = {"since": since} if since is not None else None
        return draft_metrics_from(self.call("GET", "/drafts/stats", query=query))

    def support_report(
        self, *, since: float, until: float, sla_s: Mapping[str, float]
    ) -> dict[str, Any]:
        query = {"since": since, "until": until, **_sla_query(sla_s)}
        return dict(self.call("GET", "/report", query=query))

    def supervisor_series(
        self, *, since: float, sla_s: Mapping[str, float], bucket_s: float, at: float
    ) -> dict[str, Any]:
        query = {"since": since, "at": at, "bucket": bucket_s, **_sla_query(sla_s)}
        return dict(self.call("GET", "/series", query=query))

    def handover(
        self, conversation_id: int, llm: LLM | None
    ) -> Iterator[tuple[HandoverSummary, str | None]]:
        del llm  # the server writes it, with its own LLM when it has one
        from console.assist.summary import from_meta

        try:
            out = self.call("GET", f"/conversations/{conversation_id}/summary")
        except NotFound:
            return  # a server without summaries, or a conversation gone
        summary = from_meta(out.get("summary") or {})
        if summary is not None:
            yield summary, out.get("from")

    def transfer_summary(
        self, conversation_id: int, agent: str, llm: LLM | None
    ) -> tuple[str, dict[str, Any]] | None:
        return None  # the server writes it with the transfer

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
        raise StoreError(
            "the what-if replay reads the whole history: run `tandem whatif` on the server host"
        )

    def open_feed(self, wake: threading.Event, on_status: StatusCallback) -> RemoteFeed:
        return RemoteFeed(self, wake, on_status)

    def warm(self) -> None:
        return None  # the server keeps the knowledge base's index

    # --- drafts ---------------------------------------------------------------------------

    def drafts(self, llm: LLM | None, runner: Runner) -> RemoteDrafts:
        del llm  # drafts are written on the server: the LLM key never leaves it
        return RemoteDrafts(self, runner)


class RemoteDrafts:
    """Drafts written on the server, streamed to the composer."""

    def __init__(self, backend: RemoteBackend, runner: Runner) -> None:
        self.backend = backend
        self.runner = runner

    async def draft(
        self, conversation_id: int, *, instruction: str | None = None
    ) -> AsyncIterator[DraftEvent]:
        """The server's draft events, read on a thread and handed to the event loop."""
        loop = asyncio.get_running_loop()
        queue: asyncio.Queue[DraftEvent | BaseException | None] = asyncio.Queue()
        stop = threading.Event()
        conn = self.backend.connect(timeout=120.0)
        body = {"instruction": instruction} if instruction else {}

        def read() -> None:
            try:
                conn.request(
                    "POST",
                    self.backend.path(f"/conversations/{conversation_id}/draft"),
                    body=json.dumps(body).encode(),
                    headers=self.backend.headers({"Content-Type": "application/json"}),
                )
                response = conn.getresponse()
                if response.status >= 400:
                    raise refusal(response.status, response.read())
                events: list[DraftEvent] = []
                for kind, data in sse(response):
                    if stop.is_set():
                        return
                    event = draft_event(kind, data)
                    if event is not None:
                        events.append(event)
                        loop.call_soon_threadsafe(queue.put_nowait, event)
                if not stop.is_set():
                    # A stream that ends without its "finished" (the server died, a proxy cut
                    # it) ends the draft as incomplete, never as if it were done.
                    cut = cut_short(events, "the connection to the server ended mid-draft")
                    if cut is not None:
                        loop.call_soon_threadsafe(queue.put_nowait, cut)
                loop.call_soon_threadsafe(queue.put_nowait, None)
            except StoreError as exc:
                loop.call_soon_threadsafe(queue.put_nowait, exc)
            except (OSError, http.client.HTTPException, ValueError, AttributeError) as exc:
                if not stop.is_set():
                    lost = DatabaseUnavailable(f"the draft's stream broke: {_why(exc)}")
                    loop.call_soon_threadsafe(queue.put_nowait, lost)
            finally:
                conn.close()

        thread = threading.Thread(target=read, name="tandem-remote-draft", daemon=True)
        thread.start()
        try:
            while True:
                item = await queue.get()
                if item is None:
                    return
                if isinstance(item, BaseException):
                    raise item
                yield item
        finally:
            # The agent left or asked for another draft: closing the socket stops the server's
            # draft, which logs it as stopped.
            stop.set()
            hang_up(conn)

    async def mark_stale(self, conversation_id: int) -> bool:
        backend = self.backend
        out = await self.runner.run(
            lambda: backend.call("POST", f"/conversations/{conversation_id}/drafts/stale", {})
        )
        return bool(out["stale"])

    def discard_soon(self, draft_id: int) -> None:
        backend = self.backend
        self.runner.run_soon(lambda: backend.call("POST", f"/drafts/{draft_id}/discard", {}))

    def close(self) -> None:
        return None  # nothing held: each draft's stream closes with it


class RemoteFeed:
    """The server's event stream for the reader thread, kept open by a thread of its own.

    The stream thread reads events into a queue and wakes the reader; on a dropped connection
    it says so (``on_status``) and reconnects from the last event id it received.
    """

    batch = 500

    def __init__(self, backend: RemoteBackend, wake: threading.Event, on_status: StatusCallback):
        self.backend = backend
        self.wake = wake
        self.on_status = on_status
        self._cursor = 0
        self._received = 0
        self._queue: deque[FeedEvent] = deque()
        self._messages: dict[int, dict[str, Any]] = {}
        # The newest wall row of each conversation the stream carried (a ``rows`` event comes
        # ahead of its batch's events, so a row here is as new as any event read after it).
        self._rows: dict[int, dict[str, Any]] = {}
        self._ended: str | None = None
        self._stop = threading.Event()
        self._conn: http.client.HTTPConnection | None = None
        self._thread: threading.Thread | None = None
        self.reconnects = 0
        """How many times the stream was opened again after a drop (tests read it)."""

    @property
    def cursor(self) -> int:
        return self._cursor

    def snapshot(self) -> tuple[list[dict[str, Any]], int]:
        wall = self.backend.call("GET", "/wall")
        self._cursor = self._received = int(wall["last_event_id"])
        self._thread = threading.Thread(target=self._follow, name="tandem-stream", daemon=True)
        self._thread.start()
        return list(wall["conversations"]), self._cursor

    def poll(self) -> list[FeedEvent]:
        if self._ended is not None and not self._queue:
            raise SessionEnded(self._ended)
        out: list[FeedEvent] = []
        while self._queue and len(out) < self.batch:
            out.append(self._queue.popleft())
        if out:
            self._cursor = out[-1].id
        return out

    def rows(self, ids: list[int]) -> list[dict[str, Any]]:
        carried = self._rows
        rows = [row for i in ids if (row := carried.get(i)) is not None]
        ids = [i for i in ids if i not in carried]  # a server that sends no rows: ask it
        for i in range(0, len(ids), 500):
            chunk = ",".join(str(x) for x in ids[i : i + 500])
            rows += self.backend.call("GET", "/wall", query={"ids": chunk})["conversations"]
        return rows

    def conversation(self, conversation_id: int) -> dict[str, Any]:
        out = self.backend.call(
            "GET", f"/conversations/{conversation_id}", query={"messages": 0, "context": 0}
        )
        return dict(out["conversation"])

    def transcript(
        self,
        conversation_id: int,
        *,
        after: int = 0,
        last: int | None = None,
        limit: int | None = None,
    ) -> list[dict[str, Any]]:
        path = f"/conversations/{conversation_id}/messages"
        if last is not None:
            return list(self.backend.call("GET", path, query={"last": last})["messages"])
        rows: list[dict[str, Any]] = []
        while True:
            page = min(limit - len(rows), 500) if limit is not None else 500
            got = self.backend.call("GET", path, query={"after": after, "limit": page})["messages"]
            rows += got
            if len(got) < page or (limit is not None and len(rows) >= limit):
                return rows
            after = got[-1]["id"]

    def context(self, conversation_id: int) -> dict[str, Any]:
        out = self.backend.call(
            "GET", f"/conversations/{conversation_id}", query={"messages": 0, "context": 1}
        )
        return dict(out["context"])

    def metrics(self, sla_s: Mapping[str, float]) -> dict[str, Any]:
        return dict(self.backend.call("GET", "/metrics", query=_sla_query(sla_s)))

    def revealed(self, conversation_id: int) -> set[int]:
        ids = self.backend.call("GET", f"/conversations/{conversation_id}/revealed")["ids"]
        return {int(i) for i in ids}

    def message(self, message_id: int) -> dict[str, Any] | None:
        return self._messages.get(message_id)

    def close(self) -> None:
        self._stop.set()
        conn = self._conn
        if conn is not None:
            hang_up(conn)  # the stream thread's read ends at once
        if self._thread is not None and self._thread is not threading.current_thread():
            self._thread.join(timeout=2)

    # --- the stream thread ----------------------------------------------------------------

    def _follow(self) -> None:
        failures = 0
        down = False
        while not self._stop.is_set():
            try:
                for _ in self._stream():
                    if down:
                        down, failures = False, 0
                        self.on_status(None)
            except SessionEnded as exc:
                self._end(str(exc))
                return
            except (
                OSError,
                http.client.HTTPException,
                StoreError,
                ValueError,
                AttributeError,
            ) as exc:
                # (AttributeError: http.client reading a response whose connection close() took
                # away, which is how the reader stops the stream.)
                if self._stop.is_set():
                    return
                if not down:
                    down = True
                    self.on_status(
                        f"connection to {self.backend.url} lost ({_why(exc)}): reconnecting…"
                        " live updates are paused"
                    )
            if self._stop.is_set() or self._ended is not None:
                return
            down = True
            self._stop.wait(RECONNECT_S[min(failures, len(RECONNECT_S) - 1)])
            failures += 1
            self.reconnects += 1

    def _stream(self) -> Iterator[None]:
        """Read the stream from the last event received; yields once connected, and once per
        event (the caller only needs to know it is live)."""
        conn = self.backend.connect(timeout=STREAM_IDLE_S)
        self._conn = conn
        try:
            conn.request(
                "GET",
                self.backend.path("/events"),
                headers=self.backend.headers(
                    {"Accept": "text/event-stream", "Last-Event-ID": str(self._received)}
                ),
            )
            response = conn.getresponse()
            if response.status == 401:
                raise SessionEnded(_error_text(response.read()) or "the server refused the token")
            if response.status >= 400:
                raise refusal(response.status, response.read())
            yield None
            for kind, data in sse(response):
                if kind == "revoked":
                    raise SessionEnded("the server disabled or rotated this account's token")
                if kind == "rows":
                    self._carry(json.loads(data)["conversations"])
                    continue
                if kind != "feed":
                    continue
                payload = json.loads(data)
                event_id = int(payload["id"])
                if event_id <= self._received:
                    continue  # never twice, whatever the server sends
                message = payload.get("message")
                if isinstance(message, dict) and payload.get("message_id") is not None:
                    if len(self._messages) >= MESSAGE_CACHE:
                        self._messages.clear()
                    self._messages[int(payload["message_id"])] = message
                self._queue.append(
                    FeedEvent(
                        event_id,
                        str(payload["kind"]),
                        payload.get("conversation_id"),
                        payload.get("message_id"),
                        payload.get("actor"),
                        payload.get("data"),
                    )
                )
                self._received = event_id
                self.wake.set()
                yield None
            raise ConnectionResetError("the server closed the stream")
        finally:
            conn.close()
            self._conn = None

    def _carry(self, rows: list[dict[str, Any]]) -> None:
        if len(self._rows) + len(rows) > ROW_CACHE:
            self._rows = {}  # the reader asks the server for any it then lacks
        for row in rows:
            self._rows[int(row["id"])] = row

    def _end(self, why: str) -> None:
        self._ended = why
        self.wake.set()


# --- helpers ----------------------------------------------------------------------------------


def hang_up(conn: http.client.HTTPConnection) -> None:
    """Close ``conn`` at once, even while another thread is blocked reading its response.

    ``close()`` alone waits for that read: the response's buffered reader is locked by the
    reading thread until the next bytes arrive (an event stream's keep-alive comes every 15 s,
    so closing a console took up to 15 s). Shutting the socket down first ends the read.
    """
    sock = conn.sock
    if sock is not None:
        with contextlib.suppress(OSError):
            sock.shutdown(socket.SHUT_RDWR)
    conn.close()


def sse(response: http.client.HTTPResponse) -> Iterator[tuple[str, str]]:
    """``(event, data)`` pairs of a server-sent event stream, as they arrive."""
    kind, data = "message", list[str]()
    while True:
        raw = response.readline()
        if not raw:
            return
        line = raw.decode("utf-8").rstrip("\r\n")
        if not line:
            if data:
                yield kind, "\n".join(data)
            kind, data = "message", []
        elif line.startswith(":"):
            continue  # a keep-alive
        else:
            name, _, value = line.partition(":")
            value = value.removeprefix(" ")
            if name == "event":
                kind = value
            elif name == "data":
                data.append(value)


def refusal(status: int, raw: bytes) -> StoreError:
    """The store's exception for an error answer of the agent API."""
    try:
        body = json.loads(raw)
    except ValueError:
        body = {}
    if not isinstance(body, dict):
        body = {}
    text = str(body.get("error") or f"the server answered {status}")
    code = body.get("code")
    if status == 401:
        return SessionEnded(text)
    if status == 403:
        return Forbidden(text)
    if status == 404:
        return NotFound(text)
    if status == 409:
        if code == "taken" and isinstance(body.get("owner"), str):
            return Taken(body["owner"])
        if code == "at_capacity":
            return AtCapacity(text)
        return InvalidTransition(text)
    if status in (400, 413, 422):
        return InvalidInput(text)
    if status in (429, 503):
        return DatabaseUnavailable(text)
    return StoreError(f"the server answered {status}: {text}")


def _error_text(raw: bytes) -> str:
    try:
        body = json.loads(raw)
    except ValueError:
        return ""
    return str(body.get("error") or "") if isinstance(body, dict) else ""


def _why(exc: BaseException) -> str:
    return str(exc) or type(exc).__name__


def _sla_query(sla_s: Mapping[str, float]) -> dict[str, float]:
    return {f"sla_{level}": seconds for level, seconds in sla_s.items()}


def draft_metrics_from(data: Mapping[str, Any]) -> DraftMetrics:
    """:class:`DraftMetrics` from the agent API's JSON."""
    known = {f.name for f in fields(DraftMetrics)}
    values = {k: v for k, v in data.items() if k in known}
    values["first_text_by_engine"] = {
        engine: EngineTiming(**timing)
        for engine, timing in (data.get("first_text_by_engine") or {}).items()
    }
    lost = data.get("llm_lost")
    values["llm_lost"] = EngineTiming(**lost) if isinstance(lost, dict) else None
    return DraftMetrics(**values)


def cut_short(events: Sequence[DraftEvent], why: str) -> DraftEvent | None:
    """The ending of a draft stream that stopped before its ``finished`` event: the draft as
    far as it came, marked incomplete (``None`` when it did finish; an error when it never
    started)."""
    from console.assist.service import DraftFinished, DraftReset, DraftStarted, DraftText

    if any(isinstance(e, DraftFinished) for e in events):
        return None
    started = next((e for e in events if isinstance(e, DraftStarted)), None)
    if started is None:
        raise DatabaseUnavailable(f"no draft: {why}")
    text: list[str] = []
    engine, model = started.engine, started.model
    for e in events:
        if isinstance(e, DraftText):
            text.append(e.text)
        elif isinstance(e, DraftReset):
            text, engine, model = [], e.engine, None
    return DraftFinished(
        started.draft_id,
        engine,
        model,
        "".join(text),
        started.kb_ids,
        None,
        0.0,
        None,
        False,
        incomplete=why,
    )


def draft_event(kind: str, data: str) -> DraftEvent | None:
    """One event of the server's draft stream as the composer's own draft events."""
    from console.assist.service import DraftFinished, DraftReset, DraftStarted, DraftText

    payload = json.loads(data)
    for name in ("kb_ids", "kb_titles"):
        if isinstance(payload.get(name), list):
            payload[name] = tuple(payload[name])
    cls: Any = {
        "started": DraftStarted,
        "text": DraftText,
        "reset": DraftReset,
        "finished": DraftFinished,
    }.get(kind)
    if cls is None:
        return None
    known = {f.name for f in fields(cls)}
    event: DraftEvent = cls(**{k: v for k, v in payload.items() if k in known})
    return event
