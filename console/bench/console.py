"""``tandem bench console``: the console with 1,000 live conversations and 100 messages/s.

Prints three numbers against DESIGN.md section 11 (never pass/fail):

* key press -> frame: a headless console (160x48) on a seeded store while a separate writer
  process posts customer messages, bot replies and triage changes at ``--rate``; each key's
  latency runs from the press to the end of the first frame after it, including turning the
  frame into terminal output (the headless driver would otherwise skip that step);
* CPU: the console process's CPU seconds over wall seconds, the writer excluded;
* start -> first frame: ``tandem console`` started fresh in a child interpreter until its
  first frame with tiles on it.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import random
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from store.stats import percentile_or_nan

KEYS = (
    "down",
    "right",
    "down",
    "left",
    "up",
    "pagedown",
    "right",
    "pageup",
    "2",
    "1",
    "down",
    "down",
)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--conversations", type=int, default=1000, help="live conversations (default 1000)"
    )
    parser.add_argument(
        "--rate", type=float, default=100.0, help="messages per second written (default 100)"
    )
    parser.add_argument("--keys", type=int, default=200, help="key presses measured (default 200)")
    parser.add_argument("--starts", type=int, default=3, help="cold starts measured (default 3)")
    parser.add_argument(
        "--db", metavar="PATH", help="use this database (seeded if empty; default: a temp file)"
    )
    from console.bench.remote_console import add_server_arguments

    add_server_arguments(parser)


def _seed(path: Path, n: int) -> None:
    from console.ui.seed import seed
    from store import Store
    from store.queries import status_counts

    with Store(path) as store:
        counts = status_counts(store)
        have = counts["bot"] + counts["waiting"] + counts["human"]
        if have < n:
            seed(store, n - have, seed_value=int(time.time()), turns=2, other_agents=("ana", "bob"))


def writer(path: str, rate: float, seconds: float) -> None:
    """Post customer messages, bot replies and triage changes at ``rate`` messages/s."""
    from store import Store, lifecycle
    from store.errors import StoreError
    from store.levels import LEVELS
    from store.lifecycle import TriageMark
    from store.queries import list_conversations

    rng = random.Random(1)
    store = Store(path)
    ids = [c["id"] for c in list_conversations(store, states=("bot",), limit=100_000)]
    start = time.monotonic()
    sent = 0
    while time.monotonic() - start < seconds:
        due = int((time.monotonic() - start) * rate)
        while sent < due:
            cid = rng.choice(ids)
            try:
                if sent % 2 == 0:
                    # The text carries the time of the write, so the console can tell how long
                    # a commit took to reach it (another process, through the change feed).
                    mid = lifecycle.add_customer_message(
                        store,
                        cid,
                        f"message {sent} at {time.time():.6f}: is my transfer through yet?",
                    )
                    if sent % 20 == 0:
                        lifecycle.record_triage(
                            store,
                            cid,
                            TriageMark(rng.choice(LEVELS), rng.random(), ["frustration"]),
                            message_id=mid.message_id,
                        )
                else:
                    lifecycle.bot_reply(
                        store, cid, f"reply {sent}: transfers usually arrive within a day."
                    )
            except StoreError:
                pass
            sent += 1
        time.sleep(0.002)


async def _measure_keys(path: Path, n_keys: int, rate: float, watch: float) -> dict[str, Any]:
    from console.ui.app import TandemApp

    class BenchApp(TandemApp):
        pending: float | None = None
        latencies: list[float] = []
        by_key: dict[str, list[float]] = {}
        key = ""

        seen_at: list[float] = []
        _seen: set[int] = set()

        def _apply_rows(self, message: Any) -> None:
            super()._apply_rows(message)
            now = time.time()
            for row in message.rows:
                for turn in row.get("turns") or ():
                    text = turn["text"]
                    if turn["role"] != "customer" or turn["id"] in self._seen or " at " not in text:
                        continue
                    self._seen.add(turn["id"])
                    try:
                        stamp = float(text.split(" at ", 1)[1].split(":", 1)[0])
                    except ValueError:
                        continue
                    if not message.full:
                        self.seen_at.append(now - stamp)

        def _display(self, screen: Any, renderable: Any) -> None:
            super()._display(screen, renderable)
            if renderable is None:
                return
            # What a real terminal driver would do with the frame.
            if hasattr(renderable, "render_segments"):
                renderable.render_segments(self.console)
            if self.pending is not None:
                self.latencies.append(time.perf_counter() - self.pending)
                self.by_key.setdefault(self.key, []).append(self.latencies[-1])
                self.pending = None

    app = BenchApp(path, "bench", interval=0.1)
    app.latencies = []
    app.seen_at = []
    app._seen = set()
    async with app.run_test(size=(160, 48)) as pilot:
        while not app.rows:
            await pilot.pause(0.05)
        proc = subprocess.Popen(
            [
                sys.executable,
                "-c",
                f"from console.bench.console import writer; writer({str(path)!r}, {rate}, 3600)",
            ]
        )
        try:
            await pilot.pause(1.0)  # the writer is running; feed batches are arriving
            cpu0, wall0 = time.process_time(), time.perf_counter()
            rng = random.Random(2)
            for i in range(n_keys):
                app.key = KEYS[i % len(KEYS)]
                app.pending = time.perf_counter()
                await pilot.press(app.key)
                deadline = time.perf_counter() + 1.0
                while app.pending is not None and time.perf_counter() < deadline:
                    await asyncio.sleep(0.001)
                app.pending = None
                await asyncio.sleep(rng.uniform(0.03, 0.08))
            cpu1, wall1 = time.process_time(), time.perf_counter()
            # Idle agent, live feed: the cost of just watching (a deferred full GC included).
            await asyncio.sleep(watch)
            cpu2, wall2 = time.process_time(), time.perf_counter()
        finally:
            proc.terminate()
            proc.wait(timeout=10)
        live = len(app.rows)
    return {
        "latencies": app.latencies,
        "cpu_keys": (cpu1 - cpu0) / (wall1 - wall0),
        "cpu_idle": (cpu2 - cpu1) / (wall2 - wall1),
        "live": live,
        "by_key": app.by_key,
        "seen_at": app.seen_at,
    }


def _measure_start(path: Path) -> float:
    t0 = time.perf_counter()
    # The real `tandem console` command line, headless, leaving at its first frame with tiles.
    proc = subprocess.Popen(
        [sys.executable, "-m", "console.bench.first_frame", str(path)],
        stdout=subprocess.PIPE,
        text=True,
    )
    assert proc.stdout is not None
    for line in proc.stdout:
        if line.startswith("FRAME"):
            elapsed = time.perf_counter() - t0
            break
    else:
        elapsed = float("nan")
    proc.wait(timeout=30)
    return elapsed


def run(args: argparse.Namespace) -> int:
    from console.errors import UsageError

    if args.server:
        from console.bench.remote_console import run_server

        return run_server(args)

    if (
        args.conversations < 1
        or args.rate <= 0
        or args.keys < 1
        or args.starts < 0
        or args.seconds <= 0
    ):
        raise UsageError("--conversations, --rate, --keys and --seconds must be positive")
    tmp = None
    if args.db:
        path = Path(args.db)
    else:
        tmp = tempfile.TemporaryDirectory(prefix="tandem-bench-console-")
        path = Path(tmp.name) / "bench.db"
    try:
        t = time.perf_counter()
        _seed(path, args.conversations)
        print(
            f"seeded {args.conversations} live conversations in {time.perf_counter() - t:.1f} s ({path.name})"
        )
        starts = [_measure_start(path) for _ in range(args.starts)]
        if starts:
            print(
                "`tandem console` start -> first frame (new process, 160x48): "
                + " ".join(f"{s * 1000:.0f} ms" for s in starts)
                + f"  median {statistics.median(starts) * 1000:.0f} ms   goal <= 1500 ms"
            )
        result = asyncio.run(_measure_keys(path, args.keys, args.rate, args.seconds))
        lat = [x * 1000 for x in result["latencies"]]
        print(
            f"feed: {args.rate:g} msgs/s from a separate writer process; {result['live']} live conversations"
        )
        if lat:
            print(
                f"key -> frame ({len(lat)} keys): p50 {percentile_or_nan(lat, 0.5):.1f} ms  p99 {percentile_or_nan(lat, 0.99):.1f} ms"
                f"  max {max(lat):.1f} ms   goal p99 <= 50 ms"
            )
        seen = [x * 1000 for x in result["seen_at"]]
        if seen:
            print(
                f"write in another process -> row in this console ({len(seen)} messages): "
                f"p50 {percentile_or_nan(seen, 0.5):.0f} ms  p99 {percentile_or_nan(seen, 0.99):.0f} ms   goal p99 <= 250 ms"
            )
        print(
            f"console CPU while keys are pressed: {result['cpu_keys'] * 100:.0f}% of one core;"
            f" watching only: {result['cpu_idle'] * 100:.0f}%   goal <= 50%"
        )
        load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
        print(
            f"(machine: {os.cpu_count()} cores, load average {load:.1f} at the end; the writer's"
            " CPU is not counted; latencies grow when other processes compete for the cores)"
        )
    finally:
        if tmp is not None:
            tmp.cleanup()
    return 0
