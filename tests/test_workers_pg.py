"""Two `tandem serve` processes on one PostgreSQL database, each with its own channel API:
customers write through both, one server is SIGKILLed and started again (issue 17, acceptance 2).
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
from collections import Counter

import pytest
from test_serve import ROOT, _answered_twice, _free_port, _http, _unanswered
from waiting import wait_until

from store import Store, leases
from store.check import check

TOKEN = "integration-secret"
# Questions the knowledge base answers, one per round (the same one again would read as a
# customer repeating themselves).
ROUNDS = (
    "How do I add my card to Apple Pay?",
    "How does pay in 3 work?",
    "How do I change my phone number?",
    "Can I freeze my card in the app?",
)


def _server(db: str, port: int) -> tuple[subprocess.Popen[str], list[str]]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("OPENAI_", "TANDEM_"))}
    env["TANDEM_API_TOKEN"] = TOKEN
    proc = subprocess.Popen(
        [
            sys.executable,
            *("-m", "console.cli", "serve", "--db", db, "--listen", f"127.0.0.1:{port}"),
            *("--lease-ttl", "2", "--idle-resolve", "600", "--log-interval", "0"),
        ],
        cwd=ROOT,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    lines: list[str] = []
    threading.Thread(target=lambda: lines.extend(proc.stderr), daemon=True).start()  # type: ignore[arg-type]
    return proc, lines


def _healthy(port: int, proc: subprocess.Popen[str], lines: list[str]) -> bool:
    assert proc.poll() is None, "".join(lines)
    try:
        return _http("GET", f"http://127.0.0.1:{port}/healthz")[0] == 200
    except OSError:
        return False


def _shared_by(db: str, count: int) -> bool:
    with Store(db) as store:
        owners = Counter(lease.owner for lease in leases.leases(store))
    return None not in owners and len(owners) == count and sum(owners.values()) == 64


def _replies(store: Store, cid: int) -> list[str]:
    """The conversation's customer and bot/system turns, in order."""
    return [
        r[0]
        for r in store.query(
            "SELECT role FROM messages WHERE conversation_id = ? AND role != 'note' ORDER BY id",
            (cid,),
        )
    ]


@pytest.mark.parametrize("backend", ["postgresql"], indirect=True)
def test_two_servers_on_postgresql_one_killed_and_restarted(db_path: str) -> None:
    db = str(db_path)
    ports = [_free_port(), _free_port()]
    servers = [_server(db, port) for port in ports]
    try:
        for port, (proc, lines) in zip(ports, servers, strict=True):
            wait_until(lambda: _healthy(port, proc, lines), timeout=60, interval=0.2, what="up")  # noqa: B023
        wait_until(lambda: _shared_by(db, 2), timeout=60, interval=0.2, what="32 shards each")
        # 64 customers (one per shard), half of them through each server's channel API.
        convs: list[tuple[int, str, int]] = []
        for i in range(64):
            port = ports[i % 2]
            status, conv = _http(
                "POST",
                f"http://127.0.0.1:{port}/v1/conversations",
                {"customer": {"name": f"customer {i}"}},
                TOKEN,
            )
            assert status == 201, conv
            convs.append((conv["id"], conv["customer_token"], port))

        def post(round_no: int, only: int | None = None) -> None:
            for n, (cid, token, port) in enumerate(convs):
                port = only or port
                status, body = _http(
                    "POST",
                    f"http://127.0.0.1:{port}/v1/conversations/{cid}/messages",
                    {"text": ROUNDS[round_no], "idempotency_key": f"r{round_no}-{n}"},
                    token,
                )
                assert status == 201, body

        def answered(store: Store, rounds: int) -> bool:
            return all(_replies(store, cid) == ["customer", "bot"] * rounds for cid, _, _ in convs)

        with Store(db) as store:
            post(0)
            wait_until(lambda: answered(store, 1), timeout=60, interval=0.2, what="round 1")
            # Round 2 goes in through both APIs, and the second server dies at once: what it
            # had in hand is answered by the first after its leases expire.
            post(1)
            victim, _ = servers[1]
            victim.send_signal(signal.SIGKILL)
            victim.wait(timeout=20)
            wait_until(lambda: answered(store, 2), timeout=60, interval=0.2, what="round 2")
            post(2, only=ports[0])  # the dead server's API is gone; customers use the other
            wait_until(lambda: answered(store, 3), timeout=60, interval=0.2, what="round 3")
            assert _shared_by(db, 1)
            # Started again: it takes its share back, and both answer round 4.
            servers[1] = _server(db, ports[1])
            proc, lines = servers[1]
            wait_until(lambda: _healthy(ports[1], proc, lines), timeout=60, interval=0.2, what="up")
            wait_until(lambda: _shared_by(db, 2), timeout=60, interval=0.2, what="shared again")
            post(3)
            wait_until(lambda: answered(store, 4), timeout=60, interval=0.2, what="round 4")
    finally:
        for proc, _ in servers:
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
        for proc, _lines in servers:
            try:
                proc.wait(timeout=60)
            except subprocess.TimeoutExpired:
                proc.kill()
    for proc, lines in servers:
        assert proc.returncode == 0, "".join(lines)
        assert "Traceback" not in "".join(lines), "".join(lines)
    with Store(db) as store:
        assert _unanswered(store) == []
        assert _answered_twice(store) == []
        assert check(store) == []
        bot_replies = store.one(
            "SELECT count(*) FROM messages WHERE role = 'bot' AND reply_to IS NOT NULL"
        )
        assert bot_replies is not None and bot_replies[0] == 64 * len(ROUNDS)
