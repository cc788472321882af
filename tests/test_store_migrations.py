"""Migrations: a fresh file and an old file both end at the current version."""

from __future__ import annotations

import multiprocessing as mp
import sqlite3
from pathlib import Path

import pytest
import sqlite_utils

from store import DatabaseUnavailable, Store
from store import lifecycle as lc
from store.migrations import applied, current_version, migrations


def test_fresh_file_is_created_migrated_and_in_wal(db_path: Path) -> None:
    store = Store(db_path)
    assert applied(store)[-1] == current_version()
    assert store.one("PRAGMA journal_mode")[0] == "wal"
    assert store.one("PRAGMA foreign_keys")[0] == 1
    assert store.one("PRAGMA busy_timeout")[0] > 0
    assert store.one("PRAGMA synchronous")[0] == 1  # NORMAL


@pytest.mark.parametrize("stop", [m.name for m in migrations._migrations])
def test_old_file_is_migrated_on_open(db_path: Path, stop: str) -> None:
    # A database left by an older release: only the migrations before `stop` applied.
    old = sqlite_utils.Database(db_path)
    migrations.apply(old, stop_before=stop)
    old.conn.close()
    store = Store(db_path)
    assert applied(store) == [m.name for m in migrations._migrations]
    cid = lc.open_conversation(store, "Maya")
    assert lc.add_customer_message(store, cid, "still works").message_id > 0


def _open(path: str) -> list[str]:
    return applied(Store(path))


def test_processes_opening_a_fresh_file_at_once_migrate_once(db_path: Path) -> None:
    with mp.get_context("spawn").Pool(4) as pool:
        results = pool.map(_open, [str(db_path)] * 4)
    assert all(r == results[0] for r in results)
    rows = Store(db_path).query("SELECT name FROM _sqlite_migrations")
    assert len(rows) == len(migrations._migrations)


def test_not_a_database(tmp_path: Path) -> None:
    bad = tmp_path / "notes.db"
    bad.write_text("these are my notes, not a database\n")
    with pytest.raises(DatabaseUnavailable, match="not a SQLite database"):
        Store(bad)
    assert bad.read_text() == "these are my notes, not a database\n"


def test_locked_database(db_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    Store(db_path).close()
    monkeypatch.setenv("TANDEM_BUSY_TIMEOUT_MS", "100")
    holder = sqlite3.connect(db_path, isolation_level=None)
    holder.execute("BEGIN EXCLUSIVE")
    try:
        store = Store(db_path)
        with pytest.raises(DatabaseUnavailable, match="locked"):
            lc.open_conversation(store, "Maya")
    finally:
        holder.execute("ROLLBACK")
    assert Store(db_path).one("SELECT count(*) FROM conversations")[0] == 0


# 0012 as it first landed (1b36189): a store that applied it never runs 0012 again.
_FIRST_0012 = """
CREATE INDEX messages_bot_conversation ON messages(conversation_id) WHERE role = 'bot';
CREATE INDEX messages_agent_conversation ON messages(conversation_id, created_at)
    WHERE role = 'agent';
DROP INDEX IF EXISTS events_kind_at;
CREATE INDEX events_kind_at ON events(kind, at, conversation_id) WHERE kind != 'message';
"""


def _indexes(path: Path) -> dict[str, str]:
    conn = sqlite3.connect(path)
    try:
        rows = conn.execute("SELECT name, sql FROM sqlite_master WHERE type = 'index'")
        return {name: " ".join((sql or "").split()) for name, sql in rows}
    finally:
        conn.close()


def test_a_store_that_ran_the_first_0012_ends_with_the_current_indexes(tmp_path: Path) -> None:
    fresh = tmp_path / "fresh.db"
    Store(fresh)
    old_path = tmp_path / "old.db"
    old = sqlite_utils.Database(old_path)
    migrations.apply(old, stop_before="0012_report_message_indexes")
    old.conn.executescript(_FIRST_0012)
    old["_sqlite_migrations"].insert(
        {"migration_set": "tandem", "name": "0012_report_message_indexes", "applied_at": "x"}
    )
    old.conn.commit()
    old.conn.close()
    assert _indexes(old_path) != _indexes(fresh)  # the shape the edit left behind
    Store(old_path)
    assert _indexes(old_path) == _indexes(fresh)
