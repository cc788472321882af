"""Two `tandem serve` processes on one PostgreSQL database, each with its own channel API:
customers write through both, one server is SIGKILLed and started again (issue 17, acceptance 2).
"""

from __future__ import annotations

from collections import Counter

import pytest
from serve_support import TOKEN, Serve, start_serve
from test_serve import _answered_twice, _http, _unanswered
from waiting import wait_until

from store import Store, leases
from store.check import check

# Questions the knowledge base answers, one per round (the same one again would read as a
# customer repeating themselves).
ROUNDS = (
    "How do I add my card to Apple Pay?",
    "How does pay in 3 work?",
    "How do I change my phone number?",
    "Can I freeze my card in the app?",
)


def _server(db: str, port: int = 0) -> Serve:
    return start_serve(db, "--lease-ttl", "2", "--idle-resolve", "600", port=port)


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
    servers = [_server(db)]
    try:
        servers.append(_server(db))
        ports = [server.port for server in servers]
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
            servers[1].kill()
            wait_until(lambda: answered(store, 2), timeout=60, interval=0.2, what="round 2")
            post(2, only=ports[0])  # the dead server's API is gone; customers use the other
            wait_until(lambda: answered(store, 3), timeout=60, interval=0.2, what="round 3")
            assert _shared_by(db, 1)
            # Started again: it takes its share back, and both answer round 4.
            servers[1] = _server(db, ports[1])
            wait_until(lambda: _shared_by(db, 2), timeout=60, interval=0.2, what="shared again")
            post(3)
            wait_until(lambda: answered(store, 4), timeout=60, interval=0.2, what="round 4")
    finally:
        for server in servers:  # both stop at once: each finishes what it has in hand
            server.send()
        for server in servers:
            server.stop_cleanly(timeout=60)
    with Store(db) as store:
        assert _unanswered(store) == []
        assert _answered_twice(store) == []
        assert check(store) == []
        bot_replies = store.one(
            "SELECT count(*) FROM messages WHERE role = 'bot' AND reply_to IS NOT NULL"
        )
        assert bot_replies is not None and bot_replies[0] == 64 * len(ROUNDS)
