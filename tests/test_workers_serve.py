"""`tandem serve --workers 2` as real processes on a real file: a worker SIGKILLed mid-run."""

from __future__ import annotations

import os
import signal
import time
from collections import Counter
from pathlib import Path

from serve_support import Serve
from test_serve import _answered_twice, _serve, _unanswered
from waiting import wait_until

from store import Store, leases
from store import lifecycle as lc
from store.check import check


def _worker_pids(parent: int) -> list[int]:
    """The hub worker processes of a `tandem serve --workers N` (spawned interpreters)."""
    try:
        with open(f"/proc/{parent}/task/{parent}/children") as fh:
            children = [int(p) for p in fh.read().split()]
    except OSError:
        return []
    out = []
    for pid in children:
        try:
            with open(f"/proc/{pid}/cmdline", "rb") as fh:
                if b"spawn_main" in fh.read():
                    out.append(pid)
        except OSError:
            continue
    return out


def _split(db: Path, proc: Serve) -> bool:
    """Whether two live workers hold 32 shards each."""
    proc.running()
    if not db.exists():
        return False
    with Store(db) as store:
        if len(leases.workers(store, at=time.time(), ttl=2)) != 2:
            return False
        owners = Counter(lease.owner for lease in leases.leases(store))
    return sorted(owners.values()) == [32, 32] and None not in owners


def _roles(store: Store, cid: int) -> list[str]:
    return [
        r[0]
        for r in store.query(
            "SELECT role FROM messages WHERE conversation_id = ? AND role IN ('customer', 'bot')"
            " ORDER BY id",
            (cid,),
        )
    ]


def _post(store: Store, conversations: list[int], tag: str) -> None:
    for cid in conversations:
        lc.add_customer_message(
            store, cid, "How do I add my card to Apple Pay?", idempotency_key=f"{tag}-{cid}"
        )


def test_two_workers_one_killed_mid_run_lose_nothing_and_answer_nothing_twice(
    db_path: Path,
) -> None:
    proc = _serve(
        db_path,
        *("--workers", "2", "--simulate", "30", "--speed", "30", "--seed", "5"),
        *("--lease-ttl", "2", "--idle-resolve", "600", "--log-interval", "0"),
    )
    try:
        wait_until(
            lambda: _split(db_path, proc),
            timeout=90,
            interval=0.2,
            what="two workers holding 32 shards each",
        )
        workers = _worker_pids(proc.pid)
        assert len(workers) == 2, workers
        with Store(db_path) as store:
            # 64 conversations: one in every shard, so in both workers' shares.
            probes = [lc.open_conversation(store, f"probe {i}", channel="api") for i in range(64)]
            _post(store, probes, "one")
            wait_until(
                lambda: all(_roles(store, c) == ["customer", "bot"] for c in probes),
                timeout=60,
                interval=0.2,
                what="both workers answering",
            )
            os.kill(workers[0], signal.SIGKILL)
            _post(store, probes, "two")  # half of them in the dead worker's shards
            want = ["customer", "bot", "customer", "bot"]
            wait_until(
                lambda: all(_roles(store, c) == want for c in probes),
                timeout=60,
                interval=0.2,
                what="every message answered after the kill",
            )
            wait_until(
                lambda: any("ended (killed by SIGKILL)" in ln for ln in list(proc.lines)),
                timeout=10,
                what="the pool noticing",
            )
    finally:
        err = proc.stop_cleanly(timeout=60)
    assert err.count("hub worker ") >= 3 and "1 restarted" in err, err  # 2 stopped + the notice
    # What the simulator posted as it stopped is answered by the next start (none is lost).
    again = _serve(db_path, "--workers", "2", "--log-interval", "0")
    try:
        wait_until(lambda: _split(db_path, again), timeout=90, interval=0.2, what="restarted")
        with Store(db_path) as store:
            wait_until(lambda: not _unanswered(store), timeout=90, what="the rest answered")
    finally:
        again.stop_cleanly(timeout=60)
    with Store(db_path) as store:
        assert _unanswered(store) == []
        assert _answered_twice(store) == []
        assert check(store) == []
        assert all(_roles(store, c) == want for c in probes)
        assert leases.workers(store, at=0, ttl=0) == []  # everyone left
