"""`tandem bench hub --http`: a real `tandem serve` subprocess, a real aiohttp client, a tiny load."""

from __future__ import annotations

import re
from pathlib import Path

from console.bench.hub_http import read_outcome
from console.cli import main
from store import Store
from store import lifecycle as lc


def test_bench_hub_http_runs_and_prints_its_lines(tmp_path: Path, capsys) -> None:
    code = main(
        [
            "bench",
            "hub",
            "--http",
            "--messages",
            "40",
            "--conversations",
            "10",
            "--rate",
            "80",
            "--in-flight",
            "8",
            "--dir",
            str(tmp_path),
            "--data",
            str(tmp_path / "absent.csv"),
        ]
    )
    out = capsys.readouterr().out
    assert code == 0, out
    assert "routine persona scripts (no replay file)" in out
    assert "over 10 new conversations (4 each" in out
    for run in ("saturated \\(8 in flight\\)", "paced 80/s"):
        posted = re.search(
            run + r": posted 40 in [\d.]+ s .*\| HTTP 40 ok, errors: none \| request latency"
            r" p50 [\d.]+ ms, p99 [\d.]+ ms \| CPU: server [\d.]+ s",
            out,
        )
        assert posted, out
    stored = re.findall(
        r"store: 40 customer messages: (\d+) answered \(\+(\d+) by the reply to a later one\),"
        r" (\d+) escalated, (\d+) queued behind an escalation .*, 0 unanswered",
        out,
    )
    assert len(stored) == 2, out
    for counts in stored:
        assert sum(int(c) for c in counts) == 40
    lags = re.findall(
        r"sustained (\d+)/s answered or escalated, \d+/s all handled .* lag p50 ([\d.]+) ms,"
        r" p99 ([\d.]+) ms",
        out,
    )
    assert len(lags) == 2 and all(
        int(rate) > 0 and float(p50) <= float(p99) for rate, p50, p99 in lags
    ), out
    # The server ran as its own process and shut down cleanly with the whole load handled.
    assert re.search(r"server: stopped after \d+s: 80 customer messages, .* 0 errors", out), out


def test_read_outcome_classifies_every_customer_message(db_path: Path) -> None:
    with Store(db_path) as store:
        a = lc.open_conversation(store, "A")
        b = lc.open_conversation(store, "B")
        lc.add_customer_message(store, a, "how do I freeze my card")
        second = lc.add_customer_message(store, a, "and unfreeze it?").message_id
        lc.bot_reply(store, a, "In the app: Card > Freeze.", reply_to=second)
        lc.add_customer_message(store, b, "I was scammed")
        lc.escalate(store, b, reasons=["fraud"], message="A person will be with you shortly.")
        lc.add_customer_message(store, b, "hello??")
        lc.add_customer_message(store, a, "thanks, and my PIN?")
    out = read_outcome(db_path, [a, b])
    assert (
        out.customer,
        out.answered,
        out.coalesced,
        out.escalated,
        out.queued,
        out.unanswered,
    ) == (5, 1, 1, 1, 1, 1)
    assert len(out.lags) == 3 and all(lag >= 0 for lag in out.lags)
