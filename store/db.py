"""Opening the SQLite file: pragmas, migrations, transactions.

One :class:`Store` per thread: a ``sqlite3`` connection belongs to the thread that opened it.
Writers use ``BEGIN IMMEDIATE`` so two processes never both hold a read lock and then
deadlock on the upgrade to a write lock; ``busy_timeout`` makes the loser wait its turn.
"""

from __future__ import annotations

import os
import sqlite3
import time
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import sqlite_utils

from store.errors import DatabaseUnavailable

#: Query parameters: positional (``?``) or named (``:name``).
Params = Sequence[Any] | Mapping[str, Any]

DEFAULT_PATH = "tandem.db"
BUSY_TIMEOUT_MS = 5000


def _busy_timeout_ms() -> int:
    # Tests of a locked file set a short wait; production waits long enough to ride out
    # a burst of writers from other processes.
    try:
        return max(0, int(os.environ.get("TANDEM_BUSY_TIMEOUT_MS", BUSY_TIMEOUT_MS)))
    except ValueError:
        return BUSY_TIMEOUT_MS


def resolve_path(cli_value: str | os.PathLike[str] | None = None) -> Path:
    """The database path: ``--db``, else ``TANDEM_DB``, else ``./tandem.db``.

    :param cli_value: the ``--db`` option as given, or ``None``
    """
    if cli_value:
        return Path(cli_value)
    env = os.environ.get("TANDEM_DB")
    if env:
        return Path(env)
    return Path(DEFAULT_PATH)


def _check_file(path: Path) -> None:
    if not path.exists():
        parent = path.parent if str(path.parent) else Path(".")
        if not parent.exists():
            raise DatabaseUnavailable(f"{path}: directory {parent} does not exist")
        return
    if path.is_dir():
        raise DatabaseUnavailable(f"{path} is a directory, not a database file")
    # The header is not read here on purpose: opening and closing a descriptor on a database
    # drops every POSIX lock this process's SQLite connections hold on it. SQLite itself
    # reports a file that is not a database, and _friendly() turns that into one sentence.


def _friendly(exc: sqlite3.Error, path: Path) -> DatabaseUnavailable:
    text = str(exc)
    if "locked" in text or "busy" in text:
        return DatabaseUnavailable(
            f"{path} is locked by another process (waited {_busy_timeout_ms()} ms)"
        )
    if "not a database" in text:
        return DatabaseUnavailable(f"{path} is not a SQLite database")
    if "malformed" in text:
        return DatabaseUnavailable(f"{path} is damaged ({text})")
    return DatabaseUnavailable(f"{path}: {text}")


class Store:
    """A connection to the Tandem database, migrated to the current schema.

    :param path: the SQLite file; created when missing
    :param migrate: apply pending migrations (every command does; tests of old files may not)
    :param readonly: open without write access (reports, ``db status``)
    """

    def __init__(
        self, path: str | os.PathLike[str], *, migrate: bool = True, readonly: bool = False
    ) -> None:
        self.path = Path(path)
        _check_file(self.path)
        conn: sqlite3.Connection | None = None
        try:
            if readonly:
                uri = f"file:{self.path.resolve()}?mode=ro"
                conn = sqlite3.connect(uri, uri=True, isolation_level=None, check_same_thread=False)
            else:
                conn = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False)
            conn.row_factory = sqlite3.Row
            conn.execute(f"PRAGMA busy_timeout = {_busy_timeout_ms()}")
            if not readonly:
                mode = conn.execute("PRAGMA journal_mode = WAL").fetchone()[0]
                if mode.lower() != "wal":
                    raise DatabaseUnavailable(
                        f"{self.path}: cannot switch to WAL mode (got {mode})"
                    )
            conn.execute("PRAGMA synchronous = NORMAL")
            conn.execute("PRAGMA foreign_keys = ON")
            self.conn = conn
            self.db = sqlite_utils.Database(conn)
            if migrate and not readonly:
                from store.migrations import migrate as run_migrations

                run_migrations(self)
        except BaseException as exc:
            if conn is not None:
                conn.close()
            if isinstance(exc, sqlite3.Error):
                raise _friendly(exc, self.path) from None
            raise

    def close(self) -> None:
        """Close the connection; the object is unusable afterwards."""
        self.conn.close()

    def __enter__(self) -> Store:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @contextmanager
    def write(self) -> Iterator[sqlite3.Connection]:
        """One write transaction (``BEGIN IMMEDIATE``): commit on success, roll back on error.

        Nesting is not supported on purpose: every lifecycle call is exactly one transaction,
        so a check and the write it guards can never be split.
        """
        conn = self.conn
        try:
            conn.execute("BEGIN IMMEDIATE")
        except sqlite3.OperationalError as exc:
            raise _friendly(exc, self.path) from None
        try:
            yield conn
            conn.execute("COMMIT")
        except sqlite3.OperationalError as exc:
            # Locked, disk full, I/O error: nothing of this call is kept, and the caller gets
            # a sentence rather than a sqlite3 traceback.
            if conn.in_transaction:
                conn.execute("ROLLBACK")
            raise _friendly(exc, self.path) from None
        except BaseException:
            if conn.in_transaction:
                conn.execute("ROLLBACK")
            raise

    def query(self, sql: str, params: Params = ()) -> list[sqlite3.Row]:
        """Run a read query and return all rows."""
        rows: list[sqlite3.Row] = self.conn.execute(sql, params).fetchall()
        return rows

    def one(self, sql: str, params: Params = ()) -> sqlite3.Row | None:
        """Run a read query and return the first row or ``None``."""
        row: sqlite3.Row | None = self.conn.execute(sql, params).fetchone()
        return row


def open_store(path: str | os.PathLike[str] | None = None, **kwargs: object) -> Store:
    """Open (creating and migrating as needed) the store at ``path`` or the default path."""
    return Store(resolve_path(path), **kwargs)  # type: ignore[arg-type]


def now() -> float:
    """Wall-clock seconds since the epoch: the unit of every ``*_at`` column."""
    return time.time()
