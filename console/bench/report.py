"""``tandem bench report``: the report, the supervisor's figures and what-if on a big store.

Seeds a store with a week of history (default 1,000,000 messages): the bot answers most
conversations; about a third reach the queue, most of those are claimed by one of 20 agents
who reply and resolve, some are abandoned. Customer text is replayed from
``../shared/data/customer-messages.csv`` when present (real messages, so triage does real work
in the what-if replay), else from a few fixed sentences. Then it times ``tandem report``'s
query over 24 hours and 7 days, the supervisor screen's metrics, and a what-if replay of the
whole week under a looser policy. DESIGN section 11: report <= 1 s, supervisor metrics
<= 100 ms; the what-if issue: <= 60 s for 1,000,000 messages.
"""

from __future__ import annotations

import argparse
import csv
import functools
import json
import random
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from console.bench.triage import DEFAULT_DATA

FALLBACK_TEXTS = (
    "how do I change my address?",
    "my card was declined at the shop",
    "this is really annoying, the app keeps crashing",
    "I want to speak to a human please",
    "what are the fees for transfers abroad?",
)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--messages", type=int, default=1_000_000, help="messages to seed (default 1000000)"
    )
    parser.add_argument("--data", metavar="CSV", default=str(DEFAULT_DATA))
    parser.add_argument("--dir", metavar="DIR", help="where to put the scratch database")
    parser.add_argument("--no-whatif", action="store_true", help="skip the what-if replay")


def _texts(path: str) -> list[str]:
    try:
        with open(path, encoding="utf-8", newline="") as fh:
            texts = [row["text"] for row in csv.DictReader(fh) if row.get("text")]
    except (OSError, KeyError, csv.Error):
        texts = []
    return texts or list(FALLBACK_TEXTS)


def seed(path: Path, messages: int, texts: list[str], *, seed: int = 11) -> int:
    """A week of history in ``path``; returns the number of conversations."""
    from store import Store, bulk

    rng = random.Random(seed)
    store = Store(path)
    end = time.time()
    start = end - 7 * 86400
    agents = [f"agent{i:02d}" for i in range(20)]
    bulk.insert_rows(
        store,
        "agents",
        ("name", "display_name", "created_at", "last_seen_at"),
        [(a, a, start, end) for a in agents],
    )
    per = 10
    n_conv = max(1, messages // per)
    bulk.insert_rows(
        store,
        "customers",
        ("id", "name", "created_at"),
        ((i, f"customer {i}", start) for i in range(1, n_conv + 1)),
    )
    conv_rows: list[tuple[Any, ...]] = []
    msgs: list[tuple[Any, ...]] = []
    events: list[tuple[Any, ...]] = []
    mid = 0
    levels = ("watch", "empathy", "empathy", "urgent")
    reasons = ("human_request", "frustration", "negative_sentiment", "fraud", "bot_fallback")

    def flush() -> None:
        # Conversations first: messages and events point to them.
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
                "last_message_at",
                "claimed_at",
                "resolved_at",
                "message_count",
            ),
            conv_rows,
        )
        conv_rows.clear()
        bulk.insert_rows(
            store,
            "messages",
            ("id", "conversation_id", "role", "author", "text", "created_at", "meta"),
            msgs,
        )
        bulk.insert_rows(
            store,
            "events",
            (
                "at",
                "conversation_id",
                "kind",
                "actor",
                "from_state",
                "to_state",
                "message_id",
                "data",
            ),
            events,
        )
        msgs.clear()
        events.clear()

    for cid in range(1, n_conv + 1):
        t = start + (end - start - 3600) * (cid - 1) / n_conv
        opened = t
        events.append((t, cid, "opened", "customer", None, "bot", None, '{"channel":"api"}'))
        fate = rng.random()
        escalate_at = rng.randint(1, 3) if fate < 0.33 else None
        abandoned = fate < 0.05
        owner = rng.choice(agents)
        state, level = "bot", "calm"
        claimed_at = resolved_at = None
        first_mid = mid
        for turn in range(per // 2):
            t += rng.uniform(5, 60)
            mid += 1
            msgs.append((mid, cid, "customer", None, rng.choice(texts)[:500], t, None))
            events.append((t, cid, "message", "customer", None, None, mid, '{"role":"customer"}'))
            if escalate_at is not None and turn + 1 == escalate_at and state == "bot":
                level = rng.choice(levels)
                why = json.dumps({"reasons": [rng.choice(reasons)], "level": level})
                events.append((t, cid, "escalated", "hub", "bot", "waiting", None, why))
                state = "waiting"
                if abandoned:
                    t += rng.uniform(60, 900)
                    events.append(
                        (t, cid, "abandoned", "customer", "waiting", "resolved", None, None)
                    )
                    state, resolved_at = "resolved", t
                    break
                t += rng.uniform(10, 400)
                events.append(
                    (
                        t,
                        cid,
                        "claimed",
                        owner,
                        "waiting",
                        "human",
                        None,
                        json.dumps({"owner": owner}),
                    )
                )
                state, claimed_at = "human", t
            t += rng.uniform(1, 120) if state == "human" else 0.5
            mid += 1
            role, author = ("agent", owner) if state == "human" else ("bot", "bot")
            meta = None if role == "agent" else '{"engine":"embedded"}'
            msgs.append(
                (mid, cid, role, author, "Here is what I can tell you about that.", t, meta)
            )
            events.append((t, cid, "message", author, None, None, mid, json.dumps({"role": role})))
        if state in ("bot", "human") and rng.random() < 0.9:
            t += 30
            events.append(
                (
                    t,
                    cid,
                    "resolved",
                    owner if state == "human" else "hub",
                    state,
                    "resolved",
                    None,
                    None,
                )
            )
            state, resolved_at = "resolved", t
        conv_rows.append(
            (
                cid,
                cid,
                state,
                owner if state == "human" else None,
                level,
                opened,
                t,
                t,
                claimed_at,
                resolved_at,
                mid - first_mid,
            )
        )
        if len(msgs) >= 50_000:
            flush()
    flush()
    bulk.analyze(store)
    store.close()
    return n_conv


def _timed(fn: Callable[[], Any], repeat: int) -> tuple[float, float]:
    from store.stats import percentile

    samples = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        samples.append((time.perf_counter() - t0) * 1000)
    return percentile(samples, 0.5) or 0.0, percentile(samples, 0.99) or 0.0


def run(args: argparse.Namespace) -> int:
    from console.policy import PolicySettings
    from console.whatif import compare
    from store import Store
    from store.db import now
    from store.report import support_report
    from store.views import supervisor_metrics, supervisor_series

    texts = _texts(args.data)
    with tempfile.TemporaryDirectory(dir=args.dir) as tmp:
        path = Path(tmp) / "report.db"
        t0 = time.perf_counter()
        n_conv = seed(path, args.messages, texts)
        print(
            f"report   seeded {args.messages:,} messages in {n_conv:,} conversations over 7 days "
            f"in {time.perf_counter() - t0:.1f} s"
        )
        store = Store(path)
        settings = PolicySettings()
        at = now()
        for label, span in (("24 h", 86400.0), ("7 days", 7 * 86400.0)):
            p50, p99 = _timed(
                functools.partial(
                    support_report, store, since=at - span, until=at, sla_s=settings.sla_s
                ),
                5,
            )
            print(
                f"report   tandem report over {label:<7}  p50 {p50:8.1f} ms  p99 {p99:8.1f} ms"
                "  (goal <= 1000 ms)"
            )
        p50, p99 = _timed(lambda: supervisor_metrics(store, sla_s=settings.sla_s), 20)
        print(
            f"report   supervisor metrics             p50 {p50:8.1f} ms  p99 {p99:8.1f} ms"
            "  (goal <= 100 ms)"
        )
        # The supervisor screen's charts: six hours in 10-minute buckets, every few seconds.
        p50, p99 = _timed(
            lambda: supervisor_series(store, since=now() - 6 * 3600, sla_s=settings.sla_s), 20
        )
        print(
            f"report   supervisor charts (6 h)        p50 {p50:8.1f} ms  p99 {p99:8.1f} ms"
            "  (goal <= 100 ms)"
        )
        if not args.no_whatif:
            t0 = time.perf_counter()
            result = compare(
                store,
                settings,
                PolicySettings(escalate_level="watch", max_fallbacks=1),
                since=at - 8 * 86400,
                until=at,
            )
            took = time.perf_counter() - t0
            cur, new = result["current"], result["proposed"]
            print(
                f"whatif   replayed {cur['conversations']:,} conversations ({args.messages:,} "
                f"messages) in {took:.1f} s  (goal <= 60 s): escalated {cur['escalated']:,} -> "
                f"{new['escalated']:,}"
            )
        store.close()
    return 0
