"""Hostile requests to the channel API: a clear 4xx, nothing stored, never a 5xx.

Real HTTP on loopback against the aiohttp application and a real SQLite file. Bytes no
HTTP client library would send (a header that is not UTF-8) go over a raw socket.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp.test_utils import TestServer

from console.channels.api import UNAVAILABLE, ApiLimits, ChannelApi, _Buckets, start_api
from store import Store
from store.db import damage_mark

TOKEN = "integration-secret"


@contextlib.asynccontextmanager
async def _serve(
    db_path: Path, limits: ApiLimits | None = None
) -> AsyncIterator[tuple[TestServer, aiohttp.ClientSession]]:
    api = ChannelApi(
        db_path,
        token=TOKEN,
        limits=limits or ApiLimits(rate_per_s=1000, burst=1000),
        poll_interval=0.01,
    )
    srv = TestServer(api.app, host="127.0.0.1")
    await srv.start_server()
    try:
        async with aiohttp.ClientSession(base_url=str(srv.make_url(""))) as session:
            yield srv, session
    finally:
        await srv.close()


@pytest.fixture
async def server(db_path: Path) -> AsyncIterator[tuple[TestServer, aiohttp.ClientSession]]:
    async with _serve(db_path) as pair:
        yield pair


async def _open(s: aiohttp.ClientSession, name: str = "Maya") -> tuple[str, dict[str, str]]:
    r = await s.post(
        "/v1/conversations",
        json={"customer": {"name": name}},
        headers={"Authorization": f"Bearer {TOKEN}"},
    )
    assert r.status == 201, await r.text()
    body = await r.json()
    return body["id"], {"Authorization": f"Bearer {body['customer_token']}"}


def _counts(db_path: Path) -> tuple[int, int, int]:
    with Store(db_path) as store:
        row = store.one(
            "SELECT (SELECT count(*) FROM conversations), (SELECT count(*) FROM messages),"
            " (SELECT count(*) FROM events)"
        )
        assert row is not None
        return int(row[0]), int(row[1]), int(row[2])


async def _refused(response: aiohttp.ClientResponse, *statuses: int) -> str:
    assert response.status in statuses, (response.status, await response.text())
    body = await response.json()
    assert isinstance(body.get("error"), str) and body["error"]
    return str(body["error"])


DEEP = '{"text": ' + "[" * 30_000 + "]" * 30_000 + "}"  # 60 KB: under the size limit
BIG = '{"text": "hi", "n": ' + "9" * 5_000 + "}"


@pytest.mark.parametrize(
    ("body", "words"),
    [
        ('{"text": "hi \\ud800"}', "not valid Unicode"),
        ('{"text": "hi", "idempotency_key": "\\udfff"}', "not valid Unicode"),
        ('{"text": "hi", "extra": {"\\udc80": 1}}', "not valid Unicode"),
        (DEEP, "nested too deeply"),
        ('{"text": "hi", "x": ' + "[" * 40 + "]" * 40 + "}", "nested too deeply (limit 32"),
        (BIG, "number too long"),
        ('{"text": 1e999999}', "text must be a non-empty string"),
    ],
    ids=["surrogate", "key", "nested-key", "deep", "deeper-than-32", "4300-digits", "infinity"],
)
async def test_hostile_message_bodies_are_4xx_and_store_nothing(
    server: Any, db_path: Path, body: str, words: str
) -> None:
    _, s = server
    cid, auth = await _open(s)
    before = _counts(db_path)
    r = await s.post(
        f"/v1/conversations/{cid}/messages",
        data=body.encode(),
        headers={**auth, "Content-Type": "application/json"},
    )
    assert words in await _refused(r, 400, 413, 422)
    assert _counts(db_path) == before


@pytest.mark.parametrize(
    ("path", "body"),
    [
        ("/v1/conversations", '{"customer": {"name": "Ma\\ud800ya"}}'),
        ("/v1/conversations", '{"customer": {"name": "Maya", "external_id": "\\udfff"}}'),
        ("/v1/conversations", DEEP.replace('"text"', '"customer"')),
        ("/v1/conversations", BIG),
        ("/web/conversations", '{"name": "\\ud83d"}'),
    ],
)
async def test_hostile_creations_are_4xx_and_store_nothing(
    server: Any, db_path: Path, path: str, body: str
) -> None:
    _, s = server
    before = _counts(db_path)
    r = await s.post(path, data=body.encode(), headers={"Authorization": f"Bearer {TOKEN}"})
    await _refused(r, 400, 422)
    assert _counts(db_path) == before


@pytest.mark.parametrize("raw", ["²", "1²", "٣", "१२", "³⁴", "１", "-1", "0x1", "1e3"])
async def test_ids_and_cursors_are_ascii_digits_only(server: Any, raw: str) -> None:
    _, s = server
    cid, auth = await _open(s)
    r = await s.get(f"/v1/conversations/{raw}/messages", headers=auth)
    await _refused(r, 404)
    r = await s.post(f"/v1/conversations/{raw}/messages", json={"text": "hi"}, headers=auth)
    await _refused(r, 404)
    r = await s.get(f"/v1/conversations/{cid}/messages", params={"after": raw}, headers=auth)
    assert "after must be a cursor" in await _refused(r, 400)
    token = auth["Authorization"].split()[1]
    r = await s.get(
        f"/v1/conversations/{cid}/stream", params={"token": token}, headers={"Last-Event-ID": raw}
    )
    await _refused(r, 400)


async def _raw_request(port: int, request: bytes) -> tuple[int, bytes]:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        writer.write(request)
        await writer.drain()
        response = await asyncio.wait_for(reader.read(), 10)
    finally:
        writer.close()
    status = int(response.split(b" ", 2)[1])
    return status, response.split(b"\r\n\r\n", 1)[1]


async def test_a_token_that_is_not_utf8_is_a_401_not_a_crash(server: Any, db_path: Path) -> None:
    srv, _ = server
    before = _counts(db_path)
    for header in (b"Bearer \xff\xfe", b"Bearer integration-secret\xe9", b"Bearer \xed\xa0\x80"):
        request = (
            b"POST /v1/conversations HTTP/1.1\r\nHost: x\r\nConnection: close\r\n"
            b"Authorization: " + header + b"\r\nContent-Length: 2\r\n\r\n{}"
        )
        status, body = await _raw_request(srv.port, request)
        assert status == 401 and b"invalid integration token" in body
    assert _counts(db_path) == before


@contextlib.asynccontextmanager
async def _session_of(
    serving: contextlib.AbstractAsyncContextManager[tuple[TestServer, aiohttp.ClientSession]],
) -> AsyncIterator[aiohttp.ClientSession]:
    async with serving as (_, session):
        yield session


async def _stream_status(s: aiohttp.ClientSession, cid: str, token: str) -> tuple[int, Any]:
    """Open a stream; return its status and, when it is open, the response (to close later),
    or else the refusal's body (which cap refused it)."""
    response = await s.get(f"/v1/conversations/{cid}/stream", params={"token": token})
    if response.status != 200:
        return response.status, await response.text()
    return 200, response


@contextlib.asynccontextmanager
async def _serve_as_tandem_serve(
    db_path: Path, limits: ApiLimits
) -> AsyncIterator[aiohttp.ClientSession]:
    """The API behind the runner ``tandem serve`` uses: unlike aiohttp's test server, it does
    not cancel a handler whose client went away."""
    api = ChannelApi(db_path, token=TOKEN, limits=limits, poll_interval=0.01)
    runner = await start_api(api, "127.0.0.1", 0)
    try:
        host, port = runner.addresses[0][:2]
        async with aiohttp.ClientSession(base_url=f"http://{host}:{port}") as session:
            yield session
    finally:
        await runner.cleanup()


@pytest.mark.parametrize("runner", ["test server", "tandem serve's runner"])
async def test_streams_are_capped_per_conversation_so_one_token_cannot_take_them_all(
    db_path: Path, runner: str
) -> None:
    limits = ApiLimits(rate_per_s=1000, burst=1000, max_streams=3, max_streams_per_conversation=2)
    serving = (
        _serve_as_tandem_serve(db_path, limits)
        if runner == "tandem serve's runner"
        else _session_of(_serve(db_path, limits))
    )
    async with serving as s:
        (a, auth_a), (b, auth_b), (c, auth_c) = [await _open(s, n) for n in ("A", "B", "C")]
        token_a, token_b, token_c = (
            x["Authorization"].split()[1] for x in (auth_a, auth_b, auth_c)
        )
        open_ = []
        for _ in range(2):
            status, response = await _stream_status(s, a, token_a)
            assert status == 200
            open_.append(response)
        status, _ = await _stream_status(s, a, token_a)
        assert status == 429  # the third on one conversation (one token)
        status, response = await _stream_status(s, b, token_b)
        assert status == 200  # another customer still gets one
        open_.append(response)
        status, _ = await _stream_status(s, c, token_c)
        assert status == 429  # the server-wide cap still holds
        open_.pop(0).close()
        deadline = asyncio.get_running_loop().time() + 5
        while True:  # the slot frees when the server notices the client left
            status, response = await _stream_status(s, a, token_a)
            if status == 200:
                open_.append(response)
                break
            assert asyncio.get_running_loop().time() < deadline, (
                f"the closed stream's slot is still taken: {status} {response}"
            )
            await asyncio.sleep(0.05)
        for response in open_:
            response.close()


async def _health(s: aiohttp.ClientSession) -> tuple[int, dict[str, Any]]:
    r = await s.get("/healthz")
    return r.status, await r.json()


async def _health_becomes(s: aiohttp.ClientSession, status: int) -> dict[str, Any]:
    deadline = asyncio.get_running_loop().time() + 10
    while True:
        got, body = await _health(s)
        if got == status:
            return body
        assert asyncio.get_running_loop().time() < deadline, f"/healthz never said {status}"
        await asyncio.sleep(0.1)


async def test_healthz_says_503_when_the_store_cannot_write(
    db_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("TANDEM_BUSY_TIMEOUT_MS", "50")
    async with _serve(db_path) as (_, s):
        assert await _health(s) == (200, {"ok": True})
        cid, auth = await _open(s)
        # A file found damaged: every write is refused, so the service is not healthy.
        damage_mark(db_path).write_text("test: page 7 is garbage\n")
        body = await _health_becomes(s, 503)
        assert body == {"ok": False, "error": UNAVAILABLE}
        r = await s.post(f"/v1/conversations/{cid}/messages", json={"text": "hi"}, headers=auth)
        assert await _refused(r, 503) == UNAVAILABLE  # no path, no SQLite words
        damage_mark(db_path).unlink()
        await _health_becomes(s, 200)
        # Another process holding the write lock: writes time out, and so does the probe.
        with Store(db_path) as other:
            other.conn.execute("BEGIN IMMEDIATE")
            await _health_becomes(s, 503)
            other.conn.execute("ROLLBACK")
        await _health_becomes(s, 200)


def test_the_rate_limiter_forgets_the_longest_idle_client_not_everyone() -> None:
    buckets = _Buckets(rate=0.001, burst=1, max_keys=100)
    assert buckets.allow("busy") and not buckets.allow("busy")  # spent its burst
    for n in range(1_000):
        assert buckets.allow(f"client-{n}")
        if n % 50 == 0:
            assert not buckets.allow("busy")  # still refused, and now the most recent again
        assert len(buckets) <= 100
    assert buckets.exhausted("busy") and "busy" in buckets
    assert "client-0" not in buckets and "client-999" in buckets


def test_limits_default_to_a_per_conversation_stream_cap() -> None:
    limits = ApiLimits()
    assert 1 <= limits.max_streams_per_conversation < limits.max_streams


@pytest.mark.parametrize("body", [b"\xff\xfe", b'{"text": "\xed\xa0\x80"}', b"[1]", b'"x"'])
async def test_bodies_that_are_not_a_json_object_of_utf8_are_400(
    server: Any, db_path: Path, body: bytes
) -> None:
    _, s = server
    cid, auth = await _open(s)
    before = _counts(db_path)
    r = await s.post(f"/v1/conversations/{cid}/messages", data=body, headers=auth)
    await _refused(r, 400)
    assert _counts(db_path) == before


def test_the_unavailable_text_names_no_internal_detail() -> None:
    assert os.sep not in UNAVAILABLE and "sqlite" not in UNAVAILABLE.lower()
    assert json.dumps({"error": UNAVAILABLE})


async def test_half_requests_do_not_hold_a_connection(db_path: Path) -> None:
    # By hand against tandem serve: connections that sent nothing, half a head, or a head and
    # half its body were all still open, unanswered, after 130 s (aiohttp keeps an idle
    # connection an hour and waits for a body forever): each held a file descriptor, and a
    # body's handler, for as long as the client liked.
    limits = ApiLimits(rate_per_s=1000, burst=1000, idle_timeout=0.5, body_timeout=0.5)
    api = ChannelApi(db_path, token=TOKEN, limits=limits)
    runner = await start_api(api, "127.0.0.1", 0)
    port = runner.addresses[0][1]
    try:
        heads = {
            "nothing": b"",
            "half a head": b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Slow: ",
            "half a body": b"POST /web/conversations HTTP/1.1\r\nHost: x\r\n"
            b"Content-Type: application/json\r\nContent-Length: 100\r\n\r\n"
            b'{"name": "Sl',
        }
        answers = {}
        for what, sent in heads.items():
            reader, writer = await asyncio.open_connection("127.0.0.1", port)
            writer.write(sent)
            await writer.drain()
            # Whatever the server says, then its close (EOF); never the test's own timeout.
            answers[what] = await asyncio.wait_for(reader.read(), 30)
            writer.close()
        assert answers["nothing"] == b"" and answers["half a head"] == b""
        head, _, body = answers["half a body"].partition(b"\r\n\r\n")
        assert head.startswith(b"HTTP/1.1 408"), answers["half a body"]
        assert json.loads(body)["code"] == "body_timeout"
        # The server still serves everyone else.
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.write(b"GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        assert (await asyncio.wait_for(reader.read(), 30)).startswith(b"HTTP/1.1 200")
        writer.close()
    finally:
        await runner.cleanup()
    with Store(db_path) as store:
        assert store.query("SELECT count(*) AS n FROM conversations")[0]["n"] == 0
