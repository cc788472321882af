"""Live oversight over the agent API: whisper, barge in and viewers on a real `tandem serve`,
with a real HTTP client; identity and role from the token only."""

from __future__ import annotations

import asyncio
import json

import aiohttp
import test_agent_api
from test_agent_api import Server, _auth, _call, _waiting

from store import Store
from store.feed import read_events
from store.queries import get_conversation, transcript

# The same fixtures as the agent API's own tests: a real `tandem serve`, three accounts.
server = test_agent_api.server
http = test_agent_api.http


async def _held_by_ana(server: Server, session: aiohttp.ClientSession) -> int:
    (cid,) = _waiting(server.db)
    url = server.agent(f"/conversations/{cid}/claim")
    assert (await _call(session, "POST", url, server.tokens["ana"]))[0] == 200
    return cid


async def test_a_supervisor_whispers_to_the_owner_and_an_agent_cannot(
    server: Server, http: aiohttp.ClientSession
) -> None:
    cid = await _held_by_ana(server, http)
    url = server.agent(f"/conversations/{cid}/whisper")
    status, body = await _call(http, "POST", url, server.tokens["bob"], {"text": "psst"})
    assert status == 403 and "only a supervisor can whisper" in str(body["error"])
    # A name in the body never says who writes.
    status, body = await _call(
        http, "POST", url, server.tokens["sam"], {"text": "offer the refund", "by": "bob"}
    )
    assert status == 201
    with Store(server.db) as store:
        note = next(m for m in transcript(store, cid) if m["id"] == body["id"])
    assert (note["role"], note["author"], note["meta"]) == (
        "note",
        "sam",
        {"whisper": True, "to": "ana"},
    )
    # The customer's own transcript does not carry it.
    status, bad = await _call(http, "POST", url, server.tokens["sam"], {"text": ""})
    assert status == 422 and "text" in str(bad["error"])
    (other,) = _waiting(server.db)
    status, refused = await _call(
        http,
        "POST",
        server.agent(f"/conversations/{other}/whisper"),
        server.tokens["sam"],
        {"text": "x"},
    )
    assert status == 409 and "no agent holds it" in str(refused["error"])


async def test_a_supervisor_barges_in_and_the_displaced_agent_is_refused_after(
    server: Server, http: aiohttp.ClientSession
) -> None:
    cid = await _held_by_ana(server, http)
    barge = server.agent(f"/conversations/{cid}/barge")
    status, body = await _call(http, "POST", barge, server.tokens["bob"])
    assert status == 403
    status, body = await _call(http, "POST", barge, server.tokens["sam"])
    assert status == 200, body
    assert (body["owner"], body["from"], body["state"]) == ("sam", "ana", "human")
    status, body = await _call(
        http,
        "POST",
        server.agent(f"/conversations/{cid}/reply"),
        server.tokens["ana"],
        {"text": "still here"},
    )
    assert status == 409 and body == {"error": "taken by sam", "code": "taken", "owner": "sam"}
    status, again = await _call(http, "POST", barge, server.tokens["sam"])
    assert status == 409 and "already sam's" in str(again["error"])
    with Store(server.db) as store:
        assert get_conversation(store, cid)["owner"] == "sam"
        last = [e for e in read_events(store) if e.kind == "transferred"][-1]
    assert (last.actor, last.data) == ("sam", {"from": "ana", "owner": "sam", "reason": "barge"})


async def test_viewers_join_list_and_leave(server: Server, http: aiohttp.ClientSession) -> None:
    cid = await _held_by_ana(server, http)
    url = server.agent(f"/conversations/{cid}/viewers")
    status, body = await _call(http, "POST", url, server.tokens["sam"], {"agent": "bob"})
    assert status == 200 and body["until"] > 0
    assert (await _call(http, "POST", url, server.tokens["ana"]))[0] == 200
    status, body = await _call(http, "GET", url, server.tokens["bob"])
    assert status == 200 and [v["agent"] for v in body["viewers"]] == ["sam", "ana"]
    status, wall = await _call(http, "GET", server.agent(f"/wall?ids={cid}"), server.tokens["bob"])
    assert [v["agent"] for v in wall["conversations"][0]["viewers"]] == ["sam", "ana"]
    assert (await _call(http, "DELETE", url, server.tokens["sam"])) == (200, {"left": True})
    assert (await _call(http, "DELETE", url, server.tokens["sam"])) == (200, {"left": False})
    status, body = await _call(http, "GET", url, server.tokens["bob"])
    assert [v["agent"] for v in body["viewers"]] == ["ana"]
    assert (
        await _call(http, "GET", server.agent("/conversations/99999/viewers"), server.tokens["bob"])
    )[0] == 404
    assert (
        await _call(
            http, "POST", server.agent("/conversations/99999/viewers"), server.tokens["bob"]
        )
    )[0] == 404
    async with http.post(url) as resp:
        assert resp.status == 401


async def _stream_ids(
    http: aiohttp.ClientSession, server: Server, who: str, after: int, until: int
) -> tuple[list[int], bytes]:
    """The feed ids ``who``'s stream carries from ``after`` up to ``until``, and its bytes."""
    headers = {**_auth(server.tokens[who]), "Last-Event-ID": str(after)}
    ids: list[int] = []
    raw = b""
    async with http.get(server.agent("/events"), headers=headers) as stream:
        while not ids or ids[-1] < until:
            line = await asyncio.wait_for(stream.content.readline(), timeout=20)
            raw += line
            if line.startswith(b"data: {") and b'"kind"' in line:
                ids.append(json.loads(line[6:])["id"])
    return ids, raw


async def test_a_whisper_reaches_only_its_addressee_its_author_and_supervisors(
    server: Server, http: aiohttp.ClientSession
) -> None:
    cid = await _held_by_ana(server, http)
    with Store(server.db) as store:
        before = read_events(store)[-1].id
    url = server.agent(f"/conversations/{cid}/whisper")
    status, body = await _call(
        http, "POST", url, server.tokens["sam"], {"text": "offer the refund"}
    )
    assert status == 201
    whisper = body["id"]
    note = server.agent(f"/conversations/{cid}/note")
    assert (await _call(http, "POST", note, server.tokens["ana"], {"text": "on it"}))[0] == 201
    with Store(server.db) as store:
        events = [e for e in read_events(store) if e.id > before]
    whisper_event = next(e.id for e in events if e.message_id == whisper)
    end = events[-1].id

    base = server.agent(f"/conversations/{cid}")
    for who, sees in (("ana", True), ("sam", True), ("bob", False)):
        reads = [
            (await _call(http, "GET", base, server.tokens[who]))[1]["messages"],
            (await _call(http, "GET", f"{base}/messages?after=0", server.tokens[who]))[1][
                "messages"
            ],
            (await _call(http, "GET", f"{base}/messages?last=50", server.tokens[who]))[1][
                "messages"
            ],
            (await _call(http, "GET", f"{base}/messages?before=999999", server.tokens[who]))[1][
                "messages"
            ],
        ]
        for messages in reads:
            ids = [m["id"] for m in messages]  # type: ignore[index]
            assert (whisper in ids) is sees, (who, ids)
            assert any(m["text"] == "on it" for m in messages)  # type: ignore[index]
        streamed, raw = await _stream_ids(http, server, who, before, end)
        assert (whisper_event in streamed) is sees, (who, streamed)
        assert (b"offer the refund" in raw) is sees
        # Nothing else is missing, nothing repeated: the ids are the feed's, less the whisper.
        expected = [e.id for e in events if sees or e.id != whisper_event]
        assert streamed[: len(expected)] == expected
