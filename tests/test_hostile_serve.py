"""Property: whatever arrives over HTTP, a running `tandem serve` answers below 500, and a
refused request stores nothing.

One real `tandem serve` process on a real SQLite file; requests are raw bytes on a socket
(so paths, headers and bodies can be anything, including bytes no client library sends).
Hypothesis draws methods, paths, query strings, headers and bodies for a bounded number of
examples; the defects found by hand are pinned as explicit examples. Each request comes from
its own loopback address and most go to their own conversation, so the rate limits (which
would answer 429 to everything after the first burst) do not hide the handlers.
"""

from __future__ import annotations

import json
import random
import socket
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import quote

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st
from serve_support import start_serve

from store import Store

TOKEN = "integration-secret"
POOL = 60  # conversations opened up front, one per example or so (per-conversation limits)


@dataclass
class Served:
    port: int
    db: Path
    conversations: list[tuple[str, str]]  # (id, customer token)


def _request(
    port: int, raw: bytes, *, source: str = "127.0.0.1", timeout: float = 10.0
) -> tuple[int, bytes, bytes]:
    """Send ``raw``; return (status, headers, body). An event stream is cut after its headers."""
    with socket.create_connection(
        ("127.0.0.1", port), timeout=timeout, source_address=(source, 0)
    ) as s:
        s.sendall(raw)
        data = b""
        while True:
            try:
                chunk = s.recv(65536)
            except TimeoutError:
                break
            if not chunk:
                break
            data += chunk
            head, sep, _ = data.partition(b"\r\n\r\n")
            if sep and b"text/event-stream" in head.lower():
                break
    head, _, body = data.partition(b"\r\n\r\n")
    status = int(head.split(b" ", 2)[1]) if head.startswith(b"HTTP/") else 0
    return status, head, body


def _http(
    method: str,
    target: bytes,
    *,
    headers: dict[bytes, bytes] | None = None,
    body: bytes = b"",
) -> bytes:
    lines = [
        method.encode() + b" " + target + b" HTTP/1.1",
        b"Host: 127.0.0.1",
        b"Connection: close",
    ]
    for name, value in (headers or {}).items():
        lines.append(name + b": " + value)
    if body or method in ("POST", "PUT", "PATCH"):
        lines.append(b"Content-Length: " + str(len(body)).encode())
    return b"\r\n".join(lines) + b"\r\n\r\n" + body


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    db = tmp_path_factory.mktemp("hostile-serve") / "tandem.db"
    running = start_serve(db, token=TOKEN)
    port = running.port
    try:
        conversations = []
        for n in range(POOL):
            body = json.dumps({"customer": {"name": f"Customer {n}"}}).encode()
            status, _, answer = _request(
                port,
                _http(
                    "POST",
                    b"/v1/conversations",
                    headers={b"Authorization": f"Bearer {TOKEN}".encode()},
                    body=body,
                ),
            )
            assert status == 201, answer
            created = json.loads(answer)
            conversations.append((created["id"], created["customer_token"]))
        yield Served(port, db, conversations)
    finally:
        running.stop_cleanly()


# --- what a request is made of -------------------------------------------------------------

# Every code point, lone surrogates included (Hypothesis leaves them out by default).
ANY_TEXT = st.text(st.characters(exclude_categories=()), max_size=40)
HOSTILE_TEXT = st.sampled_from(
    ["\ud800", "a\udfffb", "²", "1²", "٣", "१२", "\x00", "\u202e", "👨\u200d👩\u200d👧", "", " "]
)
TEXT = st.one_of(ANY_TEXT, HOSTILE_TEXT)
JSON_VALUE = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | TEXT,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(TEXT, inner, max_size=4),
    max_leaves=12,
)
NUMBER_TOO_LONG = b"9" * 5000
DEEP = b"[" * 30_000 + b"]" * 30_000


@st.composite
def bodies(draw: st.DrawFn) -> bytes:
    kind = draw(st.sampled_from(["message", "customer", "json", "raw", "hostile", "empty"]))
    if kind == "empty":
        return b""
    if kind == "raw":
        return draw(st.binary(max_size=200))
    if kind == "hostile":
        inner = draw(st.sampled_from([NUMBER_TOO_LONG, DEEP, b'"\\ud800"', b"1e99999", b"-0"]))
        field = draw(st.sampled_from([b"text", b"idempotency_key", b"customer", b"name"]))
        return b'{"' + field + b'": ' + inner + b"}"
    if kind == "message":
        value: Any = {"text": draw(st.one_of(TEXT, JSON_VALUE))}
        if draw(st.booleans()):
            value["idempotency_key"] = draw(st.one_of(TEXT, JSON_VALUE))
    elif kind == "customer":
        value = {"customer": draw(st.one_of(st.fixed_dictionaries({"name": TEXT}), JSON_VALUE))}
        if draw(st.booleans()):
            value["name"] = draw(TEXT)
    else:
        value = draw(JSON_VALUE)
    return json.dumps(value).encode()


def message_bodies() -> st.SearchStrategy[bytes]:
    """A message as an integration sends it, its text and key drawn from anything."""
    return st.builds(
        lambda text, key: json.dumps(
            {"text": text} if key is None else {"text": text, "idempotency_key": key}
        ).encode(),
        st.one_of(TEXT, TEXT, JSON_VALUE),
        st.one_of(st.none(), TEXT, JSON_VALUE),
    )


def customer_bodies() -> st.SearchStrategy[bytes]:
    return st.builds(
        lambda name, ext: json.dumps({"customer": {"name": name, "external_id": ext}}).encode(),
        st.one_of(TEXT, JSON_VALUE),
        st.one_of(st.none(), TEXT, JSON_VALUE),
    )


def _pct(text: str) -> bytes:
    return quote(text.encode("utf-8", "surrogatepass"), safe="").encode()


def _token(draw: st.DrawFn, usual: bytes) -> bytes:
    """Mostly the right credential, sometimes another, garbage, or none."""
    kind = draw(st.sampled_from(["usual"] * 4 + ["customer", "integration", "text", "bytes"]))
    return {
        "usual": usual,
        "customer": b"{token}",
        "integration": TOKEN.encode(),
        "text": draw(TEXT).encode("utf-8", "surrogatepass"),
        "bytes": draw(st.binary(max_size=20)),
    }[kind]


@st.composite
def requests(draw: st.DrawFn) -> dict[str, Any]:
    """Mostly well-formed calls of the real routes with one part made hostile, some noise."""
    ident = draw(
        st.one_of(
            st.just("{id}"),
            st.just("{id}"),
            st.integers(-5, 10**20).map(str),
            TEXT,
            st.sampled_from(["²", "٣", "0", "00001", "1" * 19]),
        )
    )
    x = _pct(ident).decode()
    shape = draw(st.sampled_from(["post"] * 3 + ["list", "stream", "create", "web", "any"]))
    headers: dict[bytes, bytes] = {}
    query: dict[str, str] = {}
    body = b""
    method = "GET"
    if shape == "post":
        method, path = "POST", f"/v1/conversations/{x}/messages"
        headers[b"Authorization"] = b"Bearer " + _token(draw, b"{token}")
        body = draw(st.one_of(message_bodies(), bodies()))
    elif shape == "list":
        path = f"/v1/conversations/{x}/messages"
        headers[b"Authorization"] = b"Bearer " + _token(draw, b"{token}")
        if draw(st.booleans()):
            query["after"] = draw(st.one_of(TEXT, st.integers(-5, 10**20).map(str)))
    elif shape == "stream":
        path = f"/v1/conversations/{x}/stream"
        if draw(st.booleans()):
            query["token"] = "{token}" if draw(st.booleans()) else draw(TEXT)
        else:
            headers[b"Authorization"] = b"Bearer " + _token(draw, b"{token}")
        if draw(st.booleans()):
            headers[b"Last-Event-ID"] = draw(TEXT).encode("utf-8", "surrogatepass")
    elif shape == "create":
        method, path = "POST", "/v1/conversations"
        headers[b"Authorization"] = b"Bearer " + _token(draw, TOKEN.encode())
        body = draw(st.one_of(customer_bodies(), bodies()))
    elif shape == "web":
        method, path = "POST", "/web/conversations"
        body = draw(
            st.one_of(st.builds(lambda n: json.dumps({"name": n}).encode(), TEXT), bodies())
        )
    else:
        method = draw(st.sampled_from(["GET", "POST", "PUT", "DELETE", "HEAD", "OPTIONS"]))
        route = draw(
            st.sampled_from(
                [
                    "/v1/conversations",
                    "/v1/conversations/{x}",
                    "/v1/conversations/{x}/messages",
                    "/v1/conversations/{x}/stream",
                    "/v1/conversations/{x}/close",
                    "/healthz",
                    "/",
                    "/web/conversations",
                    "/v1/openapi.json",
                    "/{x}",
                    "/agent/v1/me",
                    "/agent/v1/events",
                    "/agent/v1/conversations/{x}",
                    "/agent/v1/conversations/{x}/claim",
                    "/agent/v1/conversations/{x}/whisper",
                    "/agent/v1/conversations/{x}/viewers",
                    "/agent/v1/kb",
                ]
            )
        )
        path = route.replace("{x}", x)
        query = draw(
            st.dictionaries(
                st.sampled_from(["after", "token", "x"]) | TEXT,
                TEXT | st.just("{token}"),
                max_size=3,
            )
        )
        if draw(st.booleans()):
            headers[b"Authorization"] = b"Bearer " + _token(draw, b"{token}")
        body = draw(bodies())
    if draw(st.integers(0, 3)) == 0:
        headers[b"Content-Type"] = draw(
            st.sampled_from(
                [b"application/json", b"text/plain", b"application/json; charset=latin-1"]
            )
        )
    return {
        "method": method,
        "path": path,
        "query": query,
        "headers": headers,
        "body": body,
        "conversation": draw(st.integers(0, POOL - 1)),
    }


def _render(req: dict[str, Any], served: Served, n: int) -> bytes:
    cid, token = served.conversations[req["conversation"] % len(served.conversations)]
    path = req["path"].replace("%7Bid%7D", cid).encode()
    if req["query"]:
        pairs = []
        for key, value in req["query"].items():
            value = token if value == "{token}" else value
            pairs.append(_pct(key) + b"=" + _pct(value))
        path += b"?" + b"&".join(pairs)
    headers = {
        # Header values cannot hold a line break: that would be another header, not a value.
        name: value.replace(b"{token}", token.encode()).replace(b"\r", b"").replace(b"\n", b"")
        for name, value in req["headers"].items()
    }
    return _http(req["method"], path, headers=headers, body=req["body"])


def _customer_writes(db: Path) -> tuple[int, int, int]:
    """What only the channel API writes: customers, conversations, the customer's feed events."""
    with Store(db, readonly=True) as store:
        row = store.one(
            "SELECT (SELECT count(*) FROM customers), (SELECT count(*) FROM conversations),"
            " (SELECT count(*) FROM events WHERE actor = 'customer')"
        )
        assert row is not None
        return int(row[0]), int(row[1]), int(row[2])


_counter = iter(range(10**9))
_rng = random.Random(11)


def _message(cid: str, body: bytes, auth: str = "customer") -> dict[str, Any]:
    return {
        "method": "POST",
        "path": f"/v1/conversations/{cid}/messages",
        "query": {},
        "headers": {b"Authorization": b"Bearer {token}"} if auth == "customer" else {},
        "body": body,
        "conversation": 0,
    }


def _get(
    path: str, query: dict[str, str] | None = None, headers: dict[bytes, bytes] | None = None
) -> dict[str, Any]:
    return {
        "method": "GET",
        "path": path,
        "query": query or {},
        "headers": {b"Authorization": b"Bearer {token}", **(headers or {})},
        "body": b"",
        "conversation": 1,
    }


@settings(
    max_examples=400,
    deadline=None,
    derandomize=True,
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)
@given(req=requests())
# The defects found by hand (issue 11), each as it was sent:
@example(req=_message("%7Bid%7D", b'{"text": "hi \\ud800"}'))
@example(req=_message("%7Bid%7D", b'{"text": "hi", "idempotency_key": "\\udfff"}'))
@example(req=_message("%7Bid%7D", b'{"text": ' + DEEP + b"}"))
@example(req=_message("%7Bid%7D", b'{"text": "hi", "n": ' + NUMBER_TOO_LONG + b"}"))
@example(req=_message("%C2%B2", b'{"text": "hi"}'))
@example(req=_get("/v1/conversations/%C2%B2/messages"))
@example(req=_get("/v1/conversations/%7Bid%7D/messages", {"after": "²"}))
@example(req=_get("/v1/conversations/%7Bid%7D/messages", {"after": "٣"}))
@example(
    req=_get(
        "/v1/conversations/%7Bid%7D/stream", {"token": "{token}"}, {b"Last-Event-ID": "²".encode()}
    )
)
@example(
    req={
        "method": "POST",
        "path": "/v1/conversations",
        "query": {},
        "headers": {b"Authorization": b"Bearer \xff\xfe"},
        "body": b"{}",
        "conversation": 0,
    }
)
@example(
    req={
        "method": "POST",
        "path": "/v1/conversations",
        "query": {},
        "headers": {b"Authorization": TOKEN.encode()},
        "body": b'{"customer": {"name": "Ma\\ud800ya", "external_id": "\\udfff"}}',
        "conversation": 0,
    }
)
@example(
    req={
        "method": "POST",
        "path": "/web/conversations",
        "query": {},
        "headers": {},
        "body": b'{"name": "\\ud83d"}',
        "conversation": 0,
    }
)
def test_no_request_gets_a_5xx_and_a_refused_one_stores_nothing(
    served: Served, req: dict[str, Any]
) -> None:
    n = next(_counter)
    # A loopback address of its own per request: the per-address limits stay out of the way.
    source = f"127.0.{_rng.randint(1, 254)}.{_rng.randint(1, 254)}"
    before = _customer_writes(served.db)
    status, head, body = _request(served.port, _render(req, served, n), source=source)
    assert 100 <= status < 500, (status, head, body[:300])
    assert b"Traceback" not in body
    if status >= 400 and req["method"] != "HEAD":
        if b"application/json" in head.lower():
            error = json.loads(body)["error"]
            assert isinstance(error, str) and error
        assert _customer_writes(served.db) == before, (status, body[:300])
