"""The channel API over real HTTP on loopback, with a real client (aiohttp)."""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
import pytest
from aiohttp.test_utils import TestServer
from waiting import wait_until_async

from console.channels.api import ApiLimits, ChannelApi
from store import Store
from store import lifecycle as lc

TOKEN = "integration-secret"


@pytest.fixture
async def server(db_path: Path) -> AsyncIterator[tuple[TestServer, aiohttp.ClientSession]]:
    api = ChannelApi(
        db_path, token=TOKEN, limits=ApiLimits(rate_per_s=1000, burst=1000), poll_interval=0.01
    )
    srv = TestServer(api.app, host="127.0.0.1")
    await srv.start_server()
    async with aiohttp.ClientSession(base_url=str(srv.make_url(""))) as session:
        yield srv, session
    await srv.close()


@contextlib.asynccontextmanager
async def _limited(db_path: Path, limits: ApiLimits) -> AsyncIterator[aiohttp.ClientSession]:
    """A server with these limits and a client session on it."""
    api = ChannelApi(db_path, token=TOKEN, limits=limits)
    srv = TestServer(api.app, host="127.0.0.1")
    await srv.start_server()
    try:
        async with aiohttp.ClientSession(base_url=str(srv.make_url(""))) as session:
            yield session
    finally:
        await srv.close()


async def _open(session: aiohttp.ClientSession, name: str = "Maya") -> tuple[str, dict[str, str]]:
    r = await session.post(
        "/v1/conversations",
        json={"customer": {"name": name, "external_id": f"ext-{name}"}},
        headers={"Authorization": f"Bearer {TOKEN}"},
    )
    assert r.status == 201
    body = await r.json()
    return body["id"], {"Authorization": f"Bearer {body['customer_token']}"}


async def test_health_and_page(server) -> None:  # noqa: ANN001
    _, s = server
    r = await s.get("/healthz")
    assert r.status == 200 and await r.json() == {"ok": True}
    page = await s.get("/")
    html = await page.text()
    assert page.status == 200 and '<script src="/webchat.js" defer>' in html
    script = await (await s.get("/webchat.js")).text()
    style = await (await s.get("/webchat.css")).text()
    # Customer text reaches the page as text nodes, never parsed as HTML.
    assert "EventSource" in script and "textContent = text" in script
    assert "innerHTML" not in script and "insertAdjacentHTML" not in script
    # The forms are shown and hidden with the `hidden` attribute, which a `display` rule
    # would otherwise override (seen in Chromium: both forms showed at once).
    assert "[hidden] { display: none !important; }" in style
    # No inline script or style is allowed: only the page's own files.
    policy = page.headers["Content-Security-Policy"]
    assert "default-src 'none'" in policy and "script-src 'self'" in policy
    assert "unsafe-inline" not in policy


async def test_creation_needs_the_integration_token(server) -> None:  # noqa: ANN001
    _, s = server
    r = await s.post("/v1/conversations", json={"customer": {"name": "x"}})
    assert r.status == 401 and "integration token" in (await r.json())["error"]
    r = await s.post("/v1/conversations", json={}, headers={"Authorization": "Bearer wrong"})
    assert r.status == 401


async def test_post_is_idempotent_and_tokens_are_per_conversation(server, db_path: Path) -> None:  # noqa: ANN001
    _, s = server
    cid, auth = await _open(s, "Maya")
    other, other_auth = await _open(s, "Ben")
    first = await s.post(
        f"/v1/conversations/{cid}/messages",
        json={"text": "hi", "idempotency_key": "k1"},
        headers=auth,
    )
    again = await s.post(
        f"/v1/conversations/{cid}/messages",
        json={"text": "hi", "idempotency_key": "k1"},
        headers=auth,
    )
    assert (first.status, again.status) == (201, 200)
    assert (await first.json())["id"] == (await again.json())["id"]
    r = await s.post(
        f"/v1/conversations/{cid}/messages", json={"text": "sneaky"}, headers=other_auth
    )
    assert r.status == 403
    r = await s.get(f"/v1/conversations/{other}/messages", headers=auth)
    assert r.status == 403
    assert Store(db_path).one("SELECT count(*) FROM messages")[0] == 1


@pytest.mark.parametrize(
    ("body", "status", "words"),
    [
        (b"{not json", 400, "not valid JSON"),
        (b"[1, 2]", 400, "JSON object"),
        (b"\xff\xfe", 400, "not valid JSON"),
        (json.dumps({"text": ""}).encode(), 422, "non-empty"),
        (json.dumps({"text": 42}).encode(), 422, "non-empty string"),
        (json.dumps({"text": "x" * 4001}).encode(), 413, "too long"),
        (json.dumps({"text": "ok", "idempotency_key": 7}).encode(), 422, "idempotency_key"),
        (json.dumps({"text": "a\u0000b"}).encode(), 422, "NUL"),
        (b"x" * (70 * 1024), 413, "too large"),
    ],
)
async def test_bad_input_is_a_clear_4xx_and_stores_nothing(
    server, db_path: Path, body: bytes, status: int, words: str
) -> None:  # noqa: ANN001
    _, s = server
    cid, auth = await _open(s)
    r = await s.post(
        f"/v1/conversations/{cid}/messages",
        data=body,
        headers={**auth, "Content-Type": "application/json"},
    )
    assert r.status == status
    assert words in (await r.json())["error"]
    assert Store(db_path).one("SELECT count(*) FROM messages")[0] == 0


async def test_unknown_and_unauthenticated(server) -> None:  # noqa: ANN001
    _, s = server
    cid, auth = await _open(s)
    assert (await s.get("/v1/conversations/9999/messages", headers=auth)).status == 404
    assert (await s.get("/v1/conversations/abc/messages", headers=auth)).status == 404
    assert (await s.get(f"/v1/conversations/{cid}/messages")).status == 401
    assert (await s.get(f"/v1/conversations/{cid}/messages?after=-1", headers=auth)).status == 400
    assert (await s.get("/nope")).status == 404


async def test_poll_returns_public_messages_after_a_cursor(server, db_path: Path) -> None:  # noqa: ANN001
    _, s = server
    cid, auth = await _open(s)
    r = await s.post(
        f"/v1/conversations/{cid}/messages",
        json={"text": "[bold]where[/] is my refund?"},
        headers=auth,
    )
    mid = (await r.json())["id"]
    store = Store(db_path)
    lc.bot_reply(store, int(cid), "Refunds take 3-5 working days.", reply_to=mid)
    lc.add_note(store, int(cid), "ana", "internal: VIP customer")
    body = await (await s.get(f"/v1/conversations/{cid}/messages", headers=auth)).json()
    assert [(m["role"], m["text"]) for m in body["messages"]] == [
        ("customer", "[bold]where[/] is my refund?"),
        ("bot", "Refunds take 3-5 working days."),
    ]
    assert all(set(m) >= {"id", "role", "text", "at"} for m in body["messages"])
    later = await (
        await s.get(f"/v1/conversations/{cid}/messages?after={body['cursor']}", headers=auth)
    ).json()
    assert later["messages"] == [] and later["cursor"] == body["cursor"]


async def test_stream_delivers_replies_as_server_sent_events(server, db_path: Path) -> None:  # noqa: ANN001
    _, s = server
    cid, auth = await _open(s)
    r = await s.post(f"/v1/conversations/{cid}/messages", json={"text": "hello"}, headers=auth)
    mid = (await r.json())["id"]
    token = auth["Authorization"].split()[1]
    received: list[tuple[str, str, dict]] = []
    retry: list[str] = []

    async def read() -> None:
        async with s.get(f"/v1/conversations/{cid}/stream?token={token}") as resp:
            assert resp.status == 200 and resp.headers["Content-Type"].startswith(
                "text/event-stream"
            )
            frame: dict[str, str] = {}
            async for raw in resp.content:
                line = raw.decode().rstrip("\n")
                if line.startswith("retry: "):
                    retry.append(line[7:])
                elif line and not line.startswith(":"):
                    key, _, value = line.partition(": ")
                    frame[key] = value
                elif not line and "data" in frame:
                    received.append((frame["event"], frame["id"], json.loads(frame["data"])))
                    frame = {}
                    if len(received) == 5:
                        return

    reader = asyncio.create_task(read())
    await wait_until_async(lambda: received, what="the stream's first message")  # it is up
    store = Store(db_path)
    lc.bot_reply(store, int(cid), "Hi! How can I help?", reply_to=mid)
    lc.add_note(store, int(cid), "ana", "never streamed")
    lc.escalate(
        store, int(cid), reasons=["human_request"], message="A person will join you shortly."
    )
    await asyncio.wait_for(reader, 10)
    # Messages and state changes, in the order they happened; notes and triage stay inside.
    assert [(kind, p.get("role")) for kind, _, p in received] == [
        ("opened", None),
        ("message", "customer"),
        ("message", "bot"),
        ("waiting", None),
        ("message", "system"),
    ]
    assert all(isinstance(p["id"], str) for _, _, p in received)
    # The SSE ids are the stream's cursor: increasing, so a reconnect resumes after the last.
    ids = [int(i) for _, i, _ in received]
    assert ids == sorted(ids) and retry and int(retry[0]) > 0


async def test_rate_limit(db_path: Path) -> None:
    async with _limited(db_path, ApiLimits(rate_per_s=1, burst=3)) as s:
        codes = [(await s.get("/healthz")).status for _ in range(6)]
        assert codes[:3] == [200, 200, 200] and 429 in codes[3:]


async def test_web_page_conversation(server) -> None:  # noqa: ANN001
    _, s = server
    r = await s.post("/web/conversations", json={"name": "Lee"})
    assert r.status == 201
    body = await r.json()
    r = await s.post(
        f"/v1/conversations/{body['id']}/messages",
        json={"text": "hi"},
        headers={"Authorization": f"Bearer {body['customer_token']}"},
    )
    assert r.status == 201


async def test_an_integration_is_limited_per_conversation_not_per_address(db_path: Path) -> None:
    # One integration speaks for many customers from one address: with a per-address rate of
    # 1/s (burst 3) it still opens ten conversations and posts in each.
    async with _limited(db_path, ApiLimits(rate_per_s=1, burst=3)) as s:
        codes = []
        for i in range(10):
            cid, auth = await _open(s, f"Customer{i}")
            r = await s.post(
                f"/v1/conversations/{cid}/messages", json={"text": "hello"}, headers=auth
            )
            codes.append(r.status)
        assert codes == [201] * 10
        # The per-conversation rate still holds: a burst of posts in one conversation is cut.
        burst = [
            (
                await s.post(
                    f"/v1/conversations/{cid}/messages", json={"text": f"again {j}"}, headers=auth
                )
            ).status
            for j in range(5)
        ]
        assert 429 in burst
        polls = [
            (await s.get(f"/v1/conversations/{cid}/messages", headers=auth)).status
            for _ in range(6)
        ]
        assert polls[:3] == [200, 200, 200] and 429 in polls[3:]


async def test_an_address_guessing_tokens_is_refused_until_it_slows_down(db_path: Path) -> None:
    async with _limited(db_path, ApiLimits(rate_per_s=1, burst=3)) as s:
        cid, auth = await _open(s)
        wrong = {"Authorization": "Bearer not-the-token"}
        codes = [
            (
                await s.post(f"/v1/conversations/{cid}/messages", json={"text": "x"}, headers=wrong)
            ).status
            for _ in range(5)
        ]
        assert codes[:3] == [403, 403, 403] and codes[3:] == [429, 429]
        body = await (
            await s.post(f"/v1/conversations/{cid}/messages", json={"text": "x"}, headers=auth)
        ).json()
        assert "failed credentials" in body["error"]
