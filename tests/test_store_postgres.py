"""The PostgreSQL store's own parts: its schema against SQLite's, its migrations, its lock,
the feed's notifications, and the rewriting of the store's SQL (store/dialect.py).

The store's behaviour on PostgreSQL is tested by the store's own suites, which run on both
backends (tests/conftest.py: BOTH_BACKENDS); these are what only PostgreSQL has.
"""

from __future__ import annotations

import multiprocessing as mp
import re
import sqlite3
import threading
import time
from pathlib import Path

import psycopg
import pytest
from pg_server import PgServer

from store import DatabaseUnavailable, InvalidInput, Store, leases, migrations_pg
from store import lifecycle as lc
from store.db import at_commit
from store.dialect import translate
from store.feed import Follower
from store.migrations import migrations
from store.pg import BOOKKEEPING_LOCK, CONVERSATION_LOCKS, WRITE_LOCK, PostgresStore, close_pool
from store.queries import transcript


def _sqlite_columns(path: Path) -> dict[str, list[str]]:
    store = Store(path)
    tables = [
        r[0]
        for r in store.query(
            "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%'"
            " AND name NOT LIKE 'kb_fts%' AND name != '_sqlite_migrations'"
        )
    ]
    return {t: [r[1] for r in store.query(f"PRAGMA table_info({t})")] for t in tables}


def test_both_schemas_have_the_same_tables_and_columns(tmp_path: Path, pg_server: PgServer) -> None:
    pg = Store(pg_server.empty_database())
    assert isinstance(pg, PostgresStore)
    assert migrations_pg.columns(pg) == _sqlite_columns(tmp_path / "t.db")
    assert migrations_pg.applied(pg) == [m.name for m in migrations._migrations]


@pytest.mark.parametrize("stop", [m.name for m in migrations._migrations[1:]])
def test_an_old_database_is_migrated_on_open(pg_server: PgServer, stop: str) -> None:
    url = pg_server.empty_database()
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute(
            f"CREATE TABLE {migrations_pg.TABLE} (name TEXT PRIMARY KEY, applied_at DOUBLE PRECISION NOT NULL)"
        )
        for name, statements in migrations_pg.steps():
            if name == stop:
                break
            for statement in statements:
                conn.execute(statement)  # type: ignore[call-overload]
            conn.execute(f"INSERT INTO {migrations_pg.TABLE} VALUES (%s, 0)", (name,))
    store = Store(url)
    assert migrations_pg.applied(store) == [m.name for m in migrations._migrations]
    cid = lc.open_conversation(store, "Maya")
    assert lc.add_customer_message(store, cid, "still works").message_id > 0


def _open(url: str) -> list[str]:
    return migrations_pg.applied(Store(url))  # type: ignore[arg-type]


def test_processes_opening_a_fresh_database_at_once_migrate_once(pg_server: PgServer) -> None:
    url = pg_server.empty_database()
    with mp.get_context("spawn").Pool(4) as pool:
        results = pool.map(_open, [url] * 4)
    assert all(r == results[0] for r in results)
    assert len(results[0]) == len(migrations._migrations)


def test_a_held_write_lock_is_a_sentence_after_the_busy_timeout(
    pg_server: PgServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    url = pg_server.new_database()
    monkeypatch.setenv("TANDEM_BUSY_TIMEOUT_MS", "100")
    from store.pg import close_pool

    close_pool(url)  # the pool's connections read the timeout when they connect
    with psycopg.connect(url) as holder:
        holder.execute("SELECT pg_advisory_xact_lock(%s)", (WRITE_LOCK,))
        store = Store(url)
        with pytest.raises(DatabaseUnavailable, match="locked"):
            lc.open_conversation(store, "Maya")
        holder.rollback()
    assert Store(url).one("SELECT count(*) FROM conversations")[0] == 0
    close_pool(url)


def test_bot_replies_posted_together_lock_their_conversations_only(
    pg_server: PgServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The hub's group of replies holds the write lock shared and its conversations' locks:
    # a customer's message to another conversation, in progress, does not hold it up.
    url = pg_server.new_database()
    monkeypatch.setenv("TANDEM_BUSY_TIMEOUT_MS", "300")
    close_pool(url)  # the pool's connections read the timeout when they connect
    store = Store(url)
    a, b, other = (lc.open_conversation(store, n) for n in "ABC")
    mids = {c: lc.add_customer_message(store, c, "hi").message_id for c in (a, b)}
    with psycopg.connect(url) as holder:
        holder.execute(
            "SELECT pg_advisory_xact_lock_shared(%s), pg_advisory_xact_lock(%s, %s)",
            (WRITE_LOCK, CONVERSATION_LOCKS, other),
        )
        posted = lc.bot_replies(store, [lc.BotReply(c, "Hello!", reply_to=mids[c]) for c in (a, b)])
        assert all(isinstance(r, int) for r in posted)
        holder.rollback()
        holder.execute("SELECT pg_advisory_xact_lock(%s, %s)", (CONVERSATION_LOCKS, b))
        with pytest.raises(DatabaseUnavailable, match="locked"):
            lc.bot_replies(store, [lc.BotReply(c, "More?") for c in (a, b)])
        holder.rollback()
    assert [m["text"] for m in transcript(store, a)] == ["hi", "Hello!"]
    store.close()
    close_pool(url)


def test_the_hub_workers_bookkeeping_and_the_writers_never_wait_for_each_other(
    pg_server: PgServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Heartbeats, leases and cursor saves hold the bookkeeping lock, not the write lock: an
    # ordinary write in progress (exclusive) does not hold them up, nor they a message.
    url = pg_server.new_database()
    monkeypatch.setenv("TANDEM_BUSY_TIMEOUT_MS", "300")
    close_pool(url)  # the pool's connections read the timeout when they connect
    store = Store(url)
    cid = lc.open_conversation(store, "Maya")
    with psycopg.connect(url) as holder:
        holder.execute("SELECT pg_advisory_xact_lock(%s)", (WRITE_LOCK,))
        beat = leases.heartbeat(store, "w/0", shards=4, at=100.0, ttl=10.0)
        assert leases.acquire(store, "w/0", beat.free, at=100.0, ttl=10.0) == {0, 1, 2, 3}
        assert leases.save_cursors(store, "w/0", "hub", {0: 5, 1: 7}, at=100.0) == {0, 1, 2, 3}
        with pytest.raises(DatabaseUnavailable, match="locked"):
            lc.add_customer_message(store, cid, "hi")  # an ordinary write still waits
        holder.rollback()
        holder.execute("SELECT pg_advisory_xact_lock(%s)", (BOOKKEEPING_LOCK,))
        lc.add_customer_message(store, cid, "hi")
        with pytest.raises(DatabaseUnavailable, match="locked"):
            leases.save_cursors(store, "w/0", "hub", {0: 9}, at=101.0)  # one at a time
        holder.rollback()
    assert leases.shard_cursors(store, "hub", {0, 1, 2}) == {0: 5, 1: 7, 2: 0}
    assert [m["text"] for m in transcript(store, cid)] == ["hi"]
    store.close()
    close_pool(url)


def test_statements_sent_with_the_commit_are_part_of_the_transaction(store: Store) -> None:
    # On PostgreSQL they reach the server with the COMMIT (one round trip); a failure among
    # them rolls the whole transaction back, as any failing statement does, on both engines.
    with store.write() as conn:
        conn.execute("INSERT INTO cursors (name, event_id, updated_at) VALUES ('a', 1, 0)")
        at_commit(
            conn,
            "INSERT INTO cursors (name, event_id, updated_at) VALUES (?, ?, ?)",
            [("b", 2, 0), ("c", 3, 0)],
        )
    with pytest.raises(sqlite3.IntegrityError):
        with store.write() as conn:
            conn.execute("INSERT INTO cursors (name, event_id, updated_at) VALUES ('d', 4, 0)")
            at_commit(
                conn,
                "INSERT INTO cursors (name, event_id, updated_at) VALUES (?, ?, ?)",
                [("e", 5, 0), ("f", None, 0)],
            )
    with store.write() as conn:  # the store goes on
        at_commit(
            conn, "INSERT INTO cursors (name, event_id, updated_at) VALUES (?, ?, ?)", [("g", 6, 0)]
        )
    names = [r[0] for r in store.query("SELECT name FROM cursors ORDER BY name")]
    assert names == ["a", "b", "c", "g"]


def test_an_unreachable_server_is_one_sentence(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("TANDEM_PG_CONNECT_TIMEOUT", "1")
    with pytest.raises(DatabaseUnavailable, match="cannot connect"):
        Store(f"postgresql://tandem@/nothing?host={tmp_path}&port=1")


def test_a_follower_wakes_on_the_notification(pg_server: PgServer) -> None:
    url = pg_server.new_database()
    store = Store(url)
    cid = lc.open_conversation(store, "Maya")
    follower = Follower(url, after=None)
    assert follower.poll() == []  # starts listening at the end of the feed

    def write_later() -> None:
        time.sleep(0.2)
        lc.add_customer_message(Store(url), cid, "hello")

    writer = threading.Thread(target=write_later)
    writer.start()
    # One long wait, not a loop of short polls: the notification ends it.
    events = follower.wait(timeout=30, interval=30)
    writer.join()
    assert [e.kind for e in events] == ["message"]
    follower.close()


def test_a_follower_of_some_shards_wakes_only_for_their_commits(pg_server: PgServer) -> None:
    # Each commit's notification names its events' shards (conversation id % 64): a hub
    # worker does not read the feed for another worker's conversations.
    url = pg_server.new_database()
    store = Store(url)
    mine, other = (lc.open_conversation(store, n) for n in ("Maya", "Ravi"))
    assert (mine % 64, other % 64) == (1, 2)
    listener = Store(url)
    mask = 1 << (mine % 64)
    assert listener.feed_changed(mask=mask)  # starts listening

    def news() -> bool:
        time.sleep(0.2)  # the notification is on its way
        return listener.feed_changed(mask=mask)

    lc.add_customer_message(store, other, "hi")
    assert not news()
    lc.add_customer_message(store, mine, "hi")
    assert news()
    lc.bot_replies(store, [lc.BotReply(c, "Hello!") for c in (other, mine)])
    assert news()  # one commit on both shards
    lc.add_customer_message(store, other, "more")
    time.sleep(0.2)
    assert listener.feed_changed(mask=None)  # every other follower: any commit is news

    # A follower reads everything of its shards all the same, and once more when its shards
    # change (what it skipped for a shard it now has).
    follower = Follower(url, after=0)
    follower.shards, follower.of = frozenset({mine % 64}), 64
    assert {e.conversation_id for e in follower.poll()} == {mine}
    lc.add_customer_message(store, other, "again")
    time.sleep(0.2)
    assert follower.poll() == []
    follower.shards = frozenset({mine % 64, other % 64})
    assert [e.conversation_id for e in follower.poll()] == [other]
    follower.close()
    listener.close()
    store.close()


def test_a_lost_notification_loses_no_event(pg_server: PgServer) -> None:
    url = pg_server.new_database()
    store = Store(url)
    cid = lc.open_conversation(store, "Maya")
    follower = Follower(url, after=0)
    assert [e.kind for e in follower.poll()] == ["opened"]
    # Written while nobody listens on the follower's connection: its notification is lost.
    follower_store = follower._open()
    follower_store.pg.raw.execute("UNLISTEN *")
    lc.add_customer_message(store, cid, "one")
    follower_store.pg.raw.execute("LISTEN tandem_feed")
    deadline = time.monotonic() + 30
    seen: list[str] = []
    while not seen and time.monotonic() < deadline:
        seen = [e.kind for e in follower.wait(timeout=0.5, interval=0.1)]
    assert seen == ["message"]
    follower.close()


@pytest.mark.parametrize(
    ("sqlite", "postgres"),
    [
        (
            "SELECT a FROM t WHERE b = ? AND c LIKE '%x?%'",
            "SELECT a FROM t WHERE b = %s AND c LIKE '%%x?%%'",
        ),
        (
            "SELECT 1 FROM t WHERE a IS NOT ? AND b IS ? AND c IS NULL",
            "SELECT 1 FROM t WHERE a IS DISTINCT FROM %s AND b IS NOT DISTINCT FROM %s AND c IS NULL",
        ),
        ("SELECT 'this is it' FROM t", "SELECT 'this is it' FROM t"),
        (
            "INSERT OR IGNORE INTO agents (name) VALUES (?)",
            "INSERT INTO agents (name) VALUES (%s) ON CONFLICT DO NOTHING",
        ),
        (
            "SELECT count(*) FROM (SELECT id FROM a EXCEPT SELECT id FROM b)",
            "SELECT count(*) FROM (SELECT id FROM a EXCEPT SELECT id FROM b) AS _sub0",
        ),
        (
            "SELECT json_extract(e.data, '$.owner') FROM events e",
            "SELECT ((e.data)::jsonb ->> 'owner') FROM events e",
        ),
        (
            "SELECT CAST(at / 3600 AS INTEGER) FROM events",
            "SELECT CAST(trunc(at / 3600) AS BIGINT) FROM events",
        ),
        ("SELECT a FROM t WHERE b >= :since", "SELECT a FROM t WHERE b >= %(since)s"),
        (
            "INSERT INTO c (n, e) VALUES (?, ?) ON CONFLICT(n) DO UPDATE SET e = max(e, excluded.e)",
            "INSERT INTO c (n, e) VALUES (%s, %s) ON CONFLICT(n) DO UPDATE SET e = GREATEST(c.e, excluded.e)",
        ),
    ],
)
def test_the_store_sql_is_rewritten_for_postgresql(sqlite: str, postgres: str) -> None:
    assert translate(sqlite).sql == postgres


def test_an_insert_returns_its_id_and_a_conflict_stays_an_error() -> None:
    t = translate("INSERT INTO messages (a) VALUES (?)", frozenset({"messages"}))
    assert t.sql == "INSERT INTO messages (a) VALUES (%s) ON CONFLICT DO NOTHING RETURNING id"
    assert (t.id_table, t.conflict_is_error) == ("messages", True)


def test_db_copy_moves_a_sqlite_store_to_postgresql(tmp_path: Path, pg_server: PgServer) -> None:
    from test_cli_store import tandem

    from store.synthetic import seed

    src_path = tmp_path / "old.db"
    src = Store(src_path)
    seed(src, conversations=300, messages=2400)
    lc.open_conversation(src, "Maya")
    dst_url = pg_server.empty_database()
    copied = tandem("db", "copy", str(src_path), dst_url)
    assert copied.returncode == 0, copied.stdout + copied.stderr
    assert copied.stdout.strip().endswith(": ok")
    dst = Store(dst_url)
    for table in ("customers", "conversations", "messages", "events", "agents"):
        mine = [tuple(r) for r in src.query(f"SELECT * FROM {table} ORDER BY 1")]
        assert mine == [tuple(r) for r in dst.query(f"SELECT * FROM {table} ORDER BY 1")], table
    # The copy goes on where the source stopped: new ids after the copied ones.
    cid = lc.open_conversation(dst, "after the move")
    assert cid == src.one("SELECT max(id) FROM conversations")[0] + 1
    again = tandem("db", "copy", str(src_path), dst_url)
    assert again.returncode != 0 and "already holds" in again.stderr
    status = tandem("db", "status", "--db", dst_url)
    assert status.returncode == 0 and "messages 2" in status.stdout
    checked = tandem("db", "check", "--db", dst_url)
    assert checked.returncode == 0 and checked.stdout.strip().endswith(": ok"), checked.stdout
    init = tandem("db", "init", "--db", dst_url)
    assert f"({len(migrations._migrations)} migrations)" in init.stdout, init.stdout + init.stderr


def test_bench_store_measures_sqlite_and_postgresql_in_one_run(
    tmp_path: Path, pg_server: PgServer
) -> None:
    from test_cli_store import tandem

    out = tandem(
        "bench", "store", "--messages", "200", "--conversations", "10", "--seconds", "1",
        "--rate", "50", "--dir", str(tmp_path), "--db", pg_server.url("postgres"),
    )  # fmt: skip
    assert out.returncode == 0, out.stderr
    for backend in ("sqlite", "postgresql"):
        assert re.search(
            rf"{backend}\s+ingest\s+customer messages via lifecycle API:\s+[\d,]+", out.stdout
        )
        seen = re.search(rf"{backend}\s+latency.*\((\d+)/(\d+) seen", out.stdout)
        assert seen and seen.group(1) == seen.group(2), out.stdout
    # The scratch databases are gone.
    with pg_server.admin() as conn:
        left = conn.execute("SELECT datname FROM pg_database WHERE datname LIKE 'tandem_scratch%'")
        assert left.fetchall() == []


def test_a_lost_connection_is_one_failed_call_then_a_new_connection(pg_server: PgServer) -> None:
    url = pg_server.new_database()
    store = Store(url)
    cid = lc.open_conversation(store, "Maya")
    pid = store.one("SELECT pg_backend_pid()")[0]
    with pg_server.admin() as admin:
        admin.execute("SELECT pg_terminate_backend(%s)", (pid,))
    with pytest.raises(DatabaseUnavailable, match="unreachable"):
        store.one("SELECT 1")
    assert lc.add_customer_message(store, cid, "still here").message_id > 0
    assert store.one("SELECT pg_backend_pid()")[0] != pid


def test_a_nul_character_is_refused_in_words_on_both_backends(store: Store) -> None:
    # PostgreSQL's text cannot hold U+0000 and SQLite's can: both refuse it in one sentence,
    # so what one store keeps the other (and `db copy`) can always keep too.
    cid = lc.open_conversation(store, "Maya")
    with pytest.raises(InvalidInput, match="NUL character"):
        lc.add_customer_message(store, cid, "hello\x00there")
    with pytest.raises(InvalidInput, match="NUL character"):
        lc.add_customer_message(store, cid, "hi", idempotency_key="k\x00")
    with pytest.raises(InvalidInput, match="NUL character"):
        lc.open_conversation(store, "Ma\x00ya")
    assert store.one("SELECT count(*) FROM messages")[0] == 0
    assert lc.add_customer_message(store, cid, "hello there").message_id > 0


def test_a_store_dropped_without_close_gives_its_connection_back(
    pg_server: PgServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("TANDEM_PG_POOL", "2")
    monkeypatch.setenv("TANDEM_PG_CONNECT_TIMEOUT", "5")
    url = pg_server.new_database()
    try:
        for n in range(5):  # more stores than the pool has connections
            dropped = Store(url)
            lc.open_conversation(dropped, f"customer {n}")
            del dropped
        with Store(url) as store:
            assert store.one("SELECT count(*) FROM conversations")[0] == 5
    finally:
        close_pool(url)
        pg_server.release(url)
