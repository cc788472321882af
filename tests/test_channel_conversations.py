"""The channel API's conversation routes and state events, over real HTTP on loopback."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
import pytest
from aiohttp.test_utils import TestServer

from console.channels.api import ApiLimits, ChannelApi
from store import Store
from store import lifecycle as lc

TOKEN = "integration-secret"


@pytest.fixture
async def session(db_path: Path) -> AsyncIterator[aiohttp.ClientSession]:
    api = ChannelApi(
        db_path, token=TOKEN, limits=ApiLimits(rate_per_s=1000, burst=1000), poll_interval=0.01
    )
    server = TestServer(api.app, host="127.0.0.1")
    await server.start_server()
    async with aiohttp.ClientSession(base_url=str(server.make_url(""))) as s:
        yield s
    await server.close()


async def _open(s: aiohttp.ClientSession) -> tuple[str, str]:
    r = await s.post(
        "/v1/conversations",
        json={"customer": {"name": "Maya"}},
        headers={"Authorization": f"Bearer {TOKEN}"},
    )
    body = await r.json()
    return body["id"], body["customer_token"]


async def _events(
    s: aiohttp.ClientSession, url: str, count: int, headers: dict[str, str] | None = None
) -> list[tuple[str, str, dict]]:
    """The first ``count`` events of a stream: (SSE id, event, data)."""
    out: list[tuple[str, str, dict]] = []

    async def read() -> None:
        async with s.get(url, headers=headers or {}) as response:
            assert response.status == 200
            frame: dict[str, str] = {}
            async for raw in response.content:
                line = raw.decode().rstrip("\n")
                if line and not line.startswith(":") and ": " in line:
                    key, _, value = line.partition(": ")
                    frame[key] = value
                elif not line and "data" in frame:
                    out.append((frame["id"], frame["event"], json.loads(frame["data"])))
                    frame = {}
                    if len(out) == count:
                        return

    await asyncio.wait_for(read(), 10)
    return out


async def test_a_web_chat_starts_with_the_assistants_greeting_by_first_name(
    session: aiohttp.ClientSession,
) -> None:
    greetings = []
    for name in ("Lee Smith", "<b>Lee</b> Smith", None):
        r = await session.post("/web/conversations", json={"name": name} if name else {})
        body = await r.json()
        r = await session.get(
            f"/v1/conversations/{body['id']}/messages",
            headers={"Authorization": f"Bearer {body['customer_token']}"},
        )
        (greeting,) = (await r.json())["messages"]
        assert greeting["role"] == "bot" and "talk to a person" in greeting["text"]
        greetings.append(greeting["text"])
    assert greetings[0].startswith("Hi Lee! ")
    # Markup is never echoed back: a name that is not plainly a name is left out.
    assert greetings[1].startswith("Hi! ") and greetings[2].startswith("Hi! ")


async def test_state_changes_stream_in_order_and_a_reconnect_resumes_after_the_last(
    session: aiohttp.ClientSession, db_path: Path
) -> None:
    cid, token = await _open(session)
    store = Store(db_path)
    mid = lc.add_customer_message(store, int(cid), "I want a person").message_id
    lc.escalate(store, int(cid), reasons=["human_request"], message="A person is coming.")
    lc.claim(store, int(cid), "ana.maria")
    lc.agent_reply(store, int(cid), "ana.maria", "Hi, I'm Ana.")
    lc.hand_back(store, int(cid), by="ana.maria")
    lc.bot_reply(store, int(cid), "Anything else?", reply_to=mid)
    lc.resolve(store, int(cid), by="hub")
    url = f"/v1/conversations/{cid}/stream?token={token}"
    events = await _events(session, url, 9)
    assert [(kind, data.get("role") or data.get("state")) for _, kind, data in events] == [
        ("opened", "bot"),
        ("message", "customer"),
        ("waiting", "waiting"),
        ("message", "system"),
        ("joined", "human"),
        ("message", "agent"),
        ("handed_back", "bot"),
        ("message", "bot"),
        ("resolved", "resolved"),
    ]
    assert events[4][2]["agent"] == "Ana" and events[5][2]["author"] == "Ana"
    # A browser reconnecting sends the last id it saw: it gets only what came after.
    resumed = await _events(session, url, 2, headers={"Last-Event-ID": events[6][0]})
    assert [kind for _, kind, _ in resumed] == ["message", "resolved"]
    assert [i for i, _, _ in resumed] == [events[7][0], events[8][0]]
    # The same with ?after= (a client that reopens the stream itself).
    resumed = await _events(session, url + f"&after={events[7][0]}", 1)
    assert resumed[0][1] == "resolved"


async def test_a_live_stream_hears_a_person_join_and_the_close(
    session: aiohttp.ClientSession, db_path: Path
) -> None:
    cid, token = await _open(session)
    reader = asyncio.create_task(
        _events(session, f"/v1/conversations/{cid}/stream?token={token}", 4)
    )
    await asyncio.sleep(0.1)
    store = Store(db_path)
    lc.claim(store, int(cid), "ben")
    lc.resolve(store, int(cid), by="ben")
    lc.add_customer_message(store, int(cid), "one more thing")
    events = await reader
    assert [kind for _, kind, _ in events] == ["opened", "joined", "resolved", "reopened"]
    assert events[2][2]["reason"] == "resolved"


async def test_the_integration_reads_the_level_and_closes_whoever_has_it(
    session: aiohttp.ClientSession, db_path: Path
) -> None:
    cid, token = await _open(session)
    store = Store(db_path)
    lc.record_triage(store, int(cid), lc.TriageMark("empathy", 0.6, ["frustration"]))
    lc.claim(store, int(cid), "ana")
    integration = {"Authorization": f"Bearer {TOKEN}"}
    customer = {"Authorization": f"Bearer {token}"}
    seen = await (await session.get(f"/v1/conversations/{cid}", headers=integration)).json()
    assert seen["state"] == "human" and seen["handled_by"] == {"kind": "agent", "name": "Ana"}
    assert (seen["level"], seen["reasons"]) == ("empathy", ["frustration"])
    theirs = await (await session.get(f"/v1/conversations/{cid}", headers=customer)).json()
    assert "level" not in theirs and "reasons" not in theirs and "customer" not in theirs
    # The customer cannot close; the integration can, even while a person has it.
    r = await session.post(f"/v1/conversations/{cid}/close", headers=customer)
    assert (r.status, (await r.json())["code"]) == (401, "invalid_token")
    r = await session.post(f"/v1/conversations/{cid}/close", headers=integration)
    assert r.status == 200 and (await r.json())["state"] == "resolved"
    actor = store.one(
        "SELECT actor, from_state FROM events WHERE conversation_id = ? AND kind = 'resolved'",
        (int(cid),),
    )
    assert tuple(actor) == ("integration", "human")


async def test_refusals_carry_a_code_and_429_a_retry_after(db_path: Path) -> None:
    api = ChannelApi(db_path, token=TOKEN, limits=ApiLimits(rate_per_s=0.5, burst=1))
    server = TestServer(api.app, host="127.0.0.1")
    await server.start_server()
    try:
        async with aiohttp.ClientSession(base_url=str(server.make_url(""))) as s:
            assert (await s.get("/healthz")).status == 200
            refused = await s.get("/healthz")
            body = await refused.json()
            assert refused.status == 429 and body["code"] == "rate_limited"
            # One token every 2 s: the client is told to wait 1-2 whole seconds, not to hammer.
            assert refused.headers["Retry-After"] in ("1", "2")
            # (credentialed: a per-conversation limit, not the address's, applies)
            missing = await (
                await s.get("/nope", headers={"Authorization": f"Bearer {TOKEN}"})
            ).json()
            assert missing["code"] == "not_found" and missing["error"]
    finally:
        await server.close()
