"""Signed webhooks against a real local receiver (aiohttp on loopback), over a real store file."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import subprocess
import sys
import time
from collections import Counter
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer

from console.channels.webhooks import CURSOR, RetryPolicy, Webhooks, verify
from console.config import ConfigError, WebhookConfig, load_webhook_config
from store import Store, ratings
from store import lifecycle as lc
from store import webhooks as outbox
from store.feed import load_cursor

SECRET = "a-shared-secret-for-tests"
FAST = RetryPolicy(max_attempts=3, first_delay_s=0.05, max_delay_s=0.2, timeout_s=2.0)


@dataclass
class Receiver:
    """An integration's endpoint: records every request; ``answer`` picks the status."""

    answer: Callable[[str, int], int] = lambda _delivery, _attempt: 200
    requests: list[dict] = field(default_factory=list)
    attempts: Counter = field(default_factory=Counter)

    async def handle(self, request: web.Request) -> web.Response:
        body = await request.read()
        delivery = request.headers.get("Tandem-Delivery", "")
        self.attempts[delivery] += 1
        status = self.answer(delivery, self.attempts[delivery])
        self.requests.append(
            {
                "body": body,
                "headers": dict(request.headers),
                "status": status,
                "received_at": time.time(),
            }
        )
        return web.Response(status=status, text="ok" if status < 300 else "no")

    def accepted(self) -> list[dict]:
        return [json.loads(r["body"]) for r in self.requests if r["status"] < 300]


@contextlib.asynccontextmanager
async def _receiver(receiver: Receiver) -> AsyncIterator[str]:
    app = web.Application()
    app.router.add_post("/hook", receiver.handle)
    server = TestServer(app, host="127.0.0.1")
    await server.start_server()
    try:
        yield str(server.make_url("/hook"))
    finally:
        await server.close()


@contextlib.asynccontextmanager
async def _dispatching(db_path: Path, url: str) -> AsyncIterator[Webhooks]:
    hooks = Webhooks(db_path, WebhookConfig((url,), SECRET), retry=FAST, poll_interval=0.02)
    stop = asyncio.Event()
    task = asyncio.create_task(hooks.run(stop))
    try:
        yield hooks
    finally:
        stop.set()
        await asyncio.wait_for(task, 10)


async def _until(check: Callable[[], bool], what: str, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.02)


def _a_whole_conversation(store: Store) -> int:
    """Opened, customer, bot, a person joins and answers, resolved, rated; plus a note."""
    cid = lc.open_conversation(store, "Maya")
    mid = lc.add_customer_message(store, cid, "<b>where</b> is my refund?").message_id
    lc.bot_reply(store, cid, "Refunds take 3-5 working days.", reply_to=mid)
    lc.claim(store, cid, "ana.lopez")
    lc.add_note(store, cid, "ana.lopez", "internal: never sent out")
    lc.agent_reply(store, cid, "ana.lopez", "I've checked: it is on its way.")
    lc.resolve(store, cid, by="ana.lopez")
    ratings.rate(store, cid, 5, "quick and kind")
    return cid


async def test_every_delivery_is_signed_and_reports_messages_and_state(db_path: Path) -> None:
    store = Store(db_path)
    receiver = Receiver()
    async with _receiver(receiver) as url, _dispatching(db_path, url):
        await _until(lambda: load_cursor(store, CURSOR) is not None, "the dispatcher to start")
        cid = _a_whole_conversation(store)
        await _until(lambda: len(receiver.accepted()) >= 7, "seven deliveries")
    bodies = receiver.accepted()
    assert [b["type"] for b in bodies] == [
        "opened",
        "message",
        "message",
        "joined",
        "message",
        "resolved",
        "rated",
    ]
    assert all(b["conversation_id"] == str(cid) for b in bodies)
    assert all(isinstance(b["event_id"], str) and b["event_id"].isdigit() for b in bodies)
    # Customer text is carried as data, unchanged; the note never leaves; agents by first name.
    messages = [b["data"] for b in bodies if b["type"] == "message"]
    assert messages[0]["text"] == "<b>where</b> is my refund?"
    assert [m["role"] for m in messages] == ["customer", "bot", "agent"]
    assert messages[2]["author"] == "Ana" and all(isinstance(m["id"], str) for m in messages)
    assert not any("never sent out" in r["body"].decode() for r in receiver.requests)
    assert bodies[3]["data"]["agent"] == "Ana" and bodies[3]["data"]["state"] == "human"
    assert bodies[6]["data"]["score"] == 5
    for request in receiver.requests:
        headers, body = request["headers"], request["body"]
        assert verify(SECRET, body, headers["Tandem-Signature"])
        assert headers["Tandem-Delivery"] == json.loads(body)["delivery_id"]
        assert headers["Tandem-Event"] == json.loads(body)["type"]
        # A changed body, another secret, or the same request replayed later do not verify.
        assert not verify(SECRET, body[:-1] + b" }", headers["Tandem-Signature"])
        assert not verify("another-secret-entirely", body, headers["Tandem-Signature"])
        assert not verify(
            SECRET, body, headers["Tandem-Signature"], now=request["received_at"] + 3600
        )
    assert outbox.counts(store) == {"pending": 0, "delivered": 7, "dead": 0}


async def test_retries_after_500s_with_the_same_delivery_id_and_no_duplicates(
    db_path: Path,
) -> None:
    store = Store(db_path)
    # Every delivery fails twice with a 500, then succeeds on the third attempt.
    receiver = Receiver(answer=lambda _d, attempt: 500 if attempt < 3 else 204)
    async with _receiver(receiver) as url, _dispatching(db_path, url):
        await _until(lambda: load_cursor(store, CURSOR) is not None, "the dispatcher to start")
        _a_whole_conversation(store)
        await _until(lambda: len(receiver.accepted()) >= 7, "seven deliveries accepted")
    accepted = receiver.accepted()
    ids = [b["delivery_id"] for b in accepted]
    assert len(ids) == len(set(ids)) == 7
    assert all(receiver.attempts[i] == 3 for i in ids)
    assert len(receiver.requests) == 21
    # Each retry is signed afresh (a new timestamp is allowed), always over the same body.
    by_delivery: dict[str, set[bytes]] = {}
    for r in receiver.requests:
        by_delivery.setdefault(r["headers"]["Tandem-Delivery"], set()).add(r["body"])
    assert all(len(bodies) == 1 for bodies in by_delivery.values())
    assert outbox.counts(store) == {"pending": 0, "delivered": 7, "dead": 0}


async def test_a_restart_neither_skips_nor_repeats_an_event(db_path: Path) -> None:
    store = Store(db_path)
    receiver = Receiver()
    async with _receiver(receiver) as url:
        async with _dispatching(db_path, url):
            await _until(lambda: load_cursor(store, CURSOR) is not None, "the dispatcher to start")
            cid = lc.open_conversation(store, "Ben")
            lc.add_customer_message(store, cid, "first")
            await _until(lambda: len(receiver.accepted()) >= 2, "two deliveries")
        # Written while no dispatcher runs: delivered after the restart, exactly once.
        lc.add_customer_message(store, cid, "while you were away")
        lc.resolve(store, cid, by="hub")
        async with _dispatching(db_path, url):
            await _until(lambda: len(receiver.accepted()) >= 4, "four deliveries")
            await asyncio.sleep(0)  # one more round of the loop could only add duplicates
    types = [(b["type"], b["data"].get("text")) for b in receiver.accepted()]
    assert types == [
        ("opened", None),
        ("message", "first"),
        ("message", "while you were away"),
        ("resolved", None),
    ]
    assert len({b["event_id"] for b in receiver.accepted()}) == 4


async def test_an_endpoint_that_keeps_failing_ends_in_dead_letters_counted_by_db_status(
    db_path: Path,
) -> None:
    store = Store(db_path)
    receiver = Receiver(answer=lambda _d, _a: 500)
    async with _receiver(receiver) as url, _dispatching(db_path, url):
        await _until(lambda: load_cursor(store, CURSOR) is not None, "the dispatcher to start")
        cid = lc.open_conversation(store, "Lee")
        lc.add_customer_message(store, cid, "hello?")
        await _until(lambda: outbox.counts(store)["dead"] == 2, "two dead letters")
    assert all(n == FAST.max_attempts for n in receiver.attempts.values())
    dead = outbox.dead_letters(store)
    assert {d["last_status"] for d in dead} == {500} and len(dead) == 2
    status = subprocess.run(
        [sys.executable, "-m", "console.cli", "db", "status", "--db", str(db_path)],
        capture_output=True,
        text=True,
        check=True,
    )
    assert "dead letters 2" in status.stdout
    as_json = subprocess.run(
        [sys.executable, "-m", "console.cli", "db", "status", "--json", "--db", str(db_path)],
        capture_output=True,
        text=True,
        check=True,
    )
    assert json.loads(as_json.stdout)["webhooks"] == {"pending": 0, "delivered": 0, "dead": 2}


async def test_an_unreachable_endpoint_is_retried_then_dead(db_path: Path) -> None:
    store = Store(db_path)
    # Nothing listens on this port (it was just closed): every attempt is a refused connection.
    async with _receiver(Receiver()) as url:
        pass
    async with _dispatching(db_path, url):
        await _until(lambda: load_cursor(store, CURSOR) is not None, "the dispatcher to start")
        lc.open_conversation(store, "Kim")
        await _until(lambda: outbox.counts(store)["dead"] == 1, "a dead letter")
    (dead,) = outbox.dead_letters(store)
    assert dead["attempts"] == FAST.max_attempts and dead["last_status"] is None
    assert dead["last_error"]


def test_webhook_settings_need_a_secret_and_http_urls(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="TANDEM_WEBHOOK_SECRET"):
        load_webhook_config(["http://127.0.0.1:9/hook"], env={})
    with pytest.raises(ConfigError, match="http:// or https://"):
        load_webhook_config(["ftp://example/hook"], env={"TANDEM_WEBHOOK_SECRET": SECRET})
    with pytest.raises(ConfigError, match="too short"):
        load_webhook_config(["http://127.0.0.1:9/hook"], env={"TANDEM_WEBHOOK_SECRET": "short"})
    # Not ./tandem.toml (the working directory): the last line reads no file at all.
    config = tmp_path / "settings.toml"
    config.write_text(f'[webhooks]\nurls = ["https://example.test/hook"]\nsecret = "{SECRET}"\n')
    loaded = load_webhook_config(["http://127.0.0.1:9/hook"], env={}, path=config)
    assert loaded.urls == ("http://127.0.0.1:9/hook", "https://example.test/hook")
    assert loaded.secret == SECRET and loaded.enabled
    assert not load_webhook_config([], env={}).enabled


def test_serve_refuses_a_webhook_without_a_secret_in_one_line(db_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if k != "TANDEM_WEBHOOK_SECRET"}
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "console.cli",
            "serve",
            "--db",
            str(db_path),
            "--no-api",
            "--duration",
            "1",
            "--webhook",
            "http://127.0.0.1:9/hook",
        ],
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
    )
    assert result.returncode != 0
    assert "TANDEM_WEBHOOK_SECRET" in result.stderr and "Traceback" not in result.stderr


async def test_a_receiver_streaming_an_endless_answer_is_not_read(db_path: Path) -> None:
    # By hand: a receiver answering 200 with an endless body made tandem serve read it for
    # the whole timeout, each delivery: 80 MB -> 2.4 GB in 12 s. Only the status counts.
    written: list[int] = []

    async def endless(request: web.Request) -> web.StreamResponse:
        await request.read()
        response = web.StreamResponse(status=200)
        await response.prepare(request)
        sent = 0
        try:  # until the sender hangs up (the handler is cancelled then), 2 GB at most
            with contextlib.suppress(ConnectionError):
                while sent < 2**31:
                    await response.write(b"x" * 2**20)
                    sent += 2**20
        finally:
            written.append(sent)
        return response

    app = web.Application()
    app.router.add_post("/hook", endless)
    server = TestServer(app, host="127.0.0.1")
    await server.start_server()
    store = Store(db_path)
    try:
        async with _dispatching(db_path, str(server.make_url("/hook"))):
            await _until(lambda: load_cursor(store, CURSOR) is not None, "the dispatcher")
            lc.open_conversation(store, "Maya")
            await _until(lambda: outbox.counts(store)["delivered"] == 1, "the delivery")
            await _until(lambda: bool(written), "the receiver to see the hang-up")
    finally:
        await server.close()
    # What the socket buffers held when the sender hung up; reading on would have gone to
    # the timeout (2 s here) at loopback speed.
    assert written[0] < 64 * 2**20, written
