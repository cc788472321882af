"""``tandem bench NAME``: benchmarks that print numbers (never pass/fail).

Each benchmark is ``console/bench/<name>.py`` with ``add_arguments(parser)`` and
``run(args) -> int``; it imports what it measures inside ``run`` so ``--help`` stays fast.
"""

from __future__ import annotations

import argparse
import importlib

BENCHES = {
    "store": "lifecycle-API ingest rate and commit -> seen-by-another-process latency",
    "triage": "offline triage throughput, single-message and conversation mode",
    "hub": "customer messages/s through triage + policy + embedded bot + store",
    "console": "1,000 live conversations at 100 msgs/s: key -> frame latency, CPU, start time",
    "drafts": "embedded draft first-text latency; LLM streaming overhead against a fake server",
    "bot": "embedded bot: answer latency, outcomes on real questions, retrieval accuracy",
    "report": "tandem report, supervisor metrics and what-if on a store of 1,000,000 messages",
    "whatif": "tandem whatif's replay on a store of 1,000,000 messages: seconds, messages/s, CPU",
    "check": "`tandem db check` on 100,000 conversations and 1,000,000 messages",
}


def register(sub: argparse._SubParsersAction) -> None:
    parser = sub.add_parser(
        "bench",
        help="run a benchmark and print its numbers",
        description="Benchmarks print numbers; compare ratios within one run on a noisy machine.",
        epilog="Example: tandem bench store --messages 20000",
    )
    bsub = parser.add_subparsers(dest="bench", metavar="NAME", required=True)
    for name, summary in BENCHES.items():
        module = importlib.import_module(f"console.bench.{name}")
        p = bsub.add_parser(name, help=summary, description=summary)
        module.add_arguments(p)
        p.set_defaults(func=module.run)
