"""``tandem bench whatif``: ``tandem whatif``'s replay on a store of 1,000,000 messages.

Seeds the same week of history as ``tandem bench report`` (real customer messages from
``../shared/data/customer-messages.csv`` when present, so triage does real work), then times
:func:`console.whatif.compare` against a looser policy, as ``tandem whatif`` runs it: wall
seconds, messages per second, and the CPU time of this process and of the worker processes.
The issue's goal is <= 60 s for 1,000,000 messages. ``--db`` keeps the seeded store for the
next run (seeding takes longer than the replay).
"""

from __future__ import annotations

import argparse
import os
import resource
import tempfile
import time
from pathlib import Path

from console.bench.triage import DEFAULT_DATA


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--messages", type=int, default=1_000_000, help="messages to seed (default 1000000)"
    )
    parser.add_argument("--data", metavar="CSV", default=str(DEFAULT_DATA))
    parser.add_argument(
        "--db",
        metavar="FILE",
        help="seeded store to reuse (seeded there first if the file does not exist)",
    )
    parser.add_argument(
        "--workers",
        type=int,
        default=None,
        help="replay processes (default: as tandem whatif, one per CPU up to 2)",
    )


def _cpu() -> tuple[float, float]:
    me = resource.getrusage(resource.RUSAGE_SELF)
    kids = resource.getrusage(resource.RUSAGE_CHILDREN)
    return me.ru_utime + me.ru_stime, kids.ru_utime + kids.ru_stime


def run(args: argparse.Namespace) -> int:
    from console.bench.report import _texts, seed
    from console.policy import PolicySettings
    from console.whatif import compare
    from store import Store
    from store.db import now
    from store.replay import count_messages

    with tempfile.TemporaryDirectory() as tmp:
        path = Path(args.db) if args.db else Path(tmp) / "whatif.db"
        if not path.exists():
            t0 = time.perf_counter()
            n_conv = seed(path, args.messages, _texts(args.data))
            print(
                f"seeded {args.messages:,} messages in {n_conv:,} conversations over 7 days "
                f"in {time.perf_counter() - t0:.1f} s"
            )
        store = Store(path)
        at = now()
        since = at - 30 * 86400
        total = count_messages(store, since=since, until=at)
        cpu0 = _cpu()
        t0 = time.perf_counter()
        result = compare(
            store,
            PolicySettings(),
            PolicySettings(escalate_level="watch", max_fallbacks=1),
            since=since,
            until=at,
            workers=args.workers,
        )
        took = time.perf_counter() - t0
        cpu1 = _cpu()
        store.close()
    cur, new = result["current"], result["proposed"]
    print(
        f"whatif: {cur['conversations']:,} conversations, {total:,} customer and bot messages "
        f"replayed in {took:.1f} s ({total / took:,.0f} messages/s; goal <= 60 s for 1,000,000)"
    )
    print(
        f"        CPU {cpu1[0] - cpu0[0]:.1f} s in this process, {cpu1[1] - cpu0[1]:.1f} s in "
        f"workers; {os.cpu_count()} CPUs; escalated {cur['escalated']:,} -> {new['escalated']:,}"
    )
    return 0
