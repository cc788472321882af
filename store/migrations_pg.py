"""The PostgreSQL schema: one migration for each SQLite one, with the same name.

A SQLite migration written in portable SQL (CREATE TABLE, ADD COLUMN, CREATE INDEX: the rule
for every migration) is ported by running it against a recorder and renaming its types
(store.dialect.ddl). One that does something only SQLite has gets a hand-written PostgreSQL
version in :data:`OVERRIDES`. tests/test_store_migrations.py checks that both schemas end
with the same tables and columns.

What only PostgreSQL has is added by the PostgreSQL version of 0001: the full-text column and
index of the knowledge base (instead of SQLite's FTS5 table and its triggers), the feed's
``NOTIFY`` trigger, and ``sum(boolean)`` (SQLite counts a comparison as 0 or 1).
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from store.dialect import ddl
from store.migrations import migrations as sqlite_migrations

if TYPE_CHECKING:
    from store.pg import PostgresStore

#: Records which migrations ran (SQLite's is sqlite-utils' ``_sqlite_migrations``).
TABLE = "tandem_migrations"

# The knowledge base's text as one weighted document (title first, then tags, then body),
# kept in a generated column (``kb_articles.fts``, the only column SQLite's schema lacks: its
# FTS5 table holds the same) so a search reads it instead of stemming every article again.
KB_DOCUMENT = (
    "setweight(to_tsvector('english', title), 'A') || setweight(to_tsvector('english', tags), 'B')"
    " || setweight(to_tsvector('english', body), 'C')"
)

_PG_0001_EXTRA = f"""
ALTER TABLE kb_articles ADD COLUMN fts tsvector GENERATED ALWAYS AS ({KB_DOCUMENT}) STORED;
CREATE INDEX kb_articles_fts ON kb_articles USING gin (fts);
CREATE FUNCTION tandem_feed_notify() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_notify('tandem_feed', '');
    RETURN NULL;
END $$;
CREATE TRIGGER events_notify AFTER INSERT ON events
    FOR EACH STATEMENT EXECUTE FUNCTION tandem_feed_notify();
CREATE FUNCTION tandem_count_true(bigint, boolean) RETURNS bigint LANGUAGE sql IMMUTABLE AS
    'SELECT $1 + CASE WHEN $2 THEN 1 ELSE 0 END';
CREATE AGGREGATE sum(boolean) (SFUNC = tandem_count_true, STYPE = bigint, INITCOND = '0');
"""


# The notification's payload: which of the 64 shards (store.feed.NOTIFY_SHARDS) the
# statement's events are in, as a bit mask ('' when none has a conversation).
_PG_0016 = """
CREATE OR REPLACE FUNCTION tandem_feed_notify() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_notify('tandem_feed', coalesce((SELECT bit_or(1::bigint << (conversation_id % 64)::int)
        FROM tandem_new_events)::text, ''));
    RETURN NULL;
END $$;
DROP TRIGGER events_notify ON events;
CREATE TRIGGER events_notify AFTER INSERT ON events REFERENCING NEW TABLE AS tandem_new_events
    FOR EACH STATEMENT EXECUTE FUNCTION tandem_feed_notify();
"""


class _Recorder:
    """Stands in for sqlite-utils' ``Database``: keeps the statements a migration runs."""

    def __init__(self) -> None:
        self.statements: list[str] = []

    def execute(self, sql: str, params: Any = None) -> None:
        self.statements.append(sql)


def _sqlite_statements(fn: Callable[[Any], None]) -> list[str]:
    recorder = _Recorder()
    fn(recorder)
    return recorder.statements


_SQLITE_ONLY = re.compile(r"^\s*CREATE\s+(VIRTUAL\s+TABLE|TRIGGER)\s+kb_", re.IGNORECASE)


def _pg_0001(statements: list[str]) -> list[str]:
    kept = [ddl(s) for s in statements if not _SQLITE_ONLY.match(s)]
    return kept + _split(_PG_0001_EXTRA)


#: Hand-ported migrations: name -> the PostgreSQL statements from the SQLite ones.
OVERRIDES: dict[str, Callable[[list[str]], list[str]]] = {
    "0001_initial": _pg_0001,
    "0016_feed_notify_shards": lambda _: _split(_PG_0016),
}


def _split(script: str) -> list[str]:
    """Statements of a script (``;`` at a line's end; dollar-quoted bodies kept whole)."""
    out: list[str] = []
    statement = ""
    for line in script.splitlines(keepends=True):
        statement += line
        if line.rstrip().endswith(";") and statement.count("$$") % 2 == 0:
            out.append(statement.strip())
            statement = ""
    if statement.strip():
        out.append(statement.strip())
    return out


def steps() -> list[tuple[str, list[str]]]:
    """Every migration, oldest first, as its PostgreSQL statements."""
    out = []
    for m in sqlite_migrations._migrations:
        statements = _sqlite_statements(m.fn)
        port = OVERRIDES.get(m.name)
        out.append((m.name, port(statements) if port else [ddl(s) for s in statements]))
    return out


def applied(store: PostgresStore) -> list[str]:
    """Names of migrations applied to ``store``, oldest first."""
    raw = store.pg.raw
    exists = raw.execute("SELECT to_regclass(%s)", (TABLE,)).fetchone()
    if exists is None or exists[0] is None:
        return []
    return [str(r[0]) for r in raw.execute(f"SELECT name FROM {TABLE} ORDER BY applied_at, name")]


def pending(store: PostgresStore) -> list[str]:
    """Names of migrations not yet applied to ``store``."""
    done = set(applied(store))
    return [m.name for m in sqlite_migrations._migrations if m.name not in done]


def migrate(store: PostgresStore) -> list[str]:
    """Apply pending migrations in one transaction under the write lock; the names applied."""
    if not pending(store):
        return []
    todo: list[str] = []
    with store.write():
        raw = store.pg.raw
        raw.execute(
            f"CREATE TABLE IF NOT EXISTS {TABLE} (name TEXT PRIMARY KEY,"
            " applied_at DOUBLE PRECISION NOT NULL)"
        )
        done = set(applied(store))
        for name, statements in steps():
            if name in done:
                continue
            for statement in statements:
                raw.execute(statement)
            raw.execute(
                f"INSERT INTO {TABLE} (name, applied_at) VALUES (%s, %s)", (name, time.time())
            )
            todo.append(name)
    return todo


def columns(store: PostgresStore) -> dict[str, list[str]]:
    """Each table's columns in order (for comparing the two schemas; generated ones left out)."""
    out: dict[str, list[str]] = {}
    for table, column in store.pg.raw.execute(
        "SELECT table_name, column_name FROM information_schema.columns"
        " WHERE table_schema = current_schema() AND is_generated = 'NEVER'"
        " ORDER BY table_name, ordinal_position"
    ):
        out.setdefault(str(table), []).append(str(column))
    out.pop(TABLE, None)
    return out
