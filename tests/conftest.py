"""Shared fixtures. Keep the developer's own environment out of every test."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import pytest
from fake_openai import FakeOpenAI

from store import Store

if TYPE_CHECKING:
    from pg_server import PgServer

#: Test modules whose tests that take ``db_path`` or ``store`` run on both backends.
BOTH_BACKENDS = frozenset(
    {
        "test_store_lifecycle",
        "test_store_concurrency",
        "test_store_moves_and_check",
        "test_store_reads",
        "test_store_postgres",
        "test_oversight",
        "test_kb",
        "test_routing",
        "test_routing_processes",
    }
)


@pytest.hookimpl(optionalhook=True)
def pytest_xdist_auto_num_workers(config: pytest.Config) -> int:
    """``-n auto`` (``make test``): a worker per core this process may use, at most 4.

    Each worker is a session of its own, with its own PostgreSQL server (``pg_server``) and
    temporary directories; servers take free ports. More workers than cores only adds load:
    the suite waits on subprocesses, and the slow tests poll with deadlines.
    """
    return max(1, min(len(os.sched_getaffinity(0)), 4))


#: Modules of tests that take seconds each (real servers, process pools, benches, remote
#: consoles). A parallel run collects them first, so the workers start them early and end on
#: short tests rather than one waiting on a long test at the end. Only the order changes: a
#: module missing here runs all the same, a little later.
SLOW_FIRST = frozenset(
    {
        "test_workers_serve",
        "test_workers_pg",
        "test_serve",
        "test_hub_bench",
        "test_store_postgres",
        "test_store_concurrency",
        "test_routing_processes",
        "test_bench_remote_console",
        "test_bench_store",
        "test_bench_hub_http",
        "test_hostile_serve",
        "test_agent_api",
        "test_ui_bench_console",
        "test_ui_remote",
        "test_ui_queue_order",
        "test_ui_whatif",
        "test_ui_takeover",
        "test_ui_supervisor",
        "test_ui_oversight",
        "test_ui_processes",
    }
)


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if hasattr(config, "workerinput"):  # a pytest-xdist worker: every worker sorts alike
        items.sort(key=lambda item: item.path.stem not in SLOW_FIRST)


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    """Run the store's own tests against SQLite and a real PostgreSQL server.

    A test that is about the SQLite file itself says ``@pytest.mark.sqlite_only``.

    """
    module = metafunc.module.__name__.rsplit(".", 1)[-1]
    # TANDEM_TEST_BOTH=all (or a list of modules) runs more of the suite on both backends:
    # how a new store function is tried on PostgreSQL before its module joins the list.
    extra = os.environ.get("TANDEM_TEST_BOTH", "")
    if (
        "backend" in metafunc.fixturenames
        and (module in BOTH_BACKENDS or extra == "all" or module in extra.split(","))
        and metafunc.definition.get_closest_marker("sqlite_only") is None
    ):
        metafunc.parametrize("backend", ["sqlite", "postgresql"], indirect=True)


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
def backend(request: pytest.FixtureRequest) -> str:
    """``sqlite`` unless the module runs on both backends (see pytest_generate_tests)."""
    return str(getattr(request, "param", "sqlite"))


@pytest.fixture(scope="session")
def pg_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[PgServer]:
    """A real PostgreSQL server for the session (initdb + pg_ctl, unix socket only)."""
    from pg_server import start_server

    server = start_server()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def db_path(tmp_path: Path, backend: str, request: pytest.FixtureRequest) -> Iterator[Path]:
    """Where the test's store lives: a real SQLite file (not created yet), or on the
    PostgreSQL backend the URL of a fresh, migrated database of the session's server."""
    if backend != "postgresql":
        yield tmp_path / "tandem.db"
        return
    from store.pg import close_pool

    server: PgServer = request.getfixturevalue("pg_server")
    url = server.new_database()
    yield url  # type: ignore[misc]
    close_pool(url)
    server.release(url)


@pytest.fixture
def store(db_path: Path) -> Iterator[Store]:
    """A migrated store on a real file."""
    s = Store(db_path)
    yield s
    s.close()


@pytest.fixture
def fake_openai() -> Iterator[FakeOpenAI]:
    """A fake OpenAI-compatible server on 127.0.0.1 (see tests/fake_openai.py for its knobs).

    The ``openai`` package the real client comes from is imported first, once per worker:
    the code under test imports it on its first call, which on a loaded machine takes longer
    than a test's deadline (13.5 and 15.4 s wall for 1 s of CPU, load 15 on 2 cores), and no
    test is about that import.
    """
    import openai  # noqa: F401

    with FakeOpenAI() as fake:
        yield fake
