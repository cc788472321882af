"""The agent API (DESIGN section 12) on a real `tandem serve` process, with real HTTP clients.

Identity and role come from the account token; the store checks them in the move's own
transaction; tokens of the three kinds open disjoint routes; a disabled token is refused on
its next request and its open stream closes.
"""

from __future__ import annotations

import asyncio
import json
import shutil
import ssl
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from serve_support import TOKEN, Serve, start_serve

from store import Store, accounts
from store import lifecycle as lc
from store.feed import read_events
from store.queries import get_conversation

ROOT = Path(__file__).resolve().parents[1]
INTEGRATION = TOKEN


@dataclass
class Server:
    url: str
    db: Path
    serve: Serve
    tokens: dict[str, str]

    def agent(self, path: str) -> str:
        return f"{self.url}/agent/v1{path}"


@pytest.fixture
def server(db_path: Path) -> Iterator[Server]:
    with Store(db_path) as store:
        tokens = {
            "ana": accounts.add(store, "ana", "agent"),
            "bob": accounts.add(store, "bob", "agent"),
            "sam": accounts.add(store, "sam", "supervisor"),
        }
    running = start_serve(db_path)
    try:
        yield Server(running.url, db_path, running, tokens)
    finally:
        running.stop_cleanly()


@pytest.fixture
async def http() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as session:
        yield session


def _auth(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def _waiting(db: Path, n: int = 1) -> list[int]:
    with Store(db) as store:
        out = []
        for i in range(n):
            cid = lc.open_conversation(store, f"Customer{i}")
            lc.escalate(store, cid, reasons=["human_request"], by="cli")
            out.append(cid)
        return out


async def _call(
    session: aiohttp.ClientSession, method: str, url: str, token: str, body: object = None
) -> tuple[int, dict[str, object]]:
    async with session.request(method, url, headers=_auth(token), json=body) as resp:
        return resp.status, await resp.json()


async def test_two_agents_race_to_claim_one_wins_the_other_is_told_who(server: Server) -> None:
    ids = _waiting(server.db, 6)
    # Two consoles: two sessions (two connection pools), as two machines would be.
    async with aiohttp.ClientSession() as one, aiohttp.ClientSession() as two:
        for cid in ids:
            url = server.agent(f"/conversations/{cid}/claim")
            results = await asyncio.gather(
                _call(one, "POST", url, server.tokens["ana"]),
                _call(two, "POST", url, server.tokens["bob"]),
            )
            statuses = sorted(status for status, _ in results)
            assert statuses == [200, 409], results
            winner = next(body["owner"] for status, body in results if status == 200)
            loser = next(body for status, body in results if status == 409)
            assert loser["error"] == f"taken by {winner}" and loser["code"] == "taken"
            with Store(server.db) as store:
                assert get_conversation(store, cid)["owner"] == winner
                claims = [e for e in read_events(store) if e.conversation_id == cid]
                assert [(e.kind, e.actor) for e in claims][-1] == ("claimed", winner)


async def test_an_agent_is_refused_supervisor_moves_and_nothing_changes(
    server: Server, http: aiohttp.ClientSession
) -> None:
    waiting, held = _waiting(server.db, 2)
    ana, sam = server.tokens["ana"], server.tokens["sam"]
    assert (await _call(http, "POST", server.agent(f"/conversations/{held}/claim"), ana))[0] == 200
    with Store(server.db) as store:
        before = len(read_events(store))
    refused = [
        await _call(
            http, "POST", server.agent(f"/conversations/{waiting}/assign"), ana, {"agent": "ana"}
        ),
        await _call(http, "POST", server.agent(f"/conversations/{waiting}/release"), ana),
        await _call(
            http, "POST", server.agent(f"/conversations/{held}/transfer"), ana, {"agent": "bob"}
        ),
        await _call(http, "GET", server.agent("/metrics"), ana),
    ]
    assert [status for status, _ in refused] == [403, 403, 403, 403], refused
    assert all("only a supervisor" in str(body["error"]) for _, body in refused)
    with Store(server.db) as store:
        assert len(read_events(store)) == before
        assert get_conversation(store, waiting)["state"] == "waiting"
        assert get_conversation(store, held)["owner"] == "ana"
    # The supervisor's moves go through, recorded under the supervisor's account: a name in
    # the body says who gets the conversation, never who acts.
    status, body = await _call(
        http, "POST", server.agent(f"/conversations/{held}/transfer"), sam, {"agent": "bob"}
    )
    assert status == 200 and body["owner"] == "bob"
    status, _ = await _call(
        http,
        "POST",
        server.agent(f"/conversations/{waiting}/assign"),
        sam,
        {"agent": "ana", "by": "bob"},
    )
    assert status == 200
    status, metrics = await _call(http, "GET", server.agent("/metrics"), sam)
    assert status == 200 and metrics["states"]["human"] == 2
    with Store(server.db) as store:
        moves = [
            (e.kind, e.actor) for e in read_events(store) if e.kind in ("assigned", "transferred")
        ]
    assert moves == [("transferred", "sam"), ("assigned", "sam")]
    # The hand-over summary went with the transfer (the server's embedded one: no LLM here),
    # and bob's console finds it with the conversation.
    status, bobs = await _call(
        http, "GET", server.agent(f"/conversations/{held}"), server.tokens["bob"]
    )
    handover = bobs["handover"]
    assert status == 200 and isinstance(handover, dict) and handover["author"] == "sam"
    assert handover["summary"]["engine"] == "embedded"  # type: ignore[index]
    assert str(handover["text"]).startswith("Wants: ")


async def test_agent_moves_record_the_account_and_refuse_non_owners(
    server: Server, http: aiohttp.ClientSession
) -> None:
    (cid,) = _waiting(server.db)
    ana, bob = server.tokens["ana"], server.tokens["bob"]
    base = server.agent(f"/conversations/{cid}")
    assert (await _call(http, "POST", f"{base}/claim", ana))[0] == 200
    assert (await _call(http, "POST", f"{base}/reply", ana, {"text": "Hello, I'm here."}))[0] == 201
    status, body = await _call(http, "POST", f"{base}/reply", bob, {"text": "me too"})
    assert (status, body["error"]) == (409, "taken by ana")
    assert (await _call(http, "POST", f"{base}/note", bob, {"text": "watch this one"}))[0] == 201
    status, body = await _call(http, "POST", f"{base}/hand-back", bob)
    assert status == 409
    assert (await _call(http, "POST", f"{base}/hand-back", ana))[0] == 200
    status, body = await _call(http, "POST", f"{base}/reply", ana, {"text": "   "})
    assert status == 422
    status, body = await _call(http, "GET", base, bob)
    assert status == 200 and body["conversation"]["state"] == "bot"
    authors = [(m["role"], m["author"]) for m in body["messages"]]
    assert ("agent", "ana") in authors and ("note", "bob") in authors
    with Store(server.db) as store:
        actors = [(e.kind, e.actor) for e in read_events(store) if e.conversation_id == cid]
    assert ("claimed", "ana") in actors and ("handed_back", "ana") in actors


async def test_a_disabled_token_is_refused_at_once_and_its_stream_closes(
    server: Server, http: aiohttp.ClientSession
) -> None:
    ana = server.tokens["ana"]
    async with http.get(server.agent("/events"), headers=_auth(ana)) as stream:
        assert stream.status == 200
        first = await stream.content.readline()
        assert first == b"event: hello\n"
        done = subprocess.run(
            [
                sys.executable,
                "-m",
                "console.cli",
                "agent",
                "disable",
                "ana",
                "--db",
                str(server.db),
            ],
            cwd=ROOT,
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert done.returncode == 0, done.stderr
        # The stream says why and ends (the server closes it; EOF, not a timeout).
        rest = await asyncio.wait_for(stream.content.read(), timeout=20)
    assert b"event: revoked" in rest
    status, body = await _call(http, "GET", server.agent("/me"), ana)
    assert status == 401 and "disabled" in str(body["error"])
    # Rotation: the old token stops, the new one works.
    with Store(server.db) as store:
        old = server.tokens["bob"]
        new = accounts.rotate(store, "bob")
    assert (await _call(http, "GET", server.agent("/me"), old))[0] == 401
    assert await _call(http, "GET", server.agent("/me"), new) == (
        200,
        {"name": "bob", "role": "agent"},
    )


async def test_tokens_open_disjoint_routes(server: Server, http: aiohttp.ClientSession) -> None:
    async with http.post(
        f"{server.url}/v1/conversations",
        headers=_auth(INTEGRATION),
        json={"customer": {"name": "Maya"}},
    ) as resp:
        assert resp.status == 201
        created = await resp.json()
    cid, customer = created["id"], created["customer_token"]
    ana = server.tokens["ana"]
    for token in (customer, INTEGRATION):
        for method, path in (
            ("GET", "/me"),
            ("GET", f"/conversations/{cid}"),
            ("POST", f"/conversations/{cid}/claim"),
        ):
            status, body = await _call(http, method, server.agent(path), token)
            assert status == 401, (path, body)
    # An agent token cannot speak as the customer, nor read the customer's side.
    status, body = await _call(
        http, "POST", f"{server.url}/v1/conversations/{cid}/messages", ana, {"text": "I am Maya"}
    )
    assert status == 403, body
    status, _ = await _call(http, "GET", f"{server.url}/v1/conversations/{cid}/messages", ana)
    assert status == 403
    # Nor create conversations.
    status, _ = await _call(http, "POST", f"{server.url}/v1/conversations", ana, {"customer": {}})
    assert status == 401
    with Store(server.db) as store:
        assert [m["role"] for m in store.query("SELECT role FROM messages")] == []
    # A token in the URL is refused even when it is valid: URLs are logged.
    async with http.get(server.agent("/me"), params={"token": ana}) as resp:
        assert resp.status == 400
    # Without any token: 401, never a 5xx.
    async with http.get(server.agent("/wall")) as resp:
        assert resp.status == 401


async def test_the_stream_resumes_from_last_event_id_without_gap_or_repeat(
    server: Server, http: aiohttp.ClientSession
) -> None:
    sam = server.tokens["sam"]
    status, wall = await _call(http, "GET", server.agent("/wall"), sam)
    assert status == 200
    seen: list[int] = []

    async def read(after: int, until: int) -> None:
        headers = {**_auth(sam), "Last-Event-ID": str(after)}
        async with http.get(server.agent("/events"), headers=headers) as stream:
            assert stream.status == 200
            while not seen or seen[-1] < until:
                line = await asyncio.wait_for(stream.content.readline(), timeout=20)
                if line.startswith(b"data: {") and b'"kind"' in line:
                    seen.append(json.loads(line[6:])["id"])

    ids = _waiting(server.db, 2)
    with Store(server.db) as store:
        middle = read_events(store)[-1].id
    await read(int(wall["last_event_id"]), middle)
    _waiting(server.db, 2)
    with Store(server.db) as store:
        lc.claim(store, ids[0], "bob")
        everything = [e.id for e in read_events(store) if e.id > int(wall["last_event_id"])]
    await read(seen[-1], everything[-1])
    assert seen[: len(everything)] == everything


async def test_wrong_tokens_are_throttled_per_address(
    server: Server, http: aiohttp.ClientSession
) -> None:
    statuses = []
    for i in range(30):
        status, _ = await _call(http, "GET", server.agent("/me"), f"tdm_guess{i}")
        statuses.append(status)
        if status == 429:
            break
    assert statuses[0] == 401 and statuses[-1] == 429, statuses
    # While throttled, even the right token waits: a guesser learns nothing from the answer.
    assert (await _call(http, "GET", server.agent("/me"), server.tokens["ana"]))[0] == 429


@pytest.mark.skipif(shutil.which("openssl") is None, reason="needs the openssl command")
async def test_tls_listener(db_path: Path, tmp_path: Path) -> None:
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1"]
        + ["-subj", "/CN=127.0.0.1", "-keyout", str(key), "-out", str(cert)],
        check=True,
        capture_output=True,
        timeout=60,
    )
    with Store(db_path) as store:
        token = accounts.add(store, "ana", "agent")
    running = start_serve(db_path, "--tls-cert", str(cert), "--tls-key", str(key), scheme="https")
    url = running.url
    try:
        context = ssl.create_default_context(cafile=str(cert))
        context.check_hostname = False  # the certificate names an IP; the CA check still holds
        async with aiohttp.ClientSession() as session:
            async with session.get(f"{url}/agent/v1/me", headers=_auth(token), ssl=context) as resp:
                assert resp.status == 200 and (await resp.json())["name"] == "ana"
            with pytest.raises(aiohttp.ClientError):
                async with session.get(f"{url.replace('https', 'http')}/agent/v1/me") as resp:
                    await resp.read()
    finally:
        running.stop_cleanly()


async def test_hostile_requests_get_a_clear_4xx_never_a_5xx(
    server: Server, http: aiohttp.ClientSession
) -> None:
    (cid,) = _waiting(server.db)
    sam = server.tokens["sam"]
    conv = server.agent(f"/conversations/{cid}")
    raw_bodies: list[tuple[str, str, bytes]] = [
        ("POST", f"{conv}/reply", b"not json"),
        ("POST", f"{conv}/reply", b"[1, 2]"),
        ("POST", f"{conv}/reply", b'{"text": "\\ud800 lone surrogate"}'),
        ("POST", f"{conv}/reply", b'{"text": 12}'),
        ("POST", f"{conv}/reply", b'{"text": "hi", "draft_id": true}'),
        ("POST", f"{conv}/note", b'{"text": "' + b"x" * 30_000 + b'"}'),
        ("POST", f"{conv}/assign", b'{"agent": "Robert\'); DROP TABLE agents;--"}'),
        ("POST", f"{conv}/assign", b'{"agent": null}'),
        ("POST", f"{conv}/transfer", b'{"agent": "bot"}'),
        ("POST", f"{conv}/escalate", b'{"reason": ""}'),
        # Found by hand against a running serve: each was a 500 with a traceback in its log.
        ("POST", f"{conv}/note", b'{"text": "x", "e": ' + b"[" * 5000 + b"]" * 5000 + b"}"),
        ("POST", server.agent("/presence"), b"[" * 3000 + b"]" * 3000),
        ("POST", f"{conv}/reply", b'{"text": "hi", "draft_id": 9223372036854775808}'),
        ("GET", server.agent("/series?since=1e18"), b""),
        ("GET", server.agent("/series?at=1e300&since=1e300"), b""),
        ("POST", server.agent("/conversations/99999999999999999999/claim"), b""),
        ("POST", server.agent("/conversations/-1/claim"), b""),
        ("POST", server.agent("/conversations/999999/claim"), b""),
        ("GET", server.agent("/conversations/abc"), b""),
        ("GET", server.agent("/kb?q=" + "a" * 3000), b""),
        ("GET", server.agent("/kb?q=card&limit=lots"), b""),
        ("GET", server.agent("/metrics?sla=nan"), b""),
        ("GET", server.agent("/metrics?sla=-5"), b""),
        ("GET", server.agent("/nowhere"), b""),
        ("DELETE", conv, b""),
    ]
    for method, url, body in raw_bodies:
        async with http.request(
            method, url, data=body, headers={**_auth(sam), "Content-Type": "application/json"}
        ) as resp:
            assert 400 <= resp.status < 500, (method, url[-60:], resp.status, await resp.text())
            # A machine-readable code beside the words, as the channel API's refusals have.
            refusal = await resp.json()
            assert refusal["error"] and refusal["code"], (url[-60:], refusal)
    for headers in (
        {"Authorization": "Bearer"},
        {"Authorization": "Basic c2FtOnNhbQ=="},
        {"Authorization": "Bearer " + "tdm_" + "x" * 5000},
        {"Authorization": f"Bearer {sam}", "Last-Event-ID": "-3"},
        {"Authorization": f"Bearer {sam}", "Last-Event-ID": "9" * 40},
    ):
        async with http.get(server.agent("/events"), headers=headers) as resp:
            assert 400 <= resp.status < 500, (headers, resp.status)
    with Store(server.db) as store:
        assert get_conversation(store, cid)["state"] == "waiting"
        assert "Robert" not in str(store.query("SELECT name FROM agents"))
    # As the owner too: text the store cannot hold is refused, not a 500.
    assert (await _call(http, "POST", f"{conv}/claim", sam))[0] == 200
    async with http.post(
        f"{conv}/reply", data=b'{"text": "\\ud800 lone surrogate"}', headers=_auth(sam)
    ) as resp:
        assert resp.status == 422, await resp.text()


async def _draft(
    session: aiohttp.ClientSession, url: str, token: str
) -> tuple[int, list[tuple[str, dict[str, object]]], bytes]:
    """POST a draft request; the status, the (event, data) pairs and the raw bytes."""
    async with session.post(url, headers=_auth(token), json={}) as resp:
        raw = await resp.read()
        if resp.status != 200:
            return resp.status, [], raw
    events = []
    for frame in raw.decode().split("\n\n"):
        lines = dict(line.split(": ", 1) for line in frame.splitlines() if ": " in line)
        if "event" in lines:
            events.append((lines["event"], json.loads(lines["data"])))
    return 200, events, raw


def _with_customer(db: Path) -> int:
    (cid,) = _waiting(db)
    with Store(db) as store:
        lc.add_customer_message(store, cid, "My card was declined at the shop, why?")
    return cid


async def test_drafts_are_written_on_the_server_and_logged_for_the_owner(
    server: Server, http: aiohttp.ClientSession
) -> None:
    cid = _with_customer(server.db)
    ana, bob = server.tokens["ana"], server.tokens["bob"]
    base = server.agent(f"/conversations/{cid}")
    status, _, raw = await _draft(http, f"{base}/draft", ana)
    assert status == 409 and b"claim conversation" in raw
    assert (await _call(http, "POST", f"{base}/claim", ana))[0] == 200
    status, _, raw = await _draft(http, f"{base}/draft", bob)
    assert status == 409 and b"taken by ana" in raw
    status, events, _ = await _draft(http, f"{base}/draft", ana)
    assert status == 200
    kinds = [k for k, _ in events]
    assert kinds[0] == "started" and kinds[-1] == "finished" and "text" in kinds, kinds
    finished = events[-1][1]
    text = "".join(str(d["text"]) for k, d in events if k == "text")
    assert finished["text"] == text and finished["engine"] == "embedded" and text.strip()
    draft_id = finished["draft_id"]
    # Someone else's draft cannot be claimed as yours; your own is logged as sent.
    status, body = await _call(
        http, "POST", f"{base}/reply", bob, {"text": "x", "draft_id": draft_id}
    )
    assert status == 403, body
    status, body = await _call(
        http, "POST", f"{base}/reply", ana, {"text": text, "draft_id": draft_id}
    )
    assert (status, body["draft_outcome"]) == (201, "accepted"), body
    status, stats = await _call(http, "GET", server.agent("/drafts/stats"), bob)
    assert status == 200 and stats["by_outcome"]["accepted"] == 1


async def test_the_llm_key_stays_on_the_server(db_path: Path, fake_openai) -> None:
    key = "sk-server-only-4c1d"
    fake_openai.reply = "I am sorry about the declined card; let me check it."
    env = {"OPENAI_BASE_URL": fake_openai.base_url, "OPENAI_API_KEY": key, "TANDEM_MODEL": "fake-1"}
    with Store(db_path) as store:
        token = accounts.add(store, "ana", "agent")
    running = start_serve(db_path, env_extra=env)
    url = running.url
    try:
        cid = _with_customer(db_path)
        base = f"{url}/agent/v1/conversations/{cid}"
        async with aiohttp.ClientSession() as session:
            assert (await _call(session, "POST", f"{base}/claim", token))[0] == 200
            status, events, raw = await _draft(session, f"{base}/draft", token)
            _, conversation = await _call(session, "GET", base, token)
        assert status == 200 and events[-1][1]["engine"] == "llm", events[-1]
        assert events[-1][1]["text"] == fake_openai.reply
        assert key not in raw.decode() and key not in json.dumps(conversation)
        assert any(key in str(h) for h in fake_openai.headers)  # the server used it
    finally:
        running.stop_cleanly()


async def test_one_account_cannot_hold_every_stream(
    server: Server, http: aiohttp.ClientSession
) -> None:
    ana = server.tokens["ana"]
    url = server.agent("/events")
    opened = [await http.get(url, headers=_auth(ana)) for _ in range(8)]
    try:
        assert [r.status for r in opened] == [200] * 8
        async with http.get(url, headers=_auth(ana)) as refused:
            assert (
                refused.status == 429
                and "too many open streams for ana" in (await refused.json())["error"]
            )
        async with http.get(url, headers=_auth(server.tokens["bob"])) as other:
            assert other.status == 200  # another account is not affected
        opened.pop().close()
        deadline = time.monotonic() + 20
        while True:  # the server notices the closed stream at its next wake
            async with http.get(url, headers=_auth(ana)) as again:
                if again.status == 200:
                    break
            assert time.monotonic() < deadline, "a closed stream was never given back"
            await asyncio.sleep(0.2)
    finally:
        for r in opened:
            r.close()


async def test_reads_for_a_remote_console_and_take_next(
    server: Server, http: aiohttp.ClientSession
) -> None:
    ana, bob = server.tokens["ana"], server.tokens["bob"]
    with Store(server.db) as store:
        calm = lc.open_conversation(store, "Calm")
        lc.escalate(store, calm, reasons=["human_request"], by="cli")
        urgent = lc.open_conversation(store, "Urgent")
        lc.add_customer_message(store, urgent, "someone took money from my account")
        lc.escalate(store, urgent, reasons=["fraud"], level="urgent", score=0.9, by="cli")
        lc.add_note(store, urgent, "sam", "call the fraud team")
        done = lc.open_conversation(store, "Done")
        lc.resolve(store, done, by="hub")
    # Take next: the queue's order (most in need first), each conversation to one agent only.
    status, first = await _call(http, "POST", server.agent("/claim-next"), ana)
    assert (status, first["id"], first["owner"]) == (200, str(urgent), "ana")
    status, second = await _call(http, "POST", server.agent("/claim-next"), bob)
    assert (status, second["id"], second["owner"]) == (200, str(calm), "bob")
    status, body = await _call(http, "POST", server.agent("/claim-next"), bob)
    assert (status, body["error"]) == (404, "nobody is waiting")
    # Rows for the ids a feed batch touched, in any state (a resolved one leaves the wall).
    status, body = await _call(http, "GET", server.agent(f"/wall?ids={done},{urgent}"), ana)
    assert status == 200
    assert {c["id"]: c["state"] for c in body["conversations"]} == {
        done: "resolved",
        urgent: "human",
    }
    # Transcript windows, notes included for agents.
    base = server.agent(f"/conversations/{urgent}/messages")
    status, body = await _call(http, "GET", f"{base}?last=10", ana)
    roles = [m["role"] for m in body["messages"]]
    assert status == 200 and roles[0] == "customer" and "note" in roles
    first_id = body["messages"][0]["id"]
    status, body = await _call(http, "GET", f"{base}?after={first_id}", ana)
    assert all(m["id"] > first_id for m in body["messages"]) and body["messages"]
    status, body = await _call(http, "GET", f"{base}?before={first_id}", ana)
    assert (status, body["messages"]) == (200, [])
    for bad in ("?after=-1", "?last=x", "?before=1e9"):
        assert (await _call(http, "GET", f"{base}{bad}", ana))[0] == 400
    assert (await _call(http, "GET", server.agent("/wall?ids=1,x"), ana))[0] == 400


async def test_non_ascii_digits_in_ids_and_cursors_are_refused_not_crashed(
    server: Server, http: aiohttp.ClientSession
) -> None:
    # '²'.isdigit() is true but int('²') raises: the channel API's defect, once here too.
    ana = server.tokens["ana"]
    base = f"{server.url}/agent/v1"
    (cid,) = _waiting(server.db)
    for path, expected in (
        ("conversations/%C2%B2", 404),
        ("conversations/%D9%A3", 404),
        (f"conversations/{cid}/messages?after=%C2%B2", 400),
    ):
        status, body = await _call(http, "GET", f"{base}/{path}", ana)
        assert status == expected, (path, status, body)
        assert "error" in body


async def test_routing_on_a_real_serve_assigns_to_online_agents_under_capacity(
    db_path: Path, http: aiohttp.ClientSession, tmp_path: Path
) -> None:
    with Store(db_path) as store:
        ana = accounts.add(store, "ana", "agent")
        bob = accounts.add(store, "bob", "agent")
    policy = tmp_path / "policy.toml"
    policy.write_text('[routing]\nmode = "least_loaded"\ncapacity = 1\ninterval_s = 0.05\n')
    running = start_serve(db_path, "--policy", str(policy))
    server = Server(running.url, db_path, running, {"ana": ana, "bob": bob})

    def state(cid: int) -> tuple[str, str | None]:
        with Store(db_path) as s:
            conv = get_conversation(s, cid)
        return conv["state"], conv["owner"]

    async def until(cond: Callable[[], bool], what: str) -> None:
        deadline = time.monotonic() + 20
        while not cond():
            assert time.monotonic() < deadline, what
            await asyncio.sleep(0.05)

    try:
        first, second = _waiting(db_path, 2)
        bad = await _call(http, "POST", server.agent("/presence"), ana, {"status": "busy"})
        assert bad[0] == 422 and "status must be one of" in str(bad[1]["error"])
        status, _ = await _call(http, "POST", server.agent("/presence"), ana, {"status": "online"})
        assert status == 200
        # The hub assigns the first in the queue to ana, who is online; ana is then full.
        await until(lambda: state(first) == ("human", "ana"), "assigned to ana")
        status, body = await _call(http, "POST", server.agent("/claim-next"), ana)
        assert (status, body.get("code")) == (409, "at_capacity"), body
        assert state(second) == ("waiting", None)
        # bob comes online: the second is his.
        await _call(http, "POST", server.agent("/presence"), bob, {"status": "online"})
        await until(lambda: state(second) == ("human", "bob"), "assigned to bob")
        with Store(db_path) as s:
            actors = {e.actor for e in read_events(s) if e.kind == "assigned"}
        assert actors == {"router"}
    finally:
        running.stop_cleanly()


async def test_each_batch_carries_its_rows_ahead_of_its_events(
    server: Server, http: aiohttp.ClientSession
) -> None:
    # A console needs no GET wall?ids= after a batch: the rows come first, as new as the
    # events after them, and carry no id (resuming is the feed's alone).
    bob = server.tokens["bob"]
    status, wall = await _call(http, "GET", server.agent("/wall"), bob)
    (cid,) = _waiting(server.db)
    with Store(server.db) as store:
        lc.claim(store, cid, "ana")
        end = read_events(store)[-1].id
    frames: list[tuple[str, dict[str, Any]]] = []
    headers = {**_auth(bob), "Last-Event-ID": str(wall["last_event_id"])}
    async with http.get(server.agent("/events"), headers=headers) as stream:
        kind = ""
        while not frames or frames[-1][0] != "feed" or frames[-1][1]["id"] < end:
            line = await asyncio.wait_for(stream.content.readline(), timeout=20)
            if line.startswith(b"event: "):
                kind = line[7:].strip().decode()
            elif line.startswith(b"data: ") and kind in ("rows", "feed"):
                frames.append((kind, json.loads(line[6:])))
    rows: dict[int, dict[str, Any]] = {}
    for kind, data in frames:
        if kind == "rows":
            rows = {r["id"]: r for r in data["conversations"]}
        elif data["conversation_id"] == cid:
            assert cid in rows, frames  # its row came before it
    assert frames[0][0] == "rows"
    assert (rows[cid]["state"], rows[cid]["owner"]) == ("human", "ana")

    # The console's feed takes those rows: after the batch, the claim's row is there even
    # once the server would refuse a fetch (bob's token rotated).
    import threading

    from console.backend.remote import RemoteBackend

    feed = RemoteBackend(server.url, bob).open_feed(threading.Event(), lambda _: None)
    try:
        feed.snapshot()
        with Store(server.db) as store:
            lc.hand_back(store, cid, by="ana")
            moved = read_events(store)[-1].id
        deadline = time.monotonic() + 20
        while feed.cursor < moved and time.monotonic() < deadline:
            await asyncio.to_thread(feed.poll)
            await asyncio.sleep(0.02)
        with Store(server.db) as store:
            accounts.rotate(store, "bob")
        (row,) = feed.rows([cid])
        assert (row["state"], row["owner"]) == ("bot", None)
    finally:
        feed.close()
