"""`tandem bench store` runs end to end and prints its numbers (no timing is asserted)."""

from __future__ import annotations

import re
import subprocess
import sys


def test_bench_store_prints_rates_and_latency(tmp_path) -> None:  # noqa: ANN001
    out = subprocess.run(
        [
            sys.executable,
            "-m",
            "console.cli",
            "bench",
            "store",
            "--messages",
            "300",
            "--conversations",
            "10",
            "--seconds",
            "1",
            "--rate",
            "50",
            "--dir",
            str(tmp_path),
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert out.returncode == 0, out.stderr
    assert re.search(r"customer messages via lifecycle API:\s+[\d,]+ msgs/s", out.stdout)
    assert re.search(r"bot reply pairs:\s+[\d,]+ msgs/s  \(\d+ us CPU each", out.stdout), out.stdout
    match = re.search(r"p50 ([\d.]+) ms\s+p99 ([\d.]+) ms.*\((\d+)/(\d+) seen", out.stdout)
    assert match and match.group(3) == match.group(4), out.stdout
