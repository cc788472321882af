"""`tandem demo`'s managed hub: started, waited for, stopped; a failed start is one clear line."""

from __future__ import annotations

from pathlib import Path

import pytest

from console.cli import UsageError
from console.commands.demo import Hub
from store import Store


def test_the_hub_child_starts_and_stops(tmp_path: Path) -> None:
    db = tmp_path / "demo.db"
    Store(db).close()
    hub = Hub(db, simulate=2, speed=5.0, log=tmp_path / "hub.log", listen=None)
    hub.start()
    try:
        hub.wait_up(timeout=30)
        assert hub.proc is not None and hub.proc.poll() is None
    finally:
        hub.stop()
    assert hub.proc.returncode is not None
    assert "tandem serve:" in (tmp_path / "hub.log").read_text()


def test_a_hub_that_cannot_start_is_reported(tmp_path: Path) -> None:
    bad = tmp_path / "not-a-db"
    bad.write_text("this is not SQLite")
    hub = Hub(bad, simulate=1, speed=1.0, log=tmp_path / "hub.log", listen=None)
    hub.start()
    try:
        with pytest.raises(UsageError, match="the hub stopped at start"):
            hub.wait_up(timeout=30)
    finally:
        hub.stop()
