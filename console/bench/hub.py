"""``tandem bench hub``: customer messages/s through triage + policy + embedded bot + store.

A writer process posts customer messages (through the lifecycle API, as a channel would) into
pre-opened conversations while the hub, in this process, follows the feed, triages, applies
the policy and lets the embedded bot answer. Two runs:

- ``saturated``: the writer posts as fast as it can, one message per new conversation; the
  hub's sustained rate is the messages it handled divided by the time from the first post
  until it had handled the last;
- ``paced``: the writer posts at ``--rate`` messages/s; lag is the time from a customer
  message's commit to the bot's answer, p50/p99.

Each run also prints the hub process's CPU time per customer message and the part of it the
triage engine's calls took: on a loaded machine, CPU time compares versions where rates and
lags do not.

``--http`` measures the same path through the channel API instead (``console/bench/hub_http.py``).

Texts: first messages from ``../shared/data/customer-messages.csv`` when present (the real
mix, so some conversations escalate), else the routine persona's scripts.
"""

from __future__ import annotations

import argparse
import asyncio
import multiprocessing as mp
import tempfile
import time
from pathlib import Path
from typing import Any, cast


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--messages", type=int, default=10_000, help="customer messages per run (default 10000)"
    )
    parser.add_argument(
        "--conversations",
        type=int,
        default=None,
        help="conversations the paced run spreads over (default 2000; with --http both runs,"
        " default --messages / 2)",
    )
    parser.add_argument(
        "--rate",
        type=float,
        default=1_000.0,
        help="messages/s the writer posts in the paced run (default 1000; 0 skips it)",
    )
    parser.add_argument("--data", metavar="PATH", help="customer-messages.csv or its directory")
    parser.add_argument(
        "--routing",
        choices=("off", "round_robin", "least_loaded"),
        default="off",
        help="automatic assignment while the hub runs (default off), to agents online from"
        " --agents",
    )
    parser.add_argument(
        "--agents",
        type=int,
        default=0,
        help="agents online during the runs (capacity 3 each), whom routing gives work to",
    )
    parser.add_argument("--dir", help="where to put the scratch database (default: a temp dir)")
    parser.add_argument(
        "--workers",
        metavar="N,M",
        help="run the hub in N worker processes sharing the shards (as `tandem serve --workers`),"
        " then M..., side by side (e.g. 1,2); default: the hub in this process",
    )
    parser.add_argument(
        "--db",
        metavar="URL",
        help="with --workers: also run on this PostgreSQL server (postgresql://...), beside SQLite;"
        " the bench creates a scratch database there and drops it after (needs CREATEDB)",
    )
    parser.add_argument(
        "--profile",
        metavar="FILE",
        help="with --workers: cProfile the first worker of the largest count (saturated run; its"
        " figures are slower for it), save it to FILE.<engine> and print where its CPU goes",
    )
    from console.bench.hub_http import add_http_arguments

    add_http_arguments(parser)


def _texts(data: str | None, n: int) -> tuple[list[str], str]:
    import random

    from console.channels.personas import BY_NAME
    from console.channels.sim import iter_openers, load_replay

    pools = load_replay(data)
    rng = random.Random(7)
    if pools:
        everything = [t for pool in pools.values() for t in pool]
        return [
            rng.choice(everything) for _ in range(n)
        ], f"{len(everything)} real messages (replay file)"
    gen = iter_openers(BY_NAME["routine"], seed=7)
    return [next(gen) for _ in range(n)], "routine persona scripts (no replay file)"


def scratch(
    args: argparse.Namespace, name: str
) -> tuple[tempfile.TemporaryDirectory[str], Path, list[str], str]:
    """A scratch database with the knowledge base loaded, and two runs' worth of texts."""
    from console.kb import ensure_loaded
    from store import Store

    tmp = tempfile.TemporaryDirectory(dir=args.dir)
    path = Path(tmp.name) / name
    with Store(path) as store:
        ensure_loaded(store)
    texts, source = _texts(args.data, args.messages * 2)
    return tmp, path, texts, source


def _writer(
    path: str,
    ids: list[int],
    texts: list[str],
    rate: float,
    tag: str,
    ready: Any,
    go: Any,
    out: Any,
) -> None:
    from store import Store
    from store import lifecycle as lc

    store = Store(path)
    ready.set()
    go.wait()
    t0 = time.monotonic()
    interval = 1.0 / rate if rate > 0 else 0.0
    for n, text in enumerate(texts):
        if interval:
            delay = t0 + n * interval - time.monotonic()
            if delay > 0:
                time.sleep(delay)
        lc.add_customer_message(store, ids[n % len(ids)], text, idempotency_key=f"{tag}-{n}")
    out.put(time.monotonic() - t0)
    store.close()


class TimedEngine:
    """A triage engine whose calls add up the CPU time they take (``cpu``, seconds)."""

    def __init__(self, engine: Any) -> None:
        self._engine = engine
        self.cpu = 0.0

    def __getattr__(self, name: str) -> Any:
        attr = getattr(self._engine, name)
        if not callable(attr):
            return attr

        def timed(*args: Any, **kwargs: Any) -> Any:
            t0 = time.process_time()
            try:
                return attr(*args, **kwargs)
            finally:
                self.cpu += time.process_time() - t0

        # Kept, so the next call does not come through __getattr__ and a new closure.
        setattr(self, name, timed)
        return timed


async def _run_hub(hub: Any, expected: int, go: Any, timeout: float) -> float:
    """Start the writer, run the hub until it handled ``expected`` customer messages; return seconds."""
    stop = asyncio.Event()
    task = asyncio.create_task(hub.run(stop, idle_sleep=0.002))
    await asyncio.sleep(0.05)  # the hub opens its connections and reaches the end of the feed
    start_count = hub.stats.customer_done
    t0 = time.monotonic()
    go.set()
    deadline = t0 + timeout
    while hub.stats.customer_done - start_count < expected and time.monotonic() < deadline:
        await asyncio.sleep(0.002)
    elapsed = time.monotonic() - t0
    stop.set()
    await task
    return elapsed


def _one_run(
    path: Path, ids: list[int], texts: list[str], rate: float, tag: str, routing: str = "off"
) -> dict[str, Any]:
    from console.hub import make_hub
    from console.policy import PolicySettings, RoutingSettings
    from store.stats import percentile_or_nan

    settings = PolicySettings(
        idle_resolve_s=3600.0, sla_tick_s=1.0, routing=RoutingSettings(mode=routing)
    )
    from console.triage import TriageEngine

    engine = TimedEngine(TriageEngine())
    hub = make_hub(path, settings=settings, keep_lags=True, engine=cast(Any, engine))
    # Start the hub at the end of the feed: only this run's messages count.
    from store import Store
    from store.feed import last_event_id, save_cursor

    with Store(path) as s:
        save_cursor(s, hub.cursor_name, last_event_id(s))
    ctx = mp.get_context("spawn")
    ready, go, out = ctx.Event(), ctx.Event(), ctx.Queue()
    proc = ctx.Process(
        target=_writer, args=(str(path), ids, texts, rate, tag, ready, go, out), daemon=True
    )
    proc.start()
    ready.wait(
        30
    )  # the writer has imported and opened the store: the clock starts with its first post
    cpu = time.process_time()
    seconds = asyncio.run(_run_hub(hub, len(texts), go, timeout=max(60.0, len(texts) / 100)))
    cpu = time.process_time() - cpu
    writer_s = out.get(timeout=60)
    proc.join(timeout=10)
    stats = hub.stats
    lags = stats.lags
    return {
        "handled": stats.customer_done,
        "seconds": seconds,
        "writer_s": writer_s,
        "replies": stats.bot_replies,
        "escalations": stats.escalations,
        "errors": stats.errors,
        "cpu": cpu,
        "triage_cpu": engine.cpu,
        "assigned": hub.router.assigned if hub.router is not None else 0,
        "p50": percentile_or_nan(lags, 0.5) * 1000,
        "p99": percentile_or_nan(lags, 0.99) * 1000,
        "max": max(lags) * 1000 if lags else float("nan"),
    }


def run(args: argparse.Namespace) -> int:
    if getattr(args, "http", False):
        from console.bench.hub_http import run_http

        return run_http(args)
    if getattr(args, "workers", None):
        from console.bench.hub_workers import parse_counts, run_workers
        from store.db import is_url

        try:
            counts = parse_counts(args.workers)
        except ValueError as exc:
            print(f"tandem bench hub: {exc}")
            return 1
        if args.db is not None and not is_url(args.db):
            print("tandem bench hub: --db wants a postgresql:// URL (SQLite always runs)")
            return 1
        return run_workers(args, counts)
    if args.conversations is None:
        args.conversations = 2_000
    from store import Store, presence
    from store import lifecycle as lc

    if args.messages <= 0 or args.conversations <= 0:
        print("tandem bench hub: --messages and --conversations must be positive")
        return 1
    if args.agents < 0:
        print("tandem bench hub: --agents must be zero or more")
        return 1
    tmp, path, texts, source = scratch(args, "bench-hub.db")
    print(
        f"hub bench: {args.messages} customer messages per run (saturated: one per new conversation;"
        f" paced: over {args.conversations} conversations); texts: {source};"
        f" routing {args.routing}, {args.agents} agents online"
    )
    runs: list[tuple[str, float]] = [("saturated", 0.0)]
    if args.rate > 0:
        runs.append((f"paced {args.rate:g}/s", args.rate))
    for i, (name, rate) in enumerate(runs):
        part = texts[i * args.messages : (i + 1) * args.messages]
        # Saturated: every message opens its own conversation, so each one is triaged, decided
        # and answered (no coalescing while the hub is behind). Paced: multi-turn conversations.
        n_conv = len(part) if rate == 0 else args.conversations
        with Store(path) as store:
            ids = [
                lc.open_conversation(store, f"bench {i}-{n}", channel="bench")
                for n in range(n_conv)
            ]
            for n in range(args.agents):
                presence.set_presence(store, f"bench-agent-{n}", "online")
        r = _one_run(path, ids, part, rate, f"r{i}", args.routing)
        rate_hub = r["handled"] / r["seconds"] if r["seconds"] > 0 else float("nan")
        print(
            f"  {name:>16}: hub {rate_hub:8.0f} customer messages/s ({r['handled']} in {r['seconds']:.2f} s;"
            f" writer {len(part) / r['writer_s']:.0f}/s) | {r['replies']} bot replies,"
            f" {r['escalations']} escalations, {r['assigned']} assigned, {r['errors']} errors"
            f" | commit->answer lag p50 {r['p50']:.1f} ms, p99 {r['p99']:.1f} ms,"
            f" max {r['max']:.1f} ms | hub CPU {r['cpu']:.2f} s"
            f" ({r['cpu'] / max(1, r['handled']) * 1000:.3f} ms/message,"
            f" triage {r['triage_cpu'] / max(1, r['handled']) * 1000:.3f})"
        )
    tmp.cleanup()
    return 0
