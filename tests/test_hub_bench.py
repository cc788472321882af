"""`tandem bench hub` runs end to end on a small load and prints its numbers."""

from __future__ import annotations

import re
from pathlib import Path

from console.bench.hub_workers import parse_counts
from console.cli import main


def test_bench_hub_prints_rates_and_lag(tmp_path: Path, capsys) -> None:
    code = main(
        [
            "bench",
            "hub",
            "--messages",
            "300",
            "--conversations",
            "40",
            "--rate",
            "400",
            "--dir",
            str(tmp_path),
            "--data",
            str(tmp_path / "absent.csv"),
        ]
    )
    assert code == 0
    out = capsys.readouterr().out
    assert "routine persona scripts (no replay file)" in out
    saturated = re.search(r"saturated: hub\s+(\d+) customer messages/s \((\d+) in", out)
    paced = re.search(
        r"paced 400/s: hub\s+(\d+) customer messages/s \((\d+) in .* p50 ([\d.]+) ms", out
    )
    assert saturated and paced, out
    assert int(saturated.group(2)) == 300 and int(paced.group(2)) == 300
    assert int(saturated.group(1)) > 0 and float(paced.group(3)) >= 0
    assert "0 errors" in out
    cpu = re.findall(r"hub CPU [\d.]+ s \(([\d.]+) ms/message, triage ([\d.]+)\)", out)
    assert len(cpu) == 2, out  # one per run
    assert all(0 < float(triage) < float(total) for total, triage in cpu), cpu


def test_bench_hub_workers(tmp_path: Path, capsys) -> None:
    # One worker count keeps the test lean (each count starts its processes); `--workers 1,2`
    # prints one such block per count.
    code = main(
        [
            "bench",
            "hub",
            *("--workers", "2", "--messages", "80", "--conversations", "20", "--rate", "200"),
            *("--dir", str(tmp_path), "--data", str(tmp_path / "absent.csv")),
        ]
    )
    assert code == 0
    out = capsys.readouterr().out
    rows = re.findall(
        r"(\d) workers? +(saturated|paced 200/s): +(\d+) customer messages/s \((\d+) in .*"
        r" ms/message \| commit->answer lag p50 ([\d.]+) ms, p99 ([\d.]+) ms \| 0 errors",
        out,
    )
    assert [(r[0], r[1]) for r in rows] == [("2", "saturated"), ("2", "paced 200/s")], out
    assert all(int(r[3]) == 80 and int(r[2]) > 0 for r in rows), out
    assert parse_counts("1, 2") == [1, 2]
    assert main(["bench", "hub", "--workers", "1,x"]) == 1
    assert "--workers wants counts 1-64" in capsys.readouterr().out
