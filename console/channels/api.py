"""The channel API (DESIGN.md section 8): JSON over HTTP for chat channels and the web page.

Customers (through an integration) open a conversation, post messages with an idempotency
key, and read replies by polling or server-sent events. The integration token guards
creation; each conversation gets its own customer token (only its SHA-256 is stored), which
reads and writes that conversation and no other. Every refusal is a 4xx with
``{"error": "..."}``; bad input never reaches the store as anything but data.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import hmac
import json
import secrets
import time
from collections import defaultdict
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from importlib import resources
from pathlib import Path
from typing import Any

from aiohttp import web

from console.channels.events import public_name
from store import DatabaseUnavailable, InvalidInput, NotFound, Store, StoreError, queries
from store import lifecycle as lc
from store.feed import Follower
from store.queries import transcript

PUBLIC_ROLES = ("customer", "bot", "agent", "system")


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
    """Concurrent server-sent-event streams."""


class _Buckets:
    """Token buckets keyed by client, refilled lazily (no timer task)."""

    def __init__(self, rate: float, burst: int) -> None:
        self.rate, self.burst = rate, burst
        self._state: dict[str, tuple[float, float]] = {}

    def exhausted(self, key: str) -> bool:
        """Whether ``key`` would be refused now (without spending a token)."""
        state = self._state.get(key)
        if state is None:
            return False
        tokens, last = state
        return min(float(self.burst), tokens + (time.monotonic() - last) * self.rate) < 1.0

    def allow(self, key: str) -> bool:
        now = time.monotonic()
        tokens, last = self._state.get(key, (float(self.burst), now))
        tokens = min(float(self.burst), tokens + (now - last) * self.rate)
        if tokens < 1.0:
            self._state[key] = (tokens, now)
            return False
        self._state[key] = (tokens - 1.0, now)
        if len(self._state) > 50_000:  # forget idle clients rather than grow without bound
            self._state.clear()
        return True


class ApiError(Exception):
    """A refusal with its HTTP status; the message goes to the client as ``error``."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


def hash_token(token: str) -> str:
    """The stored form of a customer token."""
    return hashlib.sha256(token.encode("utf-8", "surrogatepass")).hexdigest()


def _iso(ts: float) -> str:
    return datetime.fromtimestamp(ts, UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def public_message(m: dict[str, Any]) -> dict[str, Any]:
    """A message as the customer's side sees it (agents by first name only, as webhooks show
    them: :func:`console.channels.events.public_name`)."""
    out = {"id": m["id"], "role": m["role"], "text": m["text"], "at": _iso(m["created_at"])}
    if m["role"] == "agent" and m.get("author"):
        out["author"] = public_name(m["author"])
    return out


class ChannelApi:
    """The aiohttp application and the state behind it (one store connection, one feed).

    :param db_path: the store
    :param token: the integration token that may create conversations (``None``: nobody may)
    :param limits: request limits
    :param web_page: serve the web chat page at ``/`` (and its conversation route)
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
    ) -> None:
        self.db_path = Path(db_path)
        self.token = token
        self.limits = limits or ApiLimits()
        self.web_page = web_page
        self.poll_interval = poll_interval
        self.on_post = on_post
        self.store = Store(self.db_path)
        limits = self.limits
        # Anonymous requests per address; failed credentials per address (guessing tokens);
        # posts and reads per conversation; creations for the integration token.
        self._client_buckets = _Buckets(limits.rate_per_s, limits.burst)
        self._auth_failures = _Buckets(limits.rate_per_s, limits.burst)
        self._conversation_buckets = _Buckets(limits.rate_per_s, limits.burst)
        self._read_buckets = _Buckets(limits.rate_per_s, limits.burst)
        self._integration_bucket = _Buckets(limits.integration_rate_per_s, limits.integration_burst)
        self._subscribers: dict[int, set[asyncio.Queue[dict[str, Any] | None]]] = defaultdict(set)
        self._stream_count = 0
        self._pump: asyncio.Task[None] | None = None
        self.app = self._build()

    # --- plumbing ---------------------------------------------------------------------

    def _build(self) -> web.Application:
        app = web.Application(client_max_size=self.limits.max_body, middlewares=[self._errors])
        app.router.add_post("/v1/conversations", self.create_conversation)
        app.router.add_post("/v1/conversations/{id}/messages", self.post_message)
        app.router.add_get("/v1/conversations/{id}/messages", self.list_messages)
        app.router.add_get("/v1/conversations/{id}/stream", self.stream)
        app.router.add_get("/healthz", self.healthz)
        if self.web_page:
            app.router.add_get("/", self.page)
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
                    raise ApiError(429, "too many failed credentials from this address: slow down")
            elif not self._client_buckets.allow(address):
                raise ApiError(429, "too many requests: slow down")
            return await handler(request)
        except ApiError as exc:
            if exc.status in (401, 403):
                self._auth_failures.allow(address)
            return web.json_response({"error": str(exc)}, status=exc.status)
        except web.HTTPRequestEntityTooLarge:
            return web.json_response(
                {"error": f"request body too large (limit {self.limits.max_body} bytes)"},
                status=413,
            )
        except web.HTTPException as exc:
            if exc.status >= 400:
                return web.json_response(
                    {"error": (exc.reason or "error").lower()}, status=exc.status
                )
            raise
        except NotFound as exc:
            return web.json_response({"error": str(exc)}, status=404)
        except InvalidInput as exc:
            return web.json_response({"error": str(exc)}, status=422)
        except DatabaseUnavailable as exc:
            return web.json_response({"error": f"temporarily unavailable: {exc}"}, status=503)
        except StoreError as exc:
            return web.json_response({"error": str(exc)}, status=409)

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
        """One follower for all streams: fan each new public message out to its listeners."""
        follower = Follower(self.db_path, after=None)
        try:
            while True:
                events = follower.poll()
                for e in events:
                    if (
                        e.kind != "message"
                        or e.conversation_id not in self._subscribers
                        or (e.data or {}).get("role") not in PUBLIC_ROLES
                    ):
                        continue
                    row = queries.message(self.store, e.message_id or 0)
                    if row is None:
                        continue
                    payload = public_message(row)
                    for queue in list(self._subscribers.get(e.conversation_id, ())):
                        if queue.qsize() < 1000:
                            queue.put_nowait(payload)
                await asyncio.sleep(self.poll_interval if not events else 0)
        finally:
            follower.close()

    async def _json(self, request: web.Request) -> dict[str, Any]:
        if request.content_length and request.content_length > self.limits.max_body:
            raise ApiError(413, f"request body too large (limit {self.limits.max_body} bytes)")
        raw = await request.read()
        if not raw:
            return {}
        try:
            body = json.loads(raw.decode("utf-8"))
        except (UnicodeDecodeError, json.JSONDecodeError):
            raise ApiError(400, "body is not valid JSON (UTF-8)") from None
        if not isinstance(body, dict):
            raise ApiError(400, "body must be a JSON object")
        return body

    @staticmethod
    def _bearer(request: web.Request) -> str | None:
        header = request.headers.get("Authorization", "")
        if header.startswith("Bearer "):
            return header[7:].strip() or None
        return None

    def _conversation(self, request: web.Request, *, allow_query_token: bool = False) -> int:
        raw = request.match_info["id"]
        if not raw.isdigit() or len(raw) > 18:
            raise ApiError(404, f"conversation {raw[:40]!r} not found")
        cid = int(raw)
        token = self._bearer(request) or (request.query.get("token") if allow_query_token else None)
        if not token:
            raise ApiError(401, "missing customer token (Authorization: Bearer ...)")
        try:
            expected = queries.customer_token_hash(self.store, cid)
        except NotFound:
            raise ApiError(404, f"conversation {cid} not found") from None
        if not expected or not hmac.compare_digest(expected, hash_token(token)):
            raise ApiError(403, "this token does not open this conversation")
        return cid

    @staticmethod
    def _cursor(raw: str | None) -> int:
        if raw in (None, ""):
            return 0
        if not raw.isdigit() or len(raw) > 18:
            raise ApiError(
                400, "after must be a cursor returned by this API (a non-negative integer)"
            )
        return int(raw)

    def _open(self, customer: Any, channel: str) -> web.Response:
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
        return web.json_response({"id": str(cid), "customer_token": token}, status=201)

    # --- routes -------------------------------------------------------------------------

    async def healthz(self, _request: web.Request) -> web.Response:
        return web.json_response({"ok": True})

    async def page(self, _request: web.Request) -> web.Response:
        html = (
            resources.files("console.channels").joinpath("webchat.html").read_text(encoding="utf-8")
        )
        return web.Response(
            text=html,
            content_type="text/html",
            headers={
                "Content-Security-Policy": "default-src 'none'; style-src 'unsafe-inline'; "
                "script-src 'unsafe-inline'; connect-src 'self'"
            },
        )

    async def create_conversation(self, request: web.Request) -> web.Response:
        given = self._bearer(request)
        if not given:
            raise ApiError(401, "missing integration token (Authorization: Bearer ...)")
        if not self.token or not hmac.compare_digest(given.encode(), self.token.encode()):
            raise ApiError(401, "invalid integration token")
        if not self._integration_bucket.allow("integration"):
            raise ApiError(429, "too many new conversations: slow down")
        body = await self._json(request)
        return self._open(body.get("customer"), "api")

    async def create_web_conversation(self, request: web.Request) -> web.Response:
        body = await self._json(request)
        return self._open({"name": body.get("name") or "Web visitor"}, "web")

    async def post_message(self, request: web.Request) -> web.Response:
        cid = self._conversation(request)
        if not self._conversation_buckets.allow(str(cid)):
            raise ApiError(429, "too many messages in this conversation: slow down")
        body = await self._json(request)
        text, key = body.get("text"), body.get("idempotency_key")
        if not isinstance(text, str) or not text.strip():
            raise ApiError(422, "text must be a non-empty string")
        if len(text) > self.limits.max_text:
            raise ApiError(
                413, f"text is too long ({len(text)} characters, limit {self.limits.max_text})"
            )
        if "\x00" in text:
            raise ApiError(422, "text contains a NUL character")
        if key is not None and (not isinstance(key, str) or not key or len(key) > 200):
            raise ApiError(
                422, "idempotency_key must be a non-empty string of at most 200 characters"
            )
        posted = lc.add_customer_message(self.store, cid, text, idempotency_key=key)
        if self.on_post is not None and not posted.duplicate:
            self.on_post()  # the hub in this process answers now rather than at its next poll
        return web.json_response(
            {"id": posted.message_id, "duplicate": posted.duplicate},
            status=200 if posted.duplicate else 201,
        )

    async def list_messages(self, request: web.Request) -> web.Response:
        cid = self._conversation(request)
        if not self._read_buckets.allow(str(cid)):
            raise ApiError(429, "polling this conversation too often: slow down (or use /stream)")
        after = self._cursor(request.query.get("after"))
        rows = transcript(self.store, cid, after=after, limit=500, include_notes=False)
        messages = [public_message(m) for m in rows]
        return web.json_response(
            {"messages": messages, "cursor": str(messages[-1]["id"] if messages else after)}
        )

    async def stream(self, request: web.Request) -> web.StreamResponse:
        cid = self._conversation(request, allow_query_token=True)
        if self._stream_count >= self.limits.max_streams:
            raise ApiError(429, "too many open streams")
        after = self._cursor(request.headers.get("Last-Event-ID") or request.query.get("after"))
        queue: asyncio.Queue[dict[str, Any] | None] = asyncio.Queue()
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
            last = after
            # First what was stored before the subscription, then the live feed; ids dedupe the seam.
            for m in transcript(self.store, cid, after=after, include_notes=False):
                await response.write(_sse(public_message(m)))
                last = m["id"]
            async for payload in _drain(queue, heartbeat=15.0):
                if payload is None:
                    await response.write(b": keep-alive\n\n")
                    continue
                if payload["id"] <= last:
                    continue
                await response.write(_sse(payload))
                last = payload["id"]
        except (ConnectionResetError, asyncio.CancelledError, _StreamClosed):
            pass
        finally:
            self._subscribers[cid].discard(queue)
            if not self._subscribers[cid]:
                del self._subscribers[cid]
            self._stream_count -= 1
        return response


class _StreamClosed(Exception):
    """The server is shutting down; end the stream."""


def _sse(payload: dict[str, Any]) -> bytes:
    return f"id: {payload['id']}\nevent: message\ndata: {json.dumps(payload)}\n\n".encode()


async def _drain(
    queue: asyncio.Queue[dict[str, Any] | None], *, heartbeat: float
) -> AsyncIterator[dict[str, Any] | None]:
    """Yield queued payloads; ``None`` for a heartbeat. A queued ``None`` closes the stream."""
    while True:
        try:
            item = await asyncio.wait_for(queue.get(), timeout=heartbeat)
        except TimeoutError:
            yield None
            continue
        if item is None:
            raise _StreamClosed
        yield item


async def start_api(api: ChannelApi, host: str = "127.0.0.1", port: int = 8765) -> web.AppRunner:
    """Serve ``api`` on ``host:port`` inside the running event loop; return the runner to stop it."""
    runner = web.AppRunner(api.app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, host, port)
    await site.start()
    return runner
