"""Shared fixtures. Keep the developer's own environment out of every test."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from fake_openai import FakeOpenAI

from store import Store


@pytest.fixture(autouse=True)
def _clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    # A developer's TANDEM_DB or LLM endpoint must never leak into a test.
    for name in (
        "TANDEM_DB",
        "OPENAI_BASE_URL",
        "OPENAI_API_KEY",
        "TANDEM_MODEL",
        "TANDEM_CONFIG",
        "TANDEM_WEBHOOK_SECRET",
    ):
        monkeypatch.delenv(name, raising=False)


@pytest.fixture
def db_path(tmp_path: Path) -> Path:
    """A path for a real SQLite file (not created yet)."""
    return tmp_path / "tandem.db"


@pytest.fixture
def store(db_path: Path) -> Iterator[Store]:
    """A migrated store on a real file."""
    s = Store(db_path)
    yield s
    s.close()


@pytest.fixture
def fake_openai() -> Iterator[FakeOpenAI]:
    """A fake OpenAI-compatible server on 127.0.0.1 (see tests/fake_openai.py for its knobs)."""
    with FakeOpenAI() as fake:
        yield fake
