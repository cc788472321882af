"""Hub workers sharing one database: shards, leases, rebalancing, a dead worker's share taken over.

In-process hubs over a real SQLite file with the real triage engine and embedded bot; the
process-level tests (``tandem serve --workers 2``, SIGKILL) are in tests/test_workers_serve.py.
"""

from __future__ import annotations

import time
from collections import Counter
from pathlib import Path

import pytest

from console.bot import make_bot
from console.cli import main
from console.hub import Hub
from console.hub.shards import SHARDS, ShardedFeed, fair_share
from console.kb import ensure_loaded
from console.triage import TriageEngine
from store import Store, leases
from store import lifecycle as lc
from store.check import check

TTL = 1.0


@pytest.fixture(scope="module")
def engine() -> TriageEngine:
    return TriageEngine()  # seconds to load: one for the module (it keeps no conversation's state)


def _hub(path: Path, engine: TriageEngine, name: str) -> Hub:
    return Hub(path, engine=engine, bot=make_bot(path, None), worker_name=name, lease_ttl=TTL)


def _freeze(hub: Hub) -> None:
    """What SIGSTOP or a kill does to a worker's lease renewer thread (this one is stopped)."""
    feed = hub.feed
    assert isinstance(feed, ShardedFeed)
    feed._renewing.set()
    if feed._renewer is not None:
        feed._renewer.join(timeout=10)


def _owners(store: Store) -> Counter[str | None]:
    return Counter(lease.owner for lease in leases.leases(store))


def _post(store: Store, conversations: list[int], tag: str) -> None:
    for cid in conversations:
        lc.add_customer_message(
            store, cid, "How do I add my card to Apple Pay?", idempotency_key=f"{tag}-{cid}"
        )


def _answers(store: Store, conversations: list[int]) -> dict[int, list[str]]:
    out: dict[int, list[str]] = {}
    for cid in conversations:
        out[cid] = [
            r[0]
            for r in store.query(
                "SELECT role FROM messages WHERE conversation_id = ? AND role IN ('customer', 'bot')"
                " ORDER BY id",
                (cid,),
            )
        ]
    return out


def test_the_fair_share_covers_every_shard_once() -> None:
    for n in range(1, 9):
        names = [f"w{i}" for i in range(n)]
        shares = [fair_share(names, me) for me in names]
        assert sum(shares) == SHARDS and max(shares) - min(shares) <= 1
    assert fair_share(["a", "b"], "c") == 0  # not counted among the live: nothing


@pytest.mark.parametrize("backend", ["sqlite", "postgresql"], indirect=True)
async def test_two_workers_split_the_shards_and_one_takes_a_dead_ones_share(
    db_path: Path, store: Store, engine: TriageEngine, capsys: pytest.CaptureFixture[str]
) -> None:
    ensure_loaded(store)
    a = _hub(db_path, engine, "host/a")
    b = _hub(db_path, engine, "host/b")
    try:
        await a.step()
        assert _owners(store) == {"host/a": SHARDS}
        # b joins: a gives half up once it sees b, b takes what was freed.
        await b.step()
        a.feed.beat(force=True)
        await a.settle()
        b.feed.beat(force=True)
        assert _owners(store) == {"host/a": SHARDS // 2, "host/b": SHARDS // 2}
        assert main(["db", "status", "--db", str(db_path)]) == 0
        assert "hub workers    host/a 32 shards  host/b 32 shards  unheld 0 of 64" in (
            capsys.readouterr().out
        )

        first = [lc.open_conversation(store, f"c{i}", channel="sim") for i in range(SHARDS)]
        _post(store, first, "one")
        await a.drain()
        await b.drain()
        assert all(roles == ["customer", "bot"] for roles in _answers(store, first).values())
        assert a.stats.customer_messages == b.stats.customer_messages == SHARDS // 2
        assert a.stats.customer_done == b.stats.customer_done == SHARDS // 2  # and dealt with

        # a dies (never renews, never hands back); customers keep writing to all of its shards.
        _freeze(a)
        _post(store, first, "two")
        deadline = time.monotonic() + 30
        while _owners(store) != {"host/b": SHARDS}:
            assert time.monotonic() < deadline, _owners(store)
            time.sleep(TTL / 5)
            b.feed.beat(force=True)
        await b.drain()
        want = ["customer", "bot", "customer", "bot"]
        assert all(roles == want for roles in _answers(store, first).values())
        assert b.stats.customer_messages == SHARDS // 2 + SHARDS

        # a was only stalled: it comes back, finds its leases gone and answers nothing again.
        await a.step()
        assert not a.feed.owned
        await a.drain()
        assert a.stats.customer_messages == SHARDS // 2
        assert all(roles == want for roles in _answers(store, first).values())
        assert check(store) == []
    finally:
        a.close()
        b.close()
    # b handed everything back on closing; a's cursors were never moved by a after the loss.
    assert _owners(store) == {None: SHARDS}
    assert not leases.workers(store, at=time.time(), ttl=60)


@pytest.mark.parametrize("backend", ["sqlite", "postgresql"], indirect=True)
async def test_a_restarted_worker_resumes_its_shards_from_their_cursors(
    db_path: Path, store: Store, engine: TriageEngine
) -> None:
    ensure_loaded(store)
    conversations = [lc.open_conversation(store, f"c{i}", channel="sim") for i in range(8)]
    first = _hub(db_path, engine, "host/0")
    await first.step()
    _post(store, conversations, "one")
    await first.drain()
    # Killed: nothing handed back. Its successor has the same name (the same slot on the host)
    # and takes the unexpired leases over at once.
    _freeze(first)
    _post(store, conversations, "two")
    second = _hub(db_path, engine, "host/0")
    try:
        await second.drain()
        assert second.stats.customer_messages == len(conversations)
        want = ["customer", "bot", "customer", "bot"]
        assert all(roles == want for roles in _answers(store, conversations).values())
    finally:
        second.close()
        first.feed._follower = None  # the dead one's connections, without handing anything back
        first.shared.close()
