"""`tandem bench console` runs end to end and prints its numbers (no timing is asserted)."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path


def test_bench_console_prints_start_keys_feed_and_cpu(tmp_path: Path) -> None:
    out = subprocess.run(
        [
            sys.executable,
            "-m",
            "console.cli",
            "bench",
            "console",
            "--conversations",
            "40",
            "--keys",
            "10",
            "--rate",
            "20",
            "--starts",
            "1",
            "--seconds",
            "1",
            "--db",
            str(tmp_path / "bench.db"),
        ],
        capture_output=True,
        text=True,
        timeout=240,
    )
    assert out.returncode == 0, out.stderr
    assert re.search(r"start -> first frame .*: \d+ ms", out.stdout), out.stdout
    assert re.search(r"key -> frame \(10 keys\): p50 [\d.]+ ms", out.stdout), out.stdout
    assert "console CPU while keys are pressed" in out.stdout
