"""``tandem bench store``: lifecycle ingest rate, and commit -> seen latency across processes."""

from __future__ import annotations

import argparse
import multiprocessing as mp
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

from store.stats import percentile_or_nan


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--messages", type=int, default=20_000, help="messages for the ingest run (default 20000)"
    )
    parser.add_argument(
        "--conversations", type=int, default=200, help="conversations they spread over"
    )
    parser.add_argument(
        "--rate", type=float, default=100.0, help="messages/s for the latency run (default 100)"
    )
    parser.add_argument(
        "--seconds", type=float, default=10.0, help="length of the latency run (default 10)"
    )
    parser.add_argument(
        "--poll-ms", type=float, default=10.0, help="the follower's poll interval (default 10)"
    )
    parser.add_argument(
        "--scale",
        type=int,
        default=0,
        metavar="MESSAGES",
        help="also seed a store with this many messages (e.g. 1000000) and time the reads "
        "agents and supervisors make on it",
    )
    parser.add_argument("--dir", help="where to put the scratch database (default: a temp dir)")
    parser.add_argument(
        "--db",
        metavar="URL",
        help="also run every measure on this PostgreSQL server (postgresql://...; scratch "
        "databases are created there and dropped: needs CREATEDB), beside SQLite in the same run",
    )


def _ingest(path: str, messages: int, conversations: int) -> dict[str, float]:
    from store import Store
    from store import lifecycle as lc

    store = Store(path)
    ids = [lc.open_conversation(store, f"bench {i}", channel="bench") for i in range(conversations)]
    t0, c0 = time.perf_counter(), time.process_time()
    for n in range(messages):
        lc.add_customer_message(
            store, ids[n % conversations], f"bench message {n}", idempotency_key=f"k{n}"
        )
    customer_rate = messages / (time.perf_counter() - t0)
    # This process's CPU per message (the server's own, on PostgreSQL, is not in it): the
    # number to compare on a loaded machine, where wall time is shared.
    cpu_us = (time.process_time() - c0) / messages * 1e6

    # The hub's steady state: a customer message and the bot's answer to it.
    pairs = messages // 2
    t0, c0 = time.perf_counter(), time.process_time()
    for n in range(pairs):
        cid = ids[n % conversations]
        mid = lc.add_customer_message(store, cid, f"question {n}").message_id
        lc.bot_reply(store, cid, f"answer {n}", reply_to=mid)
    pair_rate = 2 * pairs / (time.perf_counter() - t0)
    pair_cpu_us = (time.process_time() - c0) / max(1, 2 * pairs) * 1e6
    store.close()
    return {
        "customer": customer_rate,
        "pairs": pair_rate,
        "cpu_us": cpu_us,
        "pair_cpu_us": pair_cpu_us,
    }


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


def _latency(path: str, rate: float, seconds: float, poll_ms: float) -> dict[str, float]:
    ctx = mp.get_context("spawn")
    start, ready = ctx.Event(), ctx.Event()
    written, followed = ctx.Queue(), ctx.Queue()
    follower = ctx.Process(
        target=_follower, args=(str(path), poll_ms / 1000, seconds, ready, followed)
    )
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
        "sent": len(committed),
        "seen": len(lat),
        "p50": percentile_or_nan(lat, 0.50),
        "p99": percentile_or_nan(lat, 0.99),
        "max": max(lat),
        "mean": statistics.fmean(lat),
    }


def _seed(path: str, messages: int, per_conversation: int = 20) -> int:
    """Bulk-load a realistic shape (bypassing the lifecycle: this only builds scenery)."""
    import random

    from store import Store, bulk

    store = Store(path)
    rng = random.Random(7)
    conversations = max(1, messages // per_conversation)
    now = time.time()
    states = ["resolved"] * 90 + ["bot"] * 6 + ["waiting"] * 2 + ["human"] * 2
    levels = ["calm"] * 70 + ["watch"] * 15 + ["empathy"] * 12 + ["urgent"] * 3
    bulk.insert_rows(store, "agents", ("name", "display_name", "created_at"), [("ana", "ana", now)])
    bulk.insert_rows(
        store,
        "customers",
        ("id", "name", "created_at"),
        ((i, f"customer {i}", now) for i in range(1, conversations + 1)),
    )
    rows = []
    for i in range(1, conversations + 1):
        state = rng.choice(states)
        at = now - rng.random() * 86400 * 30
        rows.append(
            (
                i,
                i,
                state,
                "ana" if state == "human" else None,
                rng.choice(levels),
                at,
                at,
                at if state == "waiting" else None,
                per_conversation,
            )
        )
    bulk.insert_rows(
        store,
        "conversations",
        (
            "id",
            "customer_id",
            "state",
            "owner",
            "level",
            "created_at",
            "updated_at",
            "waiting_since",
            "message_count",
        ),
        rows,
    )
    mid = 0
    batch = 50_000
    for start in range(0, messages, batch):
        msgs, events = [], []
        for n in range(start, min(messages, start + batch)):
            mid += 1
            cid = n // per_conversation + 1
            role = "customer" if n % 2 == 0 else "bot"
            at = now - (messages - n)
            msgs.append(
                (mid, cid, role, role, f"message {n} about a card payment and a refund", at)
            )
            events.append((at, cid, "message", role, mid))
        bulk.insert_rows(
            store,
            "messages",
            ("id", "conversation_id", "role", "author", "text", "created_at"),
            msgs,
        )
        bulk.insert_rows(
            store, "events", ("at", "conversation_id", "kind", "actor", "message_id"), events
        )
    bulk.analyze(store)
    store.close()
    return conversations


def _timed(fn: Any, repeat: int) -> tuple[float, float]:
    samples = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        samples.append((time.perf_counter() - t0) * 1000)
    return percentile_or_nan(samples, 0.5), percentile_or_nan(samples, 0.99)


def _scale(path: str, messages: int, label: str) -> None:
    import random

    from store import Store
    from store.queries import get_conversation, list_conversations, status_counts, transcript

    t0 = time.perf_counter()
    conversations = _seed(path, messages)
    print(
        f"{label}scale    seeded {messages:,} messages in {conversations:,} conversations in "
        f"{time.perf_counter() - t0:.1f} s"
    )
    store = Store(path)
    rng = random.Random(1)

    def open_one() -> None:
        cid = rng.randint(1, conversations)
        get_conversation(store, cid)
        transcript(store, cid, last=50)

    p50, p99 = _timed(open_one, 500)
    print(
        f"{label}scale    open a conversation (header + last 50 messages): p50 {p50:.2f} ms  p99 {p99:.2f} ms"
        "  (goal <= 20 ms)"
    )
    p50, p99 = _timed(lambda: list_conversations(store), 20)
    print(
        f"{label}scale    list live conversations for the wall:           p50 {p50:.2f} ms  p99 {p99:.2f} ms"
    )
    p50, p99 = _timed(lambda: status_counts(store), 20)
    print(
        f"{label}scale    conversations per state:                         p50 {p50:.2f} ms  p99 {p99:.2f} ms"
    )
    from store import views

    metrics = getattr(views, "supervisor_metrics", None)
    if metrics is not None:
        p50, p99 = _timed(lambda: metrics(store), 20)
        print(
            f"{label}scale    supervisor metrics:                              p50 {p50:.2f} ms  p99 {p99:.2f} ms"
            "  (goal <= 100 ms)"
        )
    store.close()


def _measure(args: argparse.Namespace, new_db: Any, label: str) -> None:
    ingest = _ingest(new_db("ingest"), args.messages, args.conversations)
    print(
        f"{label}ingest   customer messages via lifecycle API: {ingest['customer']:>9,.0f} msgs/s"
        f"  ({args.messages} messages, {args.conversations} conversations, one process;"
        f" {ingest['cpu_us']:.0f} us CPU each in the client; goal >= 5,000)"
    )
    print(
        f"{label}ingest   customer message + bot reply pairs:  {ingest['pairs']:>9,.0f} msgs/s"
        f"  ({ingest['pair_cpu_us']:.0f} us CPU each in the client)"
    )
    lat = _latency(new_db("latency"), args.rate, args.seconds, args.poll_ms)
    print(
        f"{label}latency  commit -> seen by another process at {args.rate:.0f} msgs/s for {args.seconds:.0f} s"
        f" (poll {args.poll_ms:.0f} ms): p50 {lat['p50']:.1f} ms  p99 {lat['p99']:.1f} ms"
        f"  max {lat['max']:.1f} ms  ({lat['seen']}/{lat['sent']} seen; goal p99 <= 250 ms)"
    )
    if args.scale:
        _scale(new_db("scale"), args.scale, label)


def run(args: argparse.Namespace) -> int:
    from contextlib import ExitStack

    with tempfile.TemporaryDirectory(dir=args.dir) as tmp:
        label = "sqlite      " if args.db else ""
        _measure(args, lambda name: str(Path(tmp) / f"{name}.db"), label)
    if args.db:
        from store.db import is_url
        from store.errors import InvalidInput
        from store.scratch import scratch_database

        if not is_url(args.db):
            raise InvalidInput(f"--db {args.db!r} is not a postgresql:// URL")
        with ExitStack() as scratch:
            _measure(
                args,
                lambda name: str(scratch.enter_context(scratch_database(args.db))),
                "postgresql  ",
            )
    return 0
