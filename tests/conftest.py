"""Shared fixtures. Keep the developer's own environment out of every test."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest
from fake_openai import FakeOpenAI

from store import Store


@pytest.fixture(autouse=True)
def _isolated(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """Every test runs as if on a fresh machine: the developer's settings never reach it.

    No ``TANDEM_*`` or ``OPENAI_*`` variable (a ``TANDEM_DB``, an LLM endpoint, a busy
    timeout...) survives; the working directory is the test's own ``tmp_path``, so a
    ``tandem.toml`` or ``tandem.db`` where pytest was started is not seen; ``HOME`` and the
    XDG directories point into it too. A test that wants a variable sets it itself.
    tests/test_isolation.py proves it with a planted config.
    """
    for name in list(os.environ):
        if name.startswith(("TANDEM_", "OPENAI_")):
            monkeypatch.delenv(name)
    home = tmp_path / "home"
    monkeypatch.setenv("HOME", str(home))
    for name, below in (
        ("XDG_CONFIG_HOME", ".config"),
        ("XDG_STATE_HOME", ".local/state"),
        ("XDG_DATA_HOME", ".local/share"),
        ("XDG_CACHE_HOME", ".cache"),
    ):
        monkeypatch.setenv(name, str(home / below))
    monkeypatch.chdir(tmp_path)


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
