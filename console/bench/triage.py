"""``tandem bench triage``: offline triage throughput on one core.

Two modes: *single* scores each message on a fresh state (the cost of one message alone);
*conversation* feeds messages into running conversations with bot turns in between, as the hub
does (the incremental path, including repeat detection and state updates). Texts come from
``../shared/data/customer-messages.csv`` when present (real customer messages), otherwise from
sentences generated here.
"""

from __future__ import annotations

import argparse
import csv
import random
import time
from pathlib import Path

DEFAULT_DATA = (
    Path(__file__).resolve().parents[2].parent / "shared" / "data" / "customer-messages.csv"
)

_OPENERS = ["hi", "hello", "hey there", "good morning", "", "", ""]
_BODIES = [
    "my card payment was declined at the shop",
    "how long does a transfer to another bank take",
    "I still haven't received my refund and it's been two weeks",
    "the app keeps crashing when I open my statements",
    "can I change the address on my account",
    "this is ridiculous, nobody answers my emails",
    "I want to speak to a real person please",
    "someone took money from my account, I did not make this payment",
    "what are the fees for paying in euros",
    "thanks, that worked",
    "I lost my job last month and can't pay the loan",
    "why is my top up still pending",
]


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--messages", type=int, default=20_000, help="messages per mode (default 20000)"
    )
    parser.add_argument(
        "--data",
        metavar="CSV",
        help=f"customer messages CSV with a text column (default {DEFAULT_DATA})",
    )
    parser.add_argument("--seed", type=int, default=7)


def _texts(path: Path | None, n: int, rng: random.Random) -> tuple[list[str], str]:
    if path is not None and path.is_file():
        with path.open(newline="", encoding="utf-8") as fh:
            texts = [row["text"] for row in csv.DictReader(fh) if row.get("text")]
        if texts:
            return [rng.choice(texts) for _ in range(n)], f"{path} ({len(texts):,} messages)"
    out = []
    for _ in range(n):
        opener = rng.choice(_OPENERS)
        body = rng.choice(_BODIES)
        out.append(f"{opener}, {body}" if opener else body)
    return out, "generated sentences"


def run(args: argparse.Namespace) -> int:
    from console.triage import TriageEngine

    rng = random.Random(args.seed)
    path = Path(args.data) if args.data else DEFAULT_DATA
    n = max(1, args.messages)
    texts, source = _texts(path, n, rng)
    t0 = time.process_time()
    engine = TriageEngine()
    load = time.process_time() - t0
    # Each language's pack is built on its first message and its common-word list loaded on
    # its first word that a spelling correction would change (once per process): what the
    # in-process hub of `tandem serve` pays then. Load them all here, so the timed loops
    # measure the steady state, and say what each costs (CPU time).
    costs = []
    for code in engine.languages:
        t0 = time.process_time()
        pack = engine.pack(code)
        t1 = time.process_time()
        pack.mapper.warm()
        t2 = time.process_time()
        costs.append(f"{code} {(t1 - t0) * 1000:.0f}+{(t2 - t1) * 1000:.0f}")
    chars = sum(len(t) for t in texts)
    print(
        f"texts: {source}; {n:,} messages, mean {chars / n:.0f} chars; engine load {load * 1000:.0f} ms CPU"
    )
    print(f"first use per language (CPU ms, pack + common words): {', '.join(costs)}")

    t0 = time.process_time()
    for text in texts:
        engine.observe(engine.new_state(), "customer", text)
    single = time.process_time() - t0
    print(
        f"single-message mode:  {n / single:>10,.0f} messages/s  ({single / n * 1e6:.1f} us/message, CPU time)"
    )

    states = [engine.new_state() for _ in range(max(1, n // 8))]
    t0 = time.process_time()
    for i, text in enumerate(texts):
        state = states[i % len(states)]
        engine.observe(state, "customer", text)
        if i % 3 == 0:
            engine.observe(state, "bot", "Here is how that works.", fallback=i % 9 == 0)
    conv = time.process_time() - t0
    total = n + (n + 2) // 3
    print(
        f"conversation mode:    {n / conv:>10,.0f} customer messages/s  ({total / conv:,.0f} messages/s counting "
        f"the bot turn after every third; {len(states):,} conversations)"
    )

    t0 = time.process_time()
    for state in states:
        engine.load_state(engine.dump_state(state))
    dump = time.process_time() - t0
    print(f"state dump+load:      {len(states) / dump:>10,.0f} states/s")

    own = _multilingual(rng, n)
    if own:
        langs = sorted({lang for lang, _ in own})
        t0 = time.process_time()
        for _, text in own:
            engine.observe(engine.new_state(), "customer", text)
        multi = time.process_time() - t0
        print(
            f"single, 12 languages: {n / multi:>10,.0f} messages/s  ({multi / n * 1e6:.1f} us/message; "
            f"our multilingual test sets, {len(langs)} languages)"
        )

    try:
        from vaderSentiment.vaderSentiment import SentimentIntensityAnalyzer
    except ImportError:
        print("VADER:                not installed")
        return 0
    vader = SentimentIntensityAnalyzer()
    t0 = time.process_time()
    for text in texts:
        vader.polarity_scores(text)
    vtime = time.process_time() - t0
    print(
        f"VADER (same texts):   {n / vtime:>10,.0f} messages/s  ({vtime / n * 1e6:.1f} us/message; "
        "SentimentIntensityAnalyzer.polarity_scores alone, for scale)"
    )
    return 0


def _multilingual(rng: random.Random, n: int) -> list[tuple[str, str]]:
    """``n`` messages drawn from the repository's own multilingual sets, when present."""
    import json

    root = Path(__file__).resolve().parents[2] / "tests" / "triage" / "multilingual"
    texts: list[tuple[str, str]] = []
    for f in sorted(root.rglob("*.jsonl")):
        for line in f.read_text("utf-8").splitlines():
            try:
                rec = json.loads(line)
            except ValueError:
                continue
            if isinstance(rec, dict) and isinstance(rec.get("text"), str):
                texts.append((str(rec.get("lang", "")), rec["text"]))
    return [rng.choice(texts) for _ in range(n)] if texts else []
