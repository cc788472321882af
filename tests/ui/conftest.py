"""Fixtures for the console's Pilot tests: a seeded store file."""

from __future__ import annotations

from pathlib import Path

import pytest

from store import Store


@pytest.fixture
def seeded(db_path: Path) -> Path:
    from console.ui.seed import seed

    with Store(db_path) as s:
        seed(s, 24)
    return db_path
