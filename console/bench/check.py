"""``tandem bench check``: ``tandem db check`` on a large consistent store.

Seeds ``--conversations`` conversations holding ``--messages`` messages (every history legal,
so the check must report nothing), then times the whole check and each of its steps.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--conversations", type=int, default=100_000, help="conversations (default 100000)"
    )
    parser.add_argument(
        "--messages", type=int, default=1_000_000, help="messages in all (default 1000000)"
    )
    parser.add_argument("--dir", help="where to put the scratch database (default: a temp dir)")


def run(args: argparse.Namespace) -> int:
    from console.errors import UsageError
    from store import Store
    from store.check import STEPS, check
    from store.synthetic import seed

    if args.conversations < 1 or args.messages < args.conversations:
        raise UsageError("need --conversations >= 1 and --messages >= --conversations")
    with tempfile.TemporaryDirectory(dir=args.dir) as tmp:
        path = Path(tmp) / "check.db"
        with Store(path) as store:
            t0 = time.perf_counter()
            seed(store, conversations=args.conversations, messages=args.messages)
            seeded = time.perf_counter() - t0
        size = path.stat().st_size / 1e6
        print(
            f"seed     {args.conversations:,} conversations, {args.messages:,} messages in "
            f"{seeded:.1f} s ({size:,.0f} MB)"
        )
        # A fresh connection, as `tandem db check` has: nothing of the seeding in its cache.
        with Store(path) as store:
            t0 = time.perf_counter()
            problems = check(store)
            total = time.perf_counter() - t0
            steps = []
            for name, step in STEPS:
                t1 = time.perf_counter()
                for _ in step(store, 20):
                    pass
                steps.append(f"{name} {time.perf_counter() - t1:.1f} s")
        print(
            f"check    {total:.1f} s for the whole check, {len(problems)} problem(s)"
            f" (goal <= 30 s at 100,000 conversations / 1,000,000 messages)"
        )
        print(f"steps    {', '.join(steps)} (run again one by one, warm cache)")
        for line in problems[:5]:
            print(f"problem  {line}")
    return 1 if problems else 0
