"""``tandem bench store``: lifecycle ingest rate, and commit -> seen latency across processes."""

from __future__ import annotations

import argparse
import multiprocessing as mp
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--messages", type=int, default=20_000, help="messages for the ingest run (default 20000)")
    parser.add_argument("--conversations", type=int, default=200, help="conversations they spread over")
    parser.add_argument("--rate", type=float, default=100.0, help="messages/s for the latency run (default 100)")
    parser.add_argument("--seconds", type=float, default=10.0, help="length of the latency run (default 10)")
    parser.add_argument("--poll-ms", type=float, default=10.0, help="the follower's poll interval (default 10)")
    parser.add_argument("--dir", help="where to put the scratch database (default: a temp dir)")


def _percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def _ingest(path: Path, messages: int, conversations: int) -> dict[str, float]:
    from store import Store
    from store import lifecycle as lc

    store = Store(path)
    ids = [lc.open_conversation(store, f"bench {i}", channel="bench") for i in range(conversations)]
    t0 = time.perf_counter()
    for n in range(messages):
        lc.add_customer_message(store, ids[n % conversations], f"bench message {n}", idempotency_key=f"k{n}")
    customer_rate = messages / (time.perf_counter() - t0)

    # The hub's steady state: a customer message and the bot's answer to it.
    pairs = messages // 2
    t0 = time.perf_counter()
    for n in range(pairs):
        cid = ids[n % conversations]
        mid = lc.add_customer_message(store, cid, f"question {n}").message_id
        lc.bot_reply(store, cid, f"answer {n}", reply_to=mid)
    pair_rate = 2 * pairs / (time.perf_counter() - t0)
    store.close()
    return {"customer": customer_rate, "pairs": pair_rate}


def _writer(path: str, rate: float, seconds: float, start: Any, out: Any) -> None:
    from store import Store
    from store import lifecycle as lc

    store = Store(path)
    cid = lc.open_conversation(store, "latency", channel="bench")
    committed: dict[int, float] = {}
    start.wait()
    interval = 1.0 / rate
    t_next = time.monotonic()
    end = t_next + seconds
    n = 0
    while t_next < end:
        delay = t_next - time.monotonic()
        if delay > 0:
            time.sleep(delay)
        mid = lc.add_customer_message(store, cid, f"tick {n}").message_id
        committed[mid] = time.time()
        n += 1
        t_next += interval
    out.put(committed)


def _follower(path: str, poll_s: float, seconds: float, ready: Any, out: Any) -> None:
    from store.feed import Follower

    follower = Follower(path, after=None)
    follower.poll()
    ready.set()
    seen: dict[int, float] = {}
    deadline = time.monotonic() + seconds + 2.0
    while time.monotonic() < deadline:
        for event in follower.poll():
            if event.message_id is not None:
                seen[event.message_id] = time.time()
        time.sleep(poll_s)
    out.put(seen)


def _latency(path: Path, rate: float, seconds: float, poll_ms: float) -> dict[str, float]:
    ctx = mp.get_context("spawn")
    start, ready = ctx.Event(), ctx.Event()
    written, followed = ctx.Queue(), ctx.Queue()
    follower = ctx.Process(target=_follower, args=(str(path), poll_ms / 1000, seconds, ready, followed))
    writer = ctx.Process(target=_writer, args=(str(path), rate, seconds, start, written))
    follower.start()
    writer.start()
    ready.wait(30)
    start.set()
    committed = written.get(timeout=seconds + 60)
    seen = followed.get(timeout=seconds + 60)
    writer.join()
    follower.join()
    lat = [(seen[mid] - t) * 1000 for mid, t in committed.items() if mid in seen]
    return {
        "sent": len(committed), "seen": len(lat), "p50": _percentile(lat, 0.50),
        "p99": _percentile(lat, 0.99), "max": max(lat), "mean": statistics.fmean(lat),
    }


def run(args: argparse.Namespace) -> int:
    with tempfile.TemporaryDirectory(dir=args.dir) as tmp:
        path = Path(tmp) / "bench.db"
        ingest = _ingest(path, args.messages, args.conversations)
        print(f"ingest   customer messages via lifecycle API: {ingest['customer']:>9,.0f} msgs/s"
              f"  ({args.messages} messages, {args.conversations} conversations, one process; goal >= 5,000)")
        print(f"ingest   customer message + bot reply pairs:  {ingest['pairs']:>9,.0f} msgs/s")
        lat = _latency(Path(tmp) / "latency.db", args.rate, args.seconds, args.poll_ms)
        print(f"latency  commit -> seen by another process at {args.rate:.0f} msgs/s for {args.seconds:.0f} s"
              f" (poll {args.poll_ms:.0f} ms): p50 {lat['p50']:.1f} ms  p99 {lat['p99']:.1f} ms"
              f"  max {lat['max']:.1f} ms  ({lat['seen']}/{lat['sent']} seen; goal p99 <= 250 ms)")
    return 0
