"""``tandem bench hub --workers 1,2``: the hub in N worker processes sharing the shards.

For each worker count, on a scratch database: N processes each run a hub over the shards it
leases (as ``tandem serve --workers N`` does), a writer process posts customer messages, and
the same two runs as the one-process bench are measured:

- ``saturated``: one message per new conversation, as fast as the writer can; customer
  messages/s from the first post until the workers together had handled the last;
- ``paced``: ``--rate`` messages/s over ``--conversations``; commit -> answer lag p50/p99 over
  every worker's answers.

The workers' CPU seconds are measured with ``process_time`` in each (the machine is shared:
CPU per message is the figure that compares). ``--profile FILE`` profiles the first worker of
the largest count with cProfile and prints where its time goes.

Where a paced message's lag goes on PostgreSQL (timestamps in a debug run and
``pg_stat_activity`` sampled every 5 ms; 2 workers, 150-300 messages/s, December 2026): the
writer's commit, then the worker's next look at the feed (its idle wait, or the loop busy),
the other conversations of the same batch handled first (triage and the bot: about a
millisecond each), its own triage and answer, and the group's commit. Every transaction that
inserts an event holds the feed lock, and PostgreSQL's ``NOTIFY`` lock, through its commit's
WAL flush (2.5-3 ms on the bench machine's disk, ``pg_test_fsync``), so the writer's commits
and the workers' groups queue for one another there: the sum of those commits a second times
the flush is how busy that queue is. The p99 is mostly the event loop standing still for the
worker's synchronous store calls (the SLA tick, heartbeats, cursor saves: 5-100 ms each on a
loaded machine). On a machine shared with other work, CPU scheduling swamps all of it: run
before and after alternately, several times, and compare.
"""

from __future__ import annotations

import argparse
import asyncio
import multiprocessing as mp
import time
from collections import Counter
from pathlib import Path
from typing import Any

SETTLE_TIMEOUT_S = 120.0
RUN_LIMIT_S = 900.0
LEASE_TTL_S = 3.0  # heartbeats every 0.6 s: the workers share the shards soon after starting
END = 100  # ``mark`` = END + run: that run is over


def parse_counts(value: str) -> list[int]:
    """``1,2`` -> ``[1, 2]`` (each 1-64), or a one-line :class:`ValueError`."""
    from console.hub.shards import SHARDS

    counts = []
    for part in value.split(","):
        part = part.strip()
        if not part.isascii() or not part.isdigit() or not 1 <= int(part) <= SHARDS:
            raise ValueError(
                f"--workers wants counts 1-{SHARDS} separated by commas (got {value!r})"
            )
        counts.append(int(part))
    return counts


def _worker(
    path: str,
    name: str,
    ready: Any,
    stop: Any,
    handled: Any,
    mark: Any,
    ack: Any,
    out: Any,
    profile: str | None,
) -> None:
    """One hub worker: run until ``stop``; ``handled`` counts customer messages since ``mark``."""
    from console.hub import make_hub
    from console.policy import PolicySettings

    hub = make_hub(
        path,
        settings=PolicySettings(idle_resolve_s=3600.0, sla_tick_s=1.0),
        keep_lags=True,
        worker_name=name,
        lease_ttl=LEASE_TTL_S,
    )
    # Every language's word lists now, not on the first message in it (seconds each): the
    # runs measure the hub at work, as a long-running worker is.
    hub.engine.warm()  # type: ignore[attr-defined]
    profiler = None
    if profile:
        import cProfile

        # CPU time, not wall: under load, waits for the CPU or a lock would hide the work.
        profiler = cProfile.Profile(time.process_time)

    async def main() -> dict[str, Any]:
        halt = asyncio.Event()
        task = asyncio.create_task(hub.run(halt, idle_sleep=0.002))
        while not hub.feed.owned:  # type: ignore[attr-defined]
            await asyncio.sleep(0.01)
        ready.set()
        stats = hub.stats
        starts: dict[int, tuple[int, int, float]] = {}  # run -> messages, lags, CPU at its start
        ends: dict[int, tuple[int, float]] = {}
        while not stop.is_set():
            m = mark.value
            if 0 <= m < END and m not in starts:
                starts[m] = (stats.customer_done, len(stats.lags), time.process_time())
                if profiler is not None and m == 0:
                    profiler.enable()
                ack.value = m  # the writer starts once every worker counts from here
            elif m >= END and m - END not in ends:
                ends[m - END] = (len(stats.lags), time.process_time())
                if profiler is not None:
                    profiler.disable()
                ack.value = m
            for run, (base, _, _) in starts.items():
                if run not in ends:
                    handled[run] = stats.customer_done - base
            await asyncio.sleep(0.005)
        halt.set()
        await task
        results: dict[str, Any] = {
            "errors": stats.errors,
            "replies": stats.bot_replies,
            "escalations": stats.escalations,
        }
        for run, (_, lag0, cpu0) in starts.items():
            lag1, cpu1 = ends.get(run, (len(stats.lags), time.process_time()))
            results[f"lags{run}"] = stats.lags[lag0:lag1]
            results[f"cpu{run}"] = cpu1 - cpu0
        return results

    results = asyncio.run(main())
    if profiler is not None and profile:
        profiler.dump_stats(profile)
    out.put((name, results))


def _signal(mark: Any, acks: list[Any], value: int) -> None:
    """Tell the workers a run starts (or ends) and wait until each has taken note."""
    mark.value = value
    deadline = time.monotonic() + SETTLE_TIMEOUT_S
    while any(a.value != value for a in acks) and time.monotonic() < deadline:
        time.sleep(0.002)


def _balanced(path: Path | str, count: int) -> bool:
    from console.hub.shards import SHARDS, fair_share
    from store import Store, leases

    with Store(path) as store:
        owners = Counter(lease.owner for lease in leases.leases(store))
        live = leases.workers(store, at=time.time(), ttl=10.0)
    if len(live) != count or None in owners:
        return False
    return all(owners.get(name, 0) == fair_share(live, name, SHARDS) for name in live)


def run_workers(args: argparse.Namespace, counts: list[int]) -> int:
    """Both runs for each worker count, side by side."""
    from console.bench.hub import _texts
    from store.scratch import scratch_database

    if args.conversations is None:
        args.conversations = 2_000
    runs: list[tuple[str, float]] = [("saturated", 0.0)]
    if args.rate > 0:
        runs.append((f"paced {args.rate:g}/s", args.rate))
    print(
        f"hub bench, worker processes {', '.join(map(str, counts))}: {args.messages} customer messages"
        f" per run (saturated: one per new conversation; paced: over {args.conversations}"
        " conversations)"
    )
    table: list[str] = []
    ctx = mp.get_context("spawn")
    texts, source = _texts(args.data, args.messages * len(runs))
    print(f"  texts: {source}")
    engines: list[tuple[str, str | None]] = [("sqlite", None)]
    if getattr(args, "db", None):
        engines.append(("postgresql", args.db))
    for engine, server in engines:
        for count in counts:
            with scratch_database(server, directory=args.dir, name="bench-hub.db") as path:
                code = _one_count(args, ctx, engine, path, count, counts, runs, texts, table)
            if code:
                return code
    for engine, _ in engines:
        _print_profile(_profile_path(args, engine), engine)
    return 0


def _profile_path(args: argparse.Namespace, engine: str) -> str | None:
    return f"{args.profile}.{engine}" if getattr(args, "profile", None) else None


def _one_count(
    args: argparse.Namespace,
    ctx: Any,
    engine: str,
    path: Path | str,
    count: int,
    counts: list[int],
    runs: list[tuple[str, float]],
    texts: list[str],
    table: list[str],
) -> int:
    """Both runs with ``count`` workers on the scratch database ``path``; 1 if they never started."""
    from console.bench.hub import _writer
    from console.kb import ensure_loaded
    from store import Store, leases
    from store import lifecycle as lc
    from store.feed import last_event_id
    from store.stats import percentile_or_nan

    with Store(path) as store:
        ensure_loaded(store)
        leases.reset_cursors(store, "hub", last_event_id(store))
    with Store(path) as store:
        leases.reset_cursors(store, "hub", last_event_id(store))
    ready = [ctx.Event() for _ in range(count)]
    stop = ctx.Event()
    handled = [ctx.Array("q", len(runs)) for _ in range(count)]
    mark = ctx.Value("i", -1)
    acks = [ctx.Value("i", -1) for _ in range(count)]
    out = ctx.Queue()
    profile = _profile_path(args, engine) if count == max(counts) else None
    procs = [
        ctx.Process(
            target=_worker,
            args=(
                str(path),
                f"bench/{i}",
                ready[i],
                stop,
                handled[i],
                mark,
                acks[i],
                out,
                profile if i == 0 else None,
            ),
            daemon=True,
        )
        for i in range(count)
    ]
    for proc in procs:
        proc.start()
    try:
        deadline = time.monotonic() + SETTLE_TIMEOUT_S
        while not (all(r.is_set() for r in ready) and _balanced(path, count)):
            if time.monotonic() > deadline or not all(p.is_alive() for p in procs):
                print(f"  {engine} {count} workers: did not start and share the shards in time")
                return 1
            time.sleep(0.1)
        measured = []
        for i, (name, rate) in enumerate(runs):
            part = texts[i * args.messages : (i + 1) * args.messages]
            n_conv = len(part) if rate == 0 else args.conversations
            with Store(path) as store:
                ids = [
                    lc.open_conversation(store, f"bench {i}-{n}", channel="bench")
                    for n in range(n_conv)
                ]
            w_ready, go, w_out = ctx.Event(), ctx.Event(), ctx.Queue()
            writer = ctx.Process(
                target=_writer,
                args=(str(path), ids, part, rate, f"r{i}", w_ready, go, w_out),
                daemon=True,
            )
            writer.start()
            w_ready.wait(60)
            _signal(mark, acks, i)
            t0 = time.monotonic()
            go.set()
            # The workers get a minute after the writer's last post (a slow store slows the
            # writer too), never more than RUN_LIMIT_S in all.
            limit = t0 + RUN_LIMIT_S
            writer_s: float | None = None
            while sum(h[i] for h in handled) < len(part) and time.monotonic() < limit:
                if writer_s is None and not w_out.empty():
                    writer_s = w_out.get()
                    limit = min(limit, time.monotonic() + 60.0)
                time.sleep(0.002)
            seconds = time.monotonic() - t0
            if writer_s is None:
                writer_s = w_out.get(timeout=60)
            writer.join(timeout=10)
            measured.append((name, sum(h[i] for h in handled), seconds, len(part) / writer_s))
            time.sleep(0.3)  # answers still in hand land (their lags count)
            _signal(mark, acks, END + i)
    finally:
        stop.set()
    results = dict(out.get(timeout=SETTLE_TIMEOUT_S) for _ in procs)
    for proc in procs:
        proc.join(timeout=30)
    errors = sum(r["errors"] for r in results.values())
    for i, (name, done, seconds, writer_rate) in enumerate(measured):
        lags = [lag for r in results.values() for lag in r.get(f"lags{i}", [])]
        cpu = sum(r.get(f"cpu{i}", 0.0) for r in results.values())
        table.append(
            f"  {engine:<10} {count} worker{'s' if count > 1 else ' '} {name:>16}: {done / seconds:7.0f} customer"
            f" messages/s ({done} in {seconds:.2f} s; writer {writer_rate:.0f}/s) | worker CPU"
            f" {cpu / max(done, 1) * 1000:.2f} ms/message | commit->answer lag p50"
            f" {percentile_or_nan(lags, 0.5) * 1000:.1f} ms, p99"
            f" {percentile_or_nan(lags, 0.99) * 1000:.1f} ms | {errors} errors"
        )
        print(table[-1], flush=True)
    return 0


def _print_profile(path: str | None, engine: str) -> None:
    import io
    import pstats

    if path is None or not Path(path).exists():
        return
    buf = io.StringIO()
    stats = pstats.Stats(path, stream=buf)
    stats.sort_stats("tottime").print_stats(20)
    print(f"profile of worker bench/0 on {engine} (saved in {path}), by own CPU time:")
    print("\n".join(buf.getvalue().splitlines()[4:]))
