"""The store's invariants under real concurrency: real processes on one real SQLite file, and
the same on one real PostgreSQL server (the session's own, see tests/pg_server.py)."""

from __future__ import annotations

import multiprocessing as mp
import signal
import subprocess
import sys
from collections import Counter
from pathlib import Path

import store_workers as workers

from store import Store
from store import lifecycle as lc
from store.check import check
from store.feed import read_events

CTX = mp.get_context("spawn")


def _waiting_conversations(store: Store, n: int) -> list[int]:
    ids = []
    for i in range(n):
        cid = lc.open_conversation(store, f"customer {i}")
        lc.add_customer_message(store, cid, "I need a person")
        lc.escalate(store, cid, reasons=["human_request"])
        ids.append(cid)
    return ids


def test_eight_agents_race_to_claim_200_conversations(store: Store, db_path: Path) -> None:
    ids = _waiting_conversations(store, 200)
    agents = [f"agent{i}" for i in range(8)]
    with CTX.Manager() as manager:
        start = manager.Event()
        with CTX.Pool(8) as pool:
            pending = [
                pool.apply_async(workers.claim_all, (str(db_path), a, ids, start, i))
                for i, a in enumerate(agents)
            ]
            start.set()
            results = [p.get(timeout=120) for p in pending]

    winners: dict[int, list[str]] = {cid: [] for cid in ids}
    for r in results:
        for cid in r["won"]:
            winners[cid].append(r["agent"])
    assert all(len(w) == 1 for w in winners.values()), "every conversation has exactly one winner"
    for r in results:
        for cid, message in r["lost"].items():
            assert message == f"taken by {winners[int(cid)][0]}"
        assert len(r["won"]) + len(r["lost"]) == len(ids)
    owners = dict(store.query("SELECT id, owner FROM conversations"))
    assert all(owners[cid] == winners[cid][0] for cid in ids)
    claimed = Counter(
        e.conversation_id for e in read_events(store, limit=100_000) if e.kind == "claimed"
    )
    assert all(claimed[cid] == 1 for cid in ids)
    assert check(store) == []


def test_bot_never_posts_after_a_claim(store: Store, db_path: Path) -> None:
    ids = []
    for i in range(60):
        cid = lc.open_conversation(store, f"customer {i}")
        lc.add_customer_message(store, cid, "hello")
        ids.append(cid)
    with CTX.Manager() as manager:
        start, stop, posting = manager.Event(), manager.Event(), manager.Event()
        with CTX.Pool(3) as pool:
            bot = pool.apply_async(workers.bot_loop, (str(db_path), ids, start, stop, posting))
            agents = [
                pool.apply_async(workers.agent_claims, (str(db_path), f"a{i}", ids, posting, i))
                for i in range(2)
            ]
            start.set()
            won = sum(a.get(timeout=120) for a in agents)
            stop.set()
            counts = bot.get(timeout=60)
    assert won == len(ids)
    assert counts["posted"] > 0 and counts["refused"] > 0, counts
    claimed_at: dict[int, int] = {}
    for e in read_events(store, limit=1_000_000):
        if e.kind == "claimed":
            claimed_at[e.conversation_id] = e.id  # type: ignore[index]
        elif e.kind == "message" and e.actor == "bot":
            assert e.conversation_id not in claimed_at, f"bot message {e.id} after claim"
    assert check(store) == []


def test_same_message_twice_with_one_key_is_stored_once(store: Store, db_path: Path) -> None:
    ids = [lc.open_conversation(store, f"c{i}") for i in range(20)]
    with CTX.Manager() as manager:
        start = manager.Event()
        with CTX.Pool(4) as pool:
            pending = [
                pool.apply_async(workers.post_with_keys, (str(db_path), ids, start))
                for _ in range(4)
            ]
            start.set()
            results = [p.get(timeout=120) for p in pending]
    assert all(r == results[0] for r in results), "every sender got the same message id per key"
    assert store.one("SELECT count(*) FROM messages")[0] == len(ids) * 5
    assert check(store) == []


def test_writer_killed_mid_stream_loses_nothing_it_confirmed(store: Store, db_path: Path) -> None:
    cid = lc.open_conversation(store, "stream")
    worker = Path(workers.__file__)
    proc = subprocess.Popen(
        [sys.executable, str(worker), str(db_path), str(cid)], stdout=subprocess.PIPE, text=True
    )
    assert proc.stdout is not None
    confirmed = []
    for line in proc.stdout:
        confirmed.append(int(line))
        if len(confirmed) >= 400:
            proc.send_signal(signal.SIGKILL)
            break
    confirmed.extend(int(line) for line in proc.stdout if line.strip())
    proc.wait(timeout=10)
    assert proc.returncode == -signal.SIGKILL
    reopened = Store(db_path)
    if reopened.backend == "sqlite":
        assert reopened.one("PRAGMA integrity_check")[0] == "ok"
    stored = {
        r[0] for r in reopened.query("SELECT id FROM messages WHERE conversation_id = ?", (cid,))
    }
    assert set(confirmed) <= stored
    assert check(reopened) == []


def test_follower_sees_every_event_once_in_order(store: Store, db_path: Path) -> None:
    ids = [lc.open_conversation(store, f"c{i}") for i in range(3)]
    already = len(read_events(store))
    per_writer = 300
    with CTX.Manager() as manager:
        start = manager.Event()
        with CTX.Pool(4) as pool:
            # A customer message appends exactly one event.
            expected = already + len(ids) * per_writer
            follower = pool.apply_async(workers.follow, (str(db_path), expected, 60.0))
            writers = [
                pool.apply_async(workers.writer, (str(db_path), cid, per_writer, start))
                for cid in ids
            ]
            start.set()
            for w in writers:
                w.get(timeout=60)
            seen = follower.get(timeout=90)
    assert len(seen) == expected
    assert all(b > a for a, b in zip(seen, seen[1:], strict=False)), "ids strictly increase"
    assert seen == [e.id for e in read_events(store, limit=1_000_000)]
    assert check(store) == []
