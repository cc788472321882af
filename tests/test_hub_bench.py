"""`tandem bench hub` runs end to end on a small load and prints its numbers."""

from __future__ import annotations

import re
from pathlib import Path

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
