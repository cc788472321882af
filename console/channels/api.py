"""The channel API (DESIGN.md section 8): JSON over HTTP for chat channels and the web page.

Customers (through an integration) open a conversation, post messages with an idempotency
key, and read replies by polling or server-sent events. The integration token guards
creation; each conversation gets its own customer token (only its SHA-256 is stored), which
reads and writes that conversation and no other. Every refusal is a 4xx with
``{"error": "...", "code": "..."}`` (the code is for programs, the sentence for people);
bad input never reaches the store as anything but data. Ids are strings. The routes and their
answers are described in ``openapi.json`` beside this file, served at ``/v1/openapi.json``.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import hmac
import json
import logging
import math
import secrets
import time
from collections import OrderedDict, defaultdict
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any

from aiohttp import ClientPayloadError, web
from aiohttp.http_exceptions import HttpProcessingError

from console.channels.events import iso, public_event, public_message, public_name
from console.channels.reopening import reopen_router
from console.names import first_name
from console.policy import PolicySettings
from store import (
    DatabaseUnavailable,
    InvalidInput,
    InvalidTransition,
    NotFound,
    Store,
    StoreError,
    channel,
    queries,
    ratings,
)
from store import lifecycle as lc
from store.db import location
from store.feed import Event, Follower
from store.queries import get_conversation, transcript
from store.text import unicode_problem

STREAM_RETRY_MS = 2000
"""What a stream tells the browser to wait before reconnecting (the SSE ``retry:`` field)."""
STREAM_HEARTBEAT_S = 15.0
"""How long a quiet stream goes before a keep-alive comment (proxies close idle connections)."""
STREAM_CLOSED_CHECK_S = 1.0
"""How often a quiet stream checks that its client is still there, to give its slot back."""
STATIC = {"webchat.js": "text/javascript", "webchat.css": "text/css"}
WEB_GREETING = (
    "Hi{name}! I'm Pennant's virtual assistant. What can I help you with today? "
    "If you'd rather talk to a person, just say so."
)
CODES = {
    400: "bad_request",
    401: "unauthorized",
    403: "forbidden",
    404: "not_found",
    405: "method_not_allowed",
    408: "body_timeout",
    409: "conflict",
    413: "too_large",
    422: "invalid",
    429: "rate_limited",
    503: "unavailable",
}
"""The code of a refusal that has no more specific one."""
UNAVAILABLE = "the service cannot store messages right now; try again shortly"
"""What a client reads when the store fails: the cause (a path, a disk) is for the log."""
HEALTH_PROBE_S = 1.0
"""``/healthz`` tries a real write at most this often; in between it answers from the last."""

log = logging.getLogger("tandem.api")


@dataclass(frozen=True)
class ApiLimits:
    """Limits that keep one client from hurting the others."""

    max_text: int = 4000
    """Characters in one customer message."""
    max_body: int = 64 * 1024
    """Bytes in one request body (413 beyond)."""
    rate_per_s: float = 5.0
    """Sustained requests per second: per conversation (posts, reads), per client address for
    requests without a credential, and per address for failed credentials."""
    burst: int = 20
    """Requests a client may make at once before the rate applies."""
    integration_rate_per_s: float = 1000.0
    """Sustained conversation creations per second with the integration token. An integration
    speaks for many customers from one address, so it is not held to a per-address rate."""
    integration_burst: int = 2000
    max_streams: int = 1000
    """Concurrent server-sent-event streams in all."""
    max_streams_per_conversation: int = 4
    """Concurrent streams on one conversation. A customer token opens one conversation, so this
    is also the cap per token: one client cannot take the slots every other customer needs."""
    max_depth: int = 32
    """Nesting of arrays and objects in a request body (ours are two deep)."""
    idle_timeout: float = 30.0
    """Seconds a connection may wait for a request's head, first or next, before it is closed.
    (aiohttp's own default is an hour: a client that sends half a head, or nothing, holds a
    connection and its file descriptor that long.)"""
    body_timeout: float = 10.0
    """Seconds a request's body may take to arrive once its head has (408 beyond)."""


class _Buckets:
    """Token buckets keyed by client, refilled lazily (no timer task).

    At most ``max_keys`` clients are remembered. Keys are kept in order of last use, so when
    a new client comes and the table is full, the one idle longest is forgotten (its bucket
    has most likely refilled anyway); a busy client's debt is never wiped by a crowd of others.
    """

    def __init__(self, rate: float, burst: int, *, max_keys: int = 50_000) -> None:
        self.rate, self.burst, self.max_keys = rate, burst, max_keys
        self._state: OrderedDict[str, tuple[float, float]] = OrderedDict()

    def __len__(self) -> int:
        return len(self._state)

    def __contains__(self, key: str) -> bool:
        return key in self._state

    def exhausted(self, key: str) -> bool:
        """Whether ``key`` would be refused now (without spending a token)."""
        state = self._state.get(key)
        if state is None:
            return False
        tokens, last = state
        return min(float(self.burst), tokens + (time.monotonic() - last) * self.rate) < 1.0

    def wait(self, key: str) -> float:
        """Seconds until ``key`` has a token again (0 when it has one now)."""
        state = self._state.get(key)
        if state is None:
            return 0.0
        tokens, last = state
        tokens = min(float(self.burst), tokens + (time.monotonic() - last) * self.rate)
        return 0.0 if tokens >= 1.0 else (1.0 - tokens) / self.rate

    def allow(self, key: str) -> bool:
        now = time.monotonic()
        tokens, last = self._state.pop(key, (float(self.burst), now))
        tokens = min(float(self.burst), tokens + (now - last) * self.rate)
        allowed = tokens >= 1.0
        self._state[key] = (tokens - 1.0 if allowed else tokens, now)  # now the newest
        while len(self._state) > self.max_keys:
            self._state.popitem(last=False)  # the one idle longest
        return allowed


class ApiError(Exception):
    """A refusal with its HTTP status; the message goes to the client as ``error``.

    :param code: a machine-readable code (default: one per status, :data:`CODES`)
    :param retry_after: seconds to wait, sent as ``Retry-After`` (429 and 503)
    """

    def __init__(
        self, status: int, message: str, *, code: str | None = None, retry_after: float = 0.0
    ) -> None:
        super().__init__(message)
        self.status = status
        self.code = code or CODES.get(status, "error")
        self.retry_after = retry_after


def _refusal(
    status: int, message: str, code: str | None = None, *, retry_after: float = 0.0
) -> web.Response:
    headers = {}
    if status in (429, 503):
        # Whole seconds, at least 1: a client that retries at once is refused again.
        headers["Retry-After"] = str(max(1, math.ceil(retry_after)))
    return web.json_response(
        {"error": message, "code": code or CODES.get(status, "error")},
        status=status,
        headers=headers,
    )


def hash_token(token: str) -> str:
    """The stored form of a customer token."""
    return hashlib.sha256(token.encode("utf-8", "surrogatepass")).hexdigest()


class ChannelApi:
    """The aiohttp application and the state behind it (one store connection, one feed).

    :param db_path: the store
    :param token: the integration token that may create conversations (``None``: nobody may)
    :param limits: request limits
    :param web_page: serve the web chat page at ``/`` (and its conversation route)
    :param settings: the policy (where a closed conversation goes when the customer writes)
    """

    def __init__(
        self,
        db_path: str | Path,
        *,
        token: str | None,
        limits: ApiLimits | None = None,
        web_page: bool = True,
        poll_interval: float = 0.05,
        on_post: Callable[[], None] | None = None,
        settings: PolicySettings | None = None,
    ) -> None:
        self.db_path = location(db_path)
        self.token = token
        self.limits = limits or ApiLimits()
        self.web_page = web_page
        self.poll_interval = poll_interval
        self.on_post = on_post
        self.store = Store(self.db_path)
        # A customer writing into a closed conversation: the policy says where it goes.
        self._reopen = reopen_router(self.store, settings or PolicySettings())
        limits = self.limits
        # Anonymous requests per address; failed credentials per address (guessing tokens);
        # posts and reads per conversation; creations for the integration token.
        self._client_buckets = _Buckets(limits.rate_per_s, limits.burst)
        self._auth_failures = _Buckets(limits.rate_per_s, limits.burst)
        self._conversation_buckets = _Buckets(limits.rate_per_s, limits.burst)
        self._read_buckets = _Buckets(limits.rate_per_s, limits.burst)
        self._integration_bucket = _Buckets(limits.integration_rate_per_s, limits.integration_burst)
        self._subscribers: dict[int, set[asyncio.Queue[tuple[int, bytes] | None]]] = defaultdict(
            set
        )
        self._stream_count = 0
        self._health: tuple[float, str | None] = (-HEALTH_PROBE_S, None)
        self._pump: asyncio.Task[None] | None = None
        self.app = self._build()

    # --- plumbing ---------------------------------------------------------------------

    def _build(self) -> web.Application:
        _quiet_malformed_requests()
        app = web.Application(client_max_size=self.limits.max_body, middlewares=[self._errors])
        app.router.add_post("/v1/conversations", self.create_conversation)
        app.router.add_get("/v1/conversations/{id}", self.read_conversation)
        app.router.add_post("/v1/conversations/{id}/close", self.close_conversation)
        app.router.add_post("/v1/conversations/{id}/messages", self.post_message)
        app.router.add_get("/v1/conversations/{id}/messages", self.list_messages)
        app.router.add_get("/v1/conversations/{id}/stream", self.stream)
        app.router.add_post("/v1/conversations/{id}/rating", self.rate)
        app.router.add_get("/v1/openapi.json", self.openapi)
        app.router.add_get("/healthz", self.healthz)
        if self.web_page:
            app.router.add_get("/", self.page)
            for name in STATIC:
                app.router.add_get(f"/{name}", self.static)
            app.router.add_post("/web/conversations", self.create_web_conversation)
        app.on_startup.append(self._start_pump)
        app.on_shutdown.append(self._close_streams)
        app.on_cleanup.append(self._stop_pump)
        return app

    @web.middleware
    async def _errors(
        self, request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
    ) -> web.StreamResponse:
        address = request.remote or "?"
        try:
            if self._bearer(request) or "token" in request.query:
                # Credentialed requests are limited per conversation or per integration, not
                # per address: many customers may share one (an integration, a NAT). An address
                # that keeps presenting bad credentials is refused until it slows down.
                if self._auth_failures.exhausted(address):
                    raise ApiError(
                        429,
                        "too many failed credentials from this address: slow down",
                        retry_after=self._auth_failures.wait(address),
                    )
            elif not self._client_buckets.allow(address):
                raise ApiError(
                    429,
                    "too many requests: slow down",
                    retry_after=self._client_buckets.wait(address),
                )
            return await handler(request)
        except ApiError as exc:
            if exc.status in (401, 403):
                self._auth_failures.allow(address)
            return _refusal(exc.status, str(exc), exc.code, retry_after=exc.retry_after)
        except web.HTTPRequestEntityTooLarge:
            return _refusal(
                413,
                f"request body too large (limit {self.limits.max_body} bytes)",
                "body_too_large",
            )
        except web.HTTPException as exc:
            if exc.status >= 400:
                return _refusal(exc.status, (exc.reason or "error").lower())
            raise
        except NotFound as exc:
            return _refusal(404, str(exc), "conversation_not_found")
        except InvalidInput as exc:
            return _refusal(422, str(exc))
        except DatabaseUnavailable as exc:
            log.warning("%s %s: %s", request.method, request.path, exc)
            return _refusal(503, UNAVAILABLE, retry_after=2)
        except InvalidTransition as exc:
            return _refusal(409, str(exc), "invalid_state")
        except StoreError as exc:
            return _refusal(409, str(exc))

    async def _start_pump(self, _app: web.Application) -> None:
        self._pump = asyncio.create_task(self._pump_feed())

    async def _close_streams(self, _app: web.Application) -> None:
        for queues in list(self._subscribers.values()):
            for queue in list(queues):
                queue.put_nowait(None)

    async def _stop_pump(self, _app: web.Application) -> None:
        if self._pump:
            self._pump.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._pump
        self.store.close()

    async def _pump_feed(self) -> None:
        """One follower for all streams: fan each new public event out to its listeners."""
        follower = Follower(self.db_path, after=None)
        try:
            while True:
                events = follower.poll()
                for e in events:
                    listeners = self._subscribers.get(e.conversation_id or 0)
                    if not listeners:
                        continue
                    frame = self._frame(e)
                    if frame is None:
                        continue
                    for queue in list(listeners):
                        if queue.qsize() < 1000:
                            queue.put_nowait(frame)
                await asyncio.sleep(self.poll_interval if not events else 0)
        finally:
            follower.close()

    def _frame(self, e: Event) -> tuple[int, bytes] | None:
        """The server-sent event for a feed event (its id is the stream's cursor), if public."""
        reported = public_event(self.store, e)
        if reported is None:
            return None
        kind, payload = reported
        data = json.dumps(payload, separators=(",", ":"))
        return e.id, f"id: {e.id}\nevent: {kind}\ndata: {data}\n\n".encode()

    async def _json(self, request: web.Request) -> dict[str, Any]:
        if request.content_length and request.content_length > self.limits.max_body:
            raise ApiError(
                413,
                f"request body too large (limit {self.limits.max_body} bytes)",
                code="body_too_large",
            )
        body = json_object(await read_body(request, self.limits.body_timeout))
        _check_body(body, self.limits.max_depth)
        return body

    @staticmethod
    def _bearer(request: web.Request) -> str | None:
        header = request.headers.get("Authorization", "")
        if header.startswith("Bearer "):
            return header[7:].strip() or None
        return None

    def _is_integration(self, token: str | None) -> bool:
        return bool(
            # Compared as hashes: a header that is not UTF-8 (surrogate-escaped) cannot be
            # encoded as it is, and must be a 401, not a crash.
            token and self.token and hmac.compare_digest(hash_token(token), hash_token(self.token))
        )

    def _integration(self, request: web.Request) -> None:
        given = self._bearer(request)
        if not given:
            raise ApiError(
                401, "missing integration token (Authorization: Bearer ...)", code="missing_token"
            )
        if not self._is_integration(given):
            raise ApiError(401, "invalid integration token", code="invalid_token")

    @staticmethod
    def _conversation_id(request: web.Request) -> int:
        raw = request.match_info["id"]
        if not is_number(raw):
            raise ApiError(
                404, f"conversation {ascii(raw[:40])} not found", code="conversation_not_found"
            )
        return int(raw)

    def _conversation(
        self,
        request: web.Request,
        *,
        allow_query_token: bool = False,
        integration: bool = False,
    ) -> int:
        """The conversation the request names, if its token opens it.

        :param integration: the integration token opens it too (reading, closing)
        """
        cid = self._conversation_id(request)
        token = self._bearer(request) or (request.query.get("token") if allow_query_token else None)
        if not token:
            raise ApiError(
                401, "missing customer token (Authorization: Bearer ...)", code="missing_token"
            )
        try:
            expected = queries.customer_token_hash(self.store, cid)
        except NotFound:
            raise ApiError(
                404, f"conversation {cid} not found", code="conversation_not_found"
            ) from None
        if integration and self._is_integration(token):
            return cid
        if not expected or not hmac.compare_digest(expected, hash_token(token)):
            raise ApiError(403, "this token does not open this conversation", code="wrong_token")
        return cid

    @staticmethod
    def _cursor(raw: str | None) -> int:
        if raw in (None, ""):
            return 0
        if not is_number(raw):
            raise ApiError(
                400,
                "after must be a cursor returned by this API (a non-negative integer)",
                code="bad_cursor",
            )
        return int(raw)

    def _limit(self, buckets: _Buckets, key: str, message: str) -> None:
        if not buckets.allow(key):
            raise ApiError(429, message, retry_after=buckets.wait(key))

    def _open(self, customer: Any, channel: str) -> tuple[int, str]:
        """Open a conversation; return its id and its customer token (shown once, never stored)."""
        if customer is None:
            customer = {}
        if not isinstance(customer, dict):
            raise ApiError(422, "customer must be an object with name and external_id")
        name = customer.get("name") or "Customer"
        external_id = customer.get("external_id")
        if not isinstance(name, str) or len(name) > 64:
            raise ApiError(422, "customer.name must be a string of at most 64 characters")
        if external_id is not None and (not isinstance(external_id, str) or len(external_id) > 128):
            raise ApiError(422, "customer.external_id must be a string of at most 128 characters")
        token = secrets.token_urlsafe(24)
        cid = lc.open_conversation(
            self.store, name, external_id=external_id, channel=channel, token_hash=hash_token(token)
        )
        return cid, token

    def _describe(self, cid: int, *, for_integration: bool) -> dict[str, Any]:
        """A conversation's state as ``GET /v1/conversations/{id}`` answers it."""
        conv = get_conversation(self.store, cid)
        state = conv["state"]
        handler: dict[str, Any] | None = {
            "bot": {"kind": "bot"},
            "waiting": {"kind": "queue"},
            "human": {"kind": "agent"},
        }.get(state)
        name = public_name(conv["owner"]) if state == "human" else ""
        if handler is not None and name:
            handler["name"] = name
        rating = ratings.rating_of(self.store, cid)
        out: dict[str, Any] = {
            "id": str(cid),
            "state": state,
            "handled_by": handler,
            "channel": conv["channel"],
            "message_count": conv["message_count"],
            "created_at": iso(conv["created_at"]),
            "updated_at": iso(conv["updated_at"]),
            "resolved_at": iso(conv["resolved_at"]) if state == "resolved" else None,
            "rating": (
                {"score": rating["score"], "comment": rating["comment"]} if rating else None
            ),
        }
        if for_integration:
            # Triage is for the team and the integration, never shown to the customer.
            out["level"] = conv["level"]
            out["reasons"] = list(conv["reasons"])
            out["customer"] = {"name": conv["customer_name"], "external_id": conv["external_id"]}
        return out

    # --- routes -------------------------------------------------------------------------

    async def healthz(self, _request: web.Request) -> web.Response:
        # Up means able to store a customer's message: a process that answers while every
        # write fails (read-only file, full disk, damaged file) is not healthy.
        now = time.monotonic()
        if now - self._health[0] >= HEALTH_PROBE_S:
            try:
                self.store.probe_write()
                self._health = (now, None)
            except DatabaseUnavailable as exc:
                log.warning("healthz: %s", exc)
                self._health = (now, UNAVAILABLE)
        error = self._health[1]
        if error is not None:
            return web.json_response({"ok": False, "error": error}, status=503)
        return web.json_response({"ok": True})

    async def openapi(self, _request: web.Request) -> web.Response:
        text = resources.files("console.channels").joinpath("openapi.json").read_text("utf-8")
        return web.Response(text=text, content_type="application/json")

    async def page(self, _request: web.Request) -> web.Response:
        html = (
            resources.files("console.channels").joinpath("webchat.html").read_text(encoding="utf-8")
        )
        return web.Response(text=html, content_type="text/html", headers=_PAGE_HEADERS)

    async def static(self, request: web.Request) -> web.Response:
        name = request.path.lstrip("/")
        text = resources.files("console.channels").joinpath(name).read_text(encoding="utf-8")
        return web.Response(
            text=text,
            content_type=STATIC[name],
            headers={"Cache-Control": "no-cache", "X-Content-Type-Options": "nosniff"},
        )

    async def create_conversation(self, request: web.Request) -> web.Response:
        self._integration(request)
        if not self._integration_bucket.allow("integration"):
            raise ApiError(
                429,
                "too many new conversations: slow down",
                retry_after=self._integration_bucket.wait("integration"),
            )
        body = await self._json(request)
        cid, token = self._open(body.get("customer"), "api")
        return web.json_response({"id": str(cid), "customer_token": token}, status=201)

    async def create_web_conversation(self, request: web.Request) -> web.Response:
        body = await self._json(request)
        name = body.get("name") or "Web visitor"
        cid, token = self._open({"name": name}, "web")
        # The assistant speaks first, so the customer never faces an empty window; by first
        # name only when the name given is plainly one (console.names: "<b>Lee</b>" is not).
        first = first_name(name) if isinstance(name, str) and "name" in body else ""
        lc.bot_reply(
            self.store,
            cid,
            WEB_GREETING.format(name=f" {first}" if first else ""),
            meta={"engine": "embedded", "intent": "greeting"},
        )
        return web.json_response({"id": str(cid), "customer_token": token}, status=201)

    async def read_conversation(self, request: web.Request) -> web.Response:
        cid = self._conversation(request, integration=True)
        integration = self._is_integration(self._bearer(request))
        if not integration:
            self._limit(
                self._read_buckets, str(cid), "reading this conversation too often: slow down"
            )
        return web.json_response(self._describe(cid, for_integration=integration))

    async def close_conversation(self, request: web.Request) -> web.Response:
        self._integration(request)
        cid = self._conversation(request, integration=True)
        await self._json(request)  # no fields yet, but a malformed body is still refused
        try:
            lc.resolve(self.store, cid, by="integration", channel=True)
        except InvalidTransition as exc:
            if exc.state != "resolved":
                raise
            # Closing a closed conversation changes nothing: a retry gets the same answer.
        return web.json_response(self._describe(cid, for_integration=True))

    async def rate(self, request: web.Request) -> web.Response:
        cid = self._conversation(request)
        self._limit(
            self._conversation_buckets,
            str(cid),
            "too many requests in this conversation: slow down",
        )
        body = await self._json(request)
        score, comment = body.get("score"), body.get("comment")
        if isinstance(score, bool) or not isinstance(score, int) or not 1 <= score <= 5:
            raise ApiError(422, "score must be a whole number from 1 to 5", code="invalid_score")
        if comment is not None and not isinstance(comment, str):
            raise ApiError(422, "comment must be a string or null", code="invalid_comment")
        if isinstance(comment, str) and len(comment) > ratings.MAX_COMMENT:
            raise ApiError(
                413,
                f"comment is too long ({len(comment)} characters, limit {ratings.MAX_COMMENT})",
                code="text_too_long",
            )
        try:
            rated = ratings.rate(self.store, cid, score, comment)
        except InvalidTransition as exc:
            raise ApiError(409, str(exc), code="not_closed") from None
        return web.json_response(
            {
                "conversation_id": str(cid),
                "score": rated.score,
                "comment": rated.comment,
                "replaced": rated.replaced,
            },
            status=200 if rated.replaced else 201,
        )

    async def post_message(self, request: web.Request) -> web.Response:
        cid = self._conversation(request)
        self._limit(
            self._conversation_buckets,
            str(cid),
            "too many messages in this conversation: slow down",
        )
        body = await self._json(request)
        text, key = body.get("text"), body.get("idempotency_key")
        if not isinstance(text, str) or not text.strip():
            raise ApiError(422, "text must be a non-empty string", code="invalid_text")
        if len(text) > self.limits.max_text:
            raise ApiError(
                413,
                f"text is too long ({len(text)} characters, limit {self.limits.max_text})",
                code="text_too_long",
            )
        if "\x00" in text:
            raise ApiError(422, "text contains a NUL character", code="invalid_text")
        if key is not None and (not isinstance(key, str) or not key or len(key) > 200):
            raise ApiError(
                422,
                "idempotency_key must be a non-empty string of at most 200 characters",
                code="invalid_idempotency_key",
            )
        posted = lc.add_customer_message(
            self.store, cid, text, idempotency_key=key, reopen=self._reopen
        )
        if posted.duplicate:
            stored = queries.message(self.store, posted.message_id)
            if stored is None or stored["text"] != text:
                # The same key with other words is not a retry: storing neither silently
                # would lose the customer's message, so the client is told.
                raise ApiError(
                    409,
                    "idempotency_key was already used for a different message in this "
                    "conversation; use a new key for a new message",
                    code="idempotency_conflict",
                )
        elif self.on_post is not None:
            self.on_post()  # the hub in this process answers now rather than at its next poll
        return web.json_response(
            {"id": str(posted.message_id), "duplicate": posted.duplicate},
            status=200 if posted.duplicate else 201,
        )

    async def list_messages(self, request: web.Request) -> web.Response:
        cid = self._conversation(request)
        self._limit(
            self._read_buckets,
            str(cid),
            "polling this conversation too often: slow down (or use /stream)",
        )
        after = self._cursor(request.query.get("after"))
        rows = transcript(self.store, cid, after=after, limit=500, include_notes=False)
        messages = [public_message(m) for m in rows]
        return web.json_response(
            {"messages": messages, "cursor": messages[-1]["id"] if messages else str(after)}
        )

    async def stream(self, request: web.Request) -> web.StreamResponse:
        cid = self._conversation(request, allow_query_token=True)
        if self._stream_count >= self.limits.max_streams:
            raise ApiError(429, "too many open streams", code="too_many_streams", retry_after=5)
        if len(self._subscribers.get(cid, ())) >= self.limits.max_streams_per_conversation:
            raise ApiError(
                429,
                f"too many open streams on this conversation (limit"
                f" {self.limits.max_streams_per_conversation}): close one first",
                code="too_many_streams",
                retry_after=5,
            )
        # The cursor is the feed id of the last event received (the SSE id): a browser sends it
        # back as Last-Event-ID when it reconnects by itself, a client that reopens the stream
        # passes it as ?after=.
        after = self._cursor(request.headers.get("Last-Event-ID") or request.query.get("after"))
        queue: asyncio.Queue[tuple[int, bytes] | None] = asyncio.Queue()
        self._subscribers[cid].add(queue)
        self._stream_count += 1
        response = web.StreamResponse(
            headers={
                "Content-Type": "text/event-stream",
                "Cache-Control": "no-cache",
                "X-Accel-Buffering": "no",
            }
        )
        try:
            await response.prepare(request)
            await response.write(f"retry: {STREAM_RETRY_MS}\n\n".encode())
            last = after
            # First what was stored before the subscription, then the live feed; ids dedupe the seam.
            while True:
                events = channel.conversation_events(self.store, cid, after=last, limit=500)
                for e in events:
                    frame = self._frame(e)
                    if frame is not None:
                        await response.write(frame[1])
                    last = e.id
                if len(events) < 500:
                    break
            beat = asyncio.get_running_loop().time()
            async for item in _drain(queue, quiet=STREAM_CLOSED_CHECK_S):
                if item is None:
                    # The server does not cancel a handler whose client left (aiohttp's default,
                    # unlike its test server), and the queue may stay quiet: without this check
                    # a closed tab kept its slot until the next keep-alive failed, 15 s on.
                    transport = request.transport
                    if transport is None or transport.is_closing():
                        break
                    now = asyncio.get_running_loop().time()
                    if now - beat >= STREAM_HEARTBEAT_S:
                        await response.write(b": keep-alive\n\n")
                        beat = now
                    continue
                event_id, frame_bytes = item
                if event_id <= last:
                    continue
                await response.write(frame_bytes)
                last = event_id
        except (ConnectionResetError, asyncio.CancelledError, _StreamClosed):
            pass
        finally:
            self._subscribers[cid].discard(queue)
            if not self._subscribers[cid]:
                del self._subscribers[cid]
            self._stream_count -= 1
        return response


async def read_body(request: web.Request, timeout: float) -> bytes:
    """The request's body, or a 408 when it does not arrive within ``timeout`` seconds (a
    client that sends a head and then a trickle, or nothing, would hold its handler forever)."""
    try:
        async with asyncio.timeout(timeout):
            return await request.read()
    except TimeoutError:
        raise ApiError(
            408, f"the request body did not arrive within {timeout:g} s", code="body_timeout"
        ) from None
    except (ConnectionError, ClientPayloadError):
        # The client went away (or ended) half-way through its body: nothing was read, nothing
        # is stored. Answered like any refusal (to nobody, if it is gone), not logged as a
        # traceback of ours.
        raise ApiError(400, "the request body was cut off", code="bad_request") from None


def json_object(raw: bytes) -> dict[str, Any]:
    """A request body read as a JSON object (an empty body is ``{}``); anything else is a 400
    that says what is wrong (shared by the channel and agent APIs)."""
    if not raw:
        return {}
    try:
        body = json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError):
        raise ApiError(400, "body is not valid JSON (UTF-8)", code="invalid_json") from None
    except RecursionError:
        # json's C scanner recurses per '[' or '{': a few thousand of them, well inside any
        # size limit, end it.
        raise ApiError(400, "body is nested too deeply", code="invalid_json") from None
    except ValueError:
        # json.loads' own limit: integers of more than 4,300 digits.
        raise ApiError(400, "body holds a number too long to read", code="invalid_json") from None
    if not isinstance(body, dict):
        raise ApiError(400, "body must be a JSON object", code="invalid_json")
    return body


def is_number(raw: str) -> bool:
    """An id or cursor as clients send it: 1-18 ASCII digits."""
    # ASCII digits only: str.isdigit() also accepts '²' and '٣', which int() refuses or reads.
    return 0 < len(raw) <= 18 and raw.isascii() and raw.isdigit()


def _check_body(body: dict[str, Any], max_depth: int) -> None:
    """Refuse a body nested deeper than ``max_depth`` or holding text that is not Unicode."""
    stack: list[tuple[Any, int]] = [(body, 1)]
    while stack:
        value, depth = stack.pop()
        if isinstance(value, str):
            problem = unicode_problem(value, from_bytes=False)
            if problem:
                raise ApiError(400, f"body text {problem}")
            continue
        if not isinstance(value, (dict, list)):
            continue
        if depth > max_depth:
            raise ApiError(400, f"body is nested too deeply (limit {max_depth} levels)")
        if isinstance(value, dict):
            stack.extend((k, depth) for k in value)
            stack.extend((v, depth + 1) for v in value.values())
        else:
            stack.extend((v, depth + 1) for v in value)


_PAGE_HEADERS = {
    # The page's own script and style only: nothing inline, nothing from elsewhere.
    "Content-Security-Policy": "default-src 'none'; script-src 'self'; style-src 'self'; "
    "connect-src 'self'; img-src 'self'; base-uri 'none'; form-action 'self'; "
    "frame-ancestors 'none'",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
}


class _StreamClosed(Exception):
    """The server is shutting down; end the stream."""


async def _drain(
    queue: asyncio.Queue[tuple[int, bytes] | None], *, quiet: float
) -> AsyncIterator[tuple[int, bytes] | None]:
    """Yield queued frames; ``None`` after ``quiet`` seconds without one. A queued ``None``
    closes the stream."""
    while True:
        try:
            item = await asyncio.wait_for(queue.get(), timeout=quiet)
        except TimeoutError:
            yield None
            continue
        if item is None:
            raise _StreamClosed
        yield item


class _MalformedHttpOneLine(logging.Filter):
    """aiohttp logs a request it cannot parse with a full traceback at ERROR level, so any
    client could fill the server's log with tracebacks of its own garbage. Such a request is
    already answered 400; its log record becomes one line. Errors in our handlers keep theirs.
    """

    def filter(self, record: logging.LogRecord) -> bool:
        exc = record.exc_info[1] if record.exc_info else None
        if isinstance(exc, HttpProcessingError):
            peer = record.args[0] if isinstance(record.args, tuple) and record.args else "?"
            reason = " ".join(str(exc.message).split())[:200]
            record.msg, record.args = (
                "malformed HTTP request from %s (answered 400): %s",
                (
                    peer,
                    reason,
                ),
            )
            record.exc_info, record.exc_text = None, None
            record.levelno, record.levelname = logging.WARNING, "WARNING"
        return True


def _quiet_malformed_requests() -> None:
    server_log = logging.getLogger("aiohttp.server")
    if not any(isinstance(f, _MalformedHttpOneLine) for f in server_log.filters):
        server_log.addFilter(_MalformedHttpOneLine())


def api_runner(api: ChannelApi) -> web.AppRunner:
    """The runner that serves ``api`` (and what is mounted on it), with its idle timeout."""
    return web.AppRunner(api.app, access_log=None, keepalive_timeout=api.limits.idle_timeout)


async def start_api(api: ChannelApi, host: str = "127.0.0.1", port: int = 8765) -> web.AppRunner:
    """Serve ``api`` on ``host:port`` inside the running event loop; return the runner to stop it."""
    runner = api_runner(api)
    await runner.setup()
    site = web.TCPSite(runner, host, port)
    await site.start()
    return runner
