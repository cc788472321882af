"""The OpenAPI description is true: every route is described, and every answer the API gives
(successes and refusals alike) matches the status, content type, headers and schema that the
description documents for it. Answers come from a real server over real HTTP."""

from __future__ import annotations

import asyncio
import contextlib
import json
import re
import sqlite3
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp.test_utils import TestServer
from jsonschema import Draft202012Validator
from referencing import Registry, Resource
from referencing.jsonschema import DRAFT202012

from console.channels.api import ApiLimits, ChannelApi
from store import Store
from store import lifecycle as lc

TOKEN = "integration-secret"
SPEC_PATH = Path(__file__).parents[1] / "console" / "channels" / "openapi.json"
SPEC: dict[str, Any] = json.loads(SPEC_PATH.read_text(encoding="utf-8"))
BASE = "urn:tandem:openapi"
REGISTRY = Registry().with_resource(BASE, Resource(contents=SPEC, specification=DRAFT202012))
METHODS = ("get", "post", "put", "patch", "delete")


def _validator(schema: dict[str, Any]) -> Draft202012Validator:
    """A validator for a schema of the description (a reference into it, or one written inline)."""
    if "$ref" in schema:
        return Draft202012Validator({"$ref": BASE + schema["$ref"]}, registry=REGISTRY)
    return Draft202012Validator(schema)


def _deref(node: dict[str, Any]) -> dict[str, Any]:
    while "$ref" in node:
        target: Any = SPEC
        for part in node["$ref"].removeprefix("#/").split("/"):
            target = target[part]
        node = target
    return node


def _operations() -> dict[str, tuple[str, str, dict[str, Any]]]:
    ops = {}
    for path, item in SPEC["paths"].items():
        for method in METHODS:
            if method in item:
                ops[item[method]["operationId"]] = (method.upper(), path, item[method])
    return ops


OPERATIONS = _operations()


class Recorder:
    """Checks each answer against the description and remembers which ones were seen."""

    def __init__(self) -> None:
        self.seen: set[tuple[str, str]] = set()

    def check(self, op_id: str, status: int, headers: Any, body: bytes) -> None:
        _method, path, op = OPERATIONS[op_id]
        documented = op["responses"]
        key = str(status) if str(status) in documented else f"{str(status)[0]}XX"
        assert key in documented, f"{op_id} answered {status}, not described: {body[:200]!r}"
        response = _deref(documented[key])
        for name, header in response.get("headers", {}).items():
            value = headers.get(name)
            if header.get("required"):
                assert value is not None, f"{op_id} {status}: no {name} header"
            if value is not None:
                _validator(header["schema"]).validate(value)
        content_type = headers.get("Content-Type", "").split(";")[0].strip()
        assert content_type in response["content"], f"{op_id} {status}: {content_type}"
        schema = response["content"][content_type]["schema"]
        if content_type == "application/json":
            _validator(schema).validate(json.loads(body))
        else:
            _validator(schema).validate(body.decode("utf-8"))
        self.seen.add((op_id, key))


@pytest.fixture
def recorder() -> Recorder:
    return Recorder()


@contextlib.asynccontextmanager
async def _server(
    db_path: Path, limits: ApiLimits
) -> AsyncIterator[tuple[aiohttp.ClientSession, ChannelApi]]:
    api = ChannelApi(db_path, token=TOKEN, limits=limits, poll_interval=0.01)
    server = TestServer(api.app, host="127.0.0.1")
    await server.start_server()
    try:
        async with aiohttp.ClientSession(base_url=str(server.make_url(""))) as session:
            yield session, api
    finally:
        await server.close()


def _url(op_id: str, cid: str = "1", query: str = "") -> str:
    return OPERATIONS[op_id][1].replace("{id}", cid) + query


async def _call(
    session: aiohttp.ClientSession,
    recorder: Recorder,
    op_id: str,
    *,
    cid: str = "1",
    query: str = "",
    token: str | None = None,
    body: Any = None,
    raw: bytes | None = None,
    headers: dict[str, str] | None = None,
) -> tuple[int, Any]:
    method = OPERATIONS[op_id][0]
    sent = dict(headers or {})
    if token:
        sent["Authorization"] = f"Bearer {token}"
    data = raw if raw is not None else (json.dumps(body).encode() if body is not None else None)
    if data is not None:
        sent.setdefault("Content-Type", "application/json")
    async with session.request(
        method, _url(op_id, cid, query), data=data, headers=sent
    ) as response:
        content = await response.read()
        recorder.check(op_id, response.status, response.headers, content)
        is_json = response.content_type == "application/json"
        return response.status, json.loads(content) if is_json else content


async def _stream_events(
    session: aiohttp.ClientSession, cid: str, token: str, count: int
) -> list[tuple[str, dict[str, Any]]]:
    events: list[tuple[str, dict[str, Any]]] = []
    async with session.get(f"/v1/conversations/{cid}/stream?token={token}") as response:
        assert response.status == 200
        frame: dict[str, str] = {}
        async for raw in response.content:
            line = raw.decode().rstrip("\n")
            if line and not line.startswith(":") and ": " in line:
                key, _, value = line.partition(": ")
                frame[key] = value
            elif not line and "data" in frame:
                events.append((frame["event"], json.loads(frame["data"])))
                frame = {}
                if len(events) == count:
                    break
    return events


def test_the_description_is_openapi_3_1_and_its_schemas_are_valid() -> None:
    assert SPEC["openapi"].startswith("3.1.")
    for name, schema in SPEC["components"]["schemas"].items():
        Draft202012Validator.check_schema(schema), name
    # Every reference points at something that exists.
    text = SPEC_PATH.read_text(encoding="utf-8")
    for ref in set(re.findall(r'"\$ref": "([^"]+)"', text)):
        _deref({"$ref": ref})
    assert set(SPEC["webhooks"]) and all("post" in w for w in SPEC["webhooks"].values())


def test_every_route_is_described_and_every_description_is_a_route(db_path: Path) -> None:
    api = ChannelApi(db_path, token=TOKEN)
    try:
        served = {
            (route.method, route.resource.canonical)
            for route in api.app.router.routes()
            if route.method in {m.upper() for m in METHODS} and route.resource is not None
        }
    finally:
        api.store.close()
    described = {(method, path) for method, path, _ in OPERATIONS.values()}
    assert served == described


async def test_real_answers_match_the_description(db_path: Path, recorder: Recorder) -> None:
    generous = ApiLimits(rate_per_s=1000, burst=1000)
    async with _server(db_path, generous) as (s, _api):
        # The page and the description itself.
        for op in ("webChatPage", "webChatScript", "webChatStyle", "openapi", "health"):
            assert (await _call(s, recorder, op))[0] == 200
        status, spec = await _call(s, recorder, "openapi")
        assert spec == SPEC

        # Opening conversations: the integration's and the web page's.
        status, opened = await _call(
            s, recorder, "createConversation", token=TOKEN, body={"customer": {"name": "Maya"}}
        )
        assert status == 201
        cid, customer = opened["id"], opened["customer_token"]
        assert (await _call(s, recorder, "createConversation", body={}))[0] == 401
        assert (await _call(s, recorder, "createConversation", token=TOKEN, raw=b"{"))[0] == 400
        assert (await _call(s, recorder, "createConversation", token=TOKEN, body={"customer": 5}))[
            0
        ] == 422
        too_big = b'{"customer": {"name": "' + b"x" * 70_000 + b'"}}'
        assert (await _call(s, recorder, "createConversation", token=TOKEN, raw=too_big))[0] == 413
        status, web = await _call(s, recorder, "startWebChat", body={"name": "Lee"})
        assert status == 201
        assert (await _call(s, recorder, "startWebChat", raw=b"[]"))[0] == 400
        assert (await _call(s, recorder, "startWebChat", body={"name": 7}))[0] == 422
        assert (await _call(s, recorder, "startWebChat", raw=too_big))[0] == 413

        # Writing, with every refusal.
        post = {"text": "where is my refund?", "idempotency_key": "k1"}
        assert (await _call(s, recorder, "postMessage", cid=cid, token=customer, body=post))[
            0
        ] == 201
        assert (await _call(s, recorder, "postMessage", cid=cid, token=customer, body=post))[
            0
        ] == 200
        status, body = await _call(
            s,
            recorder,
            "postMessage",
            cid=cid,
            token=customer,
            body={"text": "something else", "idempotency_key": "k1"},
        )
        assert (status, body["code"]) == (409, "idempotency_conflict")
        for bad, expected in (
            ({"text": ""}, 422),
            ({"text": "x" * 4001}, 413),
            ({"text": "ok", "idempotency_key": 5}, 422),
        ):
            assert (await _call(s, recorder, "postMessage", cid=cid, token=customer, body=bad))[
                0
            ] == expected
        assert (await _call(s, recorder, "postMessage", cid=cid, token=customer, raw=b"\xff"))[
            0
        ] == 400
        assert (await _call(s, recorder, "postMessage", cid=cid, body=post))[0] == 401
        assert (
            await _call(s, recorder, "postMessage", cid=cid, token=web["customer_token"], body=post)
        )[0] == 403
        assert (await _call(s, recorder, "postMessage", cid="99999", token=customer, body=post))[
            0
        ] == 404

        # Reading: the state, the messages, the stream.
        status, conv = await _call(s, recorder, "getConversation", cid=cid, token=customer)
        assert status == 200 and "level" not in conv and conv["handled_by"] == {"kind": "bot"}
        status, conv = await _call(s, recorder, "getConversation", cid=cid, token=TOKEN)
        assert status == 200 and conv["level"] == "calm" and conv["customer"]["name"] == "Maya"
        assert (await _call(s, recorder, "getConversation", cid=cid))[0] == 401
        assert (await _call(s, recorder, "getConversation", cid=cid, token=web["customer_token"]))[
            0
        ] == 403
        assert (await _call(s, recorder, "getConversation", cid="404040", token=TOKEN))[0] == 404
        status, page = await _call(s, recorder, "listMessages", cid=cid, token=customer)
        assert status == 200 and [m["role"] for m in page["messages"]] == ["customer"]
        for op in ("listMessages", "stream"):
            assert (await _call(s, recorder, op, cid=cid, token=customer, query="?after=-3"))[
                0
            ] == 400
            assert (await _call(s, recorder, op, cid=cid))[0] == 401
            assert (await _call(s, recorder, op, cid=cid, token=web["customer_token"]))[0] == 403
            assert (await _call(s, recorder, op, cid="777777", token=customer))[0] == 404

        store = Store(db_path)
        mid = int(page["messages"][0]["id"])
        lc.bot_reply(store, int(cid), "Which refund?", reply_to=mid, meta={"choices": ["A", "B"]})
        lc.claim(store, int(cid), "ana")
        lc.agent_reply(store, int(cid), "ana", "I'm on it.")
        lc.hand_back(store, int(cid), by="ana")
        events = await asyncio.wait_for(_stream_events(s, cid, customer, 6), 10)
        assert [kind for kind, _ in events] == [
            "opened",
            "message",
            "message",
            "joined",
            "message",
            "handed_back",
        ]
        assert events[2][1]["choices"] == ["A", "B"] and events[3][1]["agent"] == "Ana"
        stream_types = _deref(OPERATIONS["stream"][2]["responses"]["200"])["x-events"]
        for kind, data in events:
            schema = stream_types["message" if kind == "message" else "state"]
            _validator(schema).validate(data)
            assert kind == "message" or data["type"] == kind
        recorder.seen.add(("stream", "200"))

        # Rating: only once closed; closing is the integration's.
        rating = {"score": 4, "comment": "helpful"}
        status, body = await _call(
            s, recorder, "rateConversation", cid=cid, token=customer, body=rating
        )
        assert (status, body["code"]) == (409, "not_closed")
        assert (await _call(s, recorder, "closeConversation", cid=cid, token=customer))[0] == 401
        assert (await _call(s, recorder, "closeConversation", cid="505050", token=TOKEN))[0] == 404
        assert (await _call(s, recorder, "closeConversation", cid=cid, token=TOKEN, raw=b"{"))[
            0
        ] == 400
        assert (await _call(s, recorder, "closeConversation", cid=cid, token=TOKEN, raw=too_big))[
            0
        ] == 413
        status, closed = await _call(s, recorder, "closeConversation", cid=cid, token=TOKEN)
        assert status == 200 and closed["state"] == "resolved" and closed["handled_by"] is None
        assert (await _call(s, recorder, "closeConversation", cid=cid, token=TOKEN))[0] == 200
        assert (await _call(s, recorder, "rateConversation", cid=cid, token=customer, body=rating))[
            0
        ] == 201
        status, body = await _call(
            s, recorder, "rateConversation", cid=cid, token=customer, body={"score": 5}
        )
        assert status == 200 and body["replaced"] and body["comment"] is None
        for bad, expected in (
            ({"score": 0}, 422),
            ({"score": "5"}, 422),
            ({"score": 3, "comment": ["no"]}, 422),
            ({"score": 3, "comment": "x" * 1001}, 413),
        ):
            assert (
                await _call(s, recorder, "rateConversation", cid=cid, token=customer, body=bad)
            )[0] == expected
        assert (await _call(s, recorder, "rateConversation", cid=cid, token=customer, raw=b"1"))[
            0
        ] == 400
        assert (await _call(s, recorder, "rateConversation", cid=cid, body=rating))[0] == 401
        assert (
            await _call(
                s, recorder, "rateConversation", cid=cid, token=web["customer_token"], body=rating
            )
        )[0] == 403
        assert (
            await _call(s, recorder, "rateConversation", cid="606060", token=customer, body=rating)
        )[0] == 404
        status, conv = await _call(s, recorder, "getConversation", cid=cid, token=customer)
        assert conv["rating"] == {"score": 5, "comment": None}
        store.close()

    # Refusals for going too fast: every route answers 429 with Retry-After.
    tight = ApiLimits(rate_per_s=0.01, burst=2, integration_rate_per_s=0.01, integration_burst=1)
    async with _server(db_path, tight) as (s, _api):
        for op in ("health", "openapi", "webChatPage", "webChatScript", "webChatStyle"):
            statuses = [(await _call(s, recorder, op))[0] for _ in range(3)]
            assert statuses[-1] == 429, (op, statuses)
        assert (await _call(s, recorder, "startWebChat", body={}))[0] == 429
        statuses = [
            (await _call(s, recorder, "createConversation", token=TOKEN, body={}))[0]
            for _ in range(2)
        ]
        assert statuses == [201, 429]
        for op in ("getConversation", "listMessages"):
            statuses = [
                (await _call(s, recorder, op, cid=cid, token=customer))[0] for _ in range(3)
            ]
            assert statuses[-1] == 429, (op, statuses)
        statuses = [
            (await _call(s, recorder, "postMessage", cid=cid, token=customer, body={"text": "hi"}))[
                0
            ]
            for _ in range(3)
        ]
        assert statuses[-1] == 429
        # Too many failed credentials from one address: every credentialed route is refused.
        for _ in range(3):
            await _call(s, recorder, "getConversation", cid=cid, token="wrong-token")
        for op in ("stream", "rateConversation", "closeConversation"):
            body = {"score": 3} if op == "rateConversation" else None
            assert (await _call(s, recorder, op, cid=cid, token=TOKEN, body=body))[0] == 429

    # The store unavailable (another process holds the write lock): 503 with Retry-After.
    await _unavailable(db_path, recorder, cid, customer)

    documented = {
        (op_id, status) for op_id, (_m, _p, op) in OPERATIONS.items() for status in op["responses"]
    }
    assert documented - recorder.seen == set()


async def _unavailable(db_path: Path, recorder: Recorder, cid: str, customer: str) -> None:
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("TANDEM_BUSY_TIMEOUT_MS", "50")
        generous = ApiLimits(rate_per_s=1000, burst=1000)
        async with _server(db_path, generous) as (s, _api):
            locker = sqlite3.connect(db_path, isolation_level=None)
            locker.execute("BEGIN IMMEDIATE")
            try:
                for op, kwargs in (
                    ("startWebChat", {"body": {}}),
                    ("createConversation", {"token": TOKEN, "body": {}}),
                    ("postMessage", {"cid": cid, "token": customer, "body": {"text": "hello?"}}),
                    ("rateConversation", {"cid": cid, "token": customer, "body": {"score": 2}}),
                    ("closeConversation", {"cid": cid, "token": TOKEN}),
                ):
                    status, body = await _call(s, recorder, op, **kwargs)  # type: ignore[arg-type]
                    assert (status, body["code"]) == (503, "unavailable"), op
            finally:
                locker.execute("ROLLBACK")
                locker.close()
