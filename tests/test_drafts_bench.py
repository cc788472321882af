"""`tandem bench drafts` runs and prints its numbers (small sizes)."""

from __future__ import annotations

import pytest

from console.cli import main


def test_bench_drafts_prints_numbers(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["bench", "drafts", "--drafts", "8", "--llm-drafts", "2", "--no-ui"]) == 0
    out = capsys.readouterr().out
    assert "embedded, first text" in out and "p99" in out
    assert "first text in the service's consumer" in out
