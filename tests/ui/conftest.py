"""Fixtures for the console's Pilot tests: a seeded store file; consoles over either backend."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from remote_support import Consoles

from store import Store


@pytest.fixture
def seeded(db_path: Path) -> Path:
    from console.ui.seed import seed

    with Store(db_path) as s:
        seed(s, 24)
    return db_path


@pytest.fixture(params=["local", "remote"])
def consoles(request: pytest.FixtureRequest, db_path: Path) -> Iterator[Consoles]:
    """The test runs twice: on the store file, and through ``tandem serve``'s agent API."""
    made = Consoles(request.param, db_path)
    try:
        yield made
    finally:
        made.close()
