"""Opening the SQLite file: pragmas, migrations, transactions.

One :class:`Store` per thread: a ``sqlite3`` connection belongs to the thread that opened it.
``Store("postgresql://...")`` opens the PostgreSQL store instead (store/pg.py), with the same
methods and the same guarantees.
Writers use ``BEGIN IMMEDIATE`` so two processes never both hold a read lock and then
deadlock on the upgrade to a write lock; ``busy_timeout`` makes the loser wait its turn.
"""

from __future__ import annotations

import os
import sqlite3
import time
from collections.abc import Collection, Iterator, Mapping, Sequence
from contextlib import contextmanager, suppress
from pathlib import Path
from typing import Any
from urllib.parse import quote

import sqlite_utils

from store.errors import Damaged, DatabaseUnavailable, InvalidInput, ReadOnly

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


def is_url(value: object) -> bool:
    """Whether a ``--db`` value names a PostgreSQL server rather than a SQLite file."""
    return isinstance(value, str) and value.startswith(("postgresql://", "postgres://"))


def location(value: str | os.PathLike[str]) -> Path | str:
    """A database as the store opens it: a PostgreSQL URL kept as given, a file as a Path."""
    return str(value) if is_url(value) else Path(value)


def resolve_path(cli_value: str | os.PathLike[str] | None = None) -> Path | str:
    """The database: ``--db``, else ``TANDEM_DB``, else ``./tandem.db``.

    A SQLite file is a :class:`Path`; a PostgreSQL server is its URL (``postgresql://...``),
    kept as a string (a ``Path`` would fold its ``//``).

    :param cli_value: the ``--db`` option as given, or ``None``
    """
    value = cli_value or os.environ.get("TANDEM_DB") or DEFAULT_PATH
    if is_url(value):
        return str(value)
    return Path(value)


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


# SQLite's primary result codes (the low byte of ``sqlite_errorcode``) that say the file
# itself cannot be used, as opposed to a bug in a statement.
_BUSY, _LOCKED, _READONLY, _IOERR, _CORRUPT, _FULL, _CANTOPEN, _NOTADB = 5, 6, 8, 10, 11, 13, 14, 26
_FILE_TROUBLE = frozenset({_BUSY, _LOCKED, _READONLY, _IOERR, _CORRUPT, _FULL, _CANTOPEN, _NOTADB})


def _code(exc: sqlite3.Error) -> int:
    return int(getattr(exc, "sqlite_errorcode", 0) or 0) & 0xFF


def _friendly(exc: sqlite3.Error, path: Path) -> DatabaseUnavailable:
    text, code = str(exc), _code(exc)
    if code in (_BUSY, _LOCKED) or "locked" in text or "busy" in text:
        return DatabaseUnavailable(
            f"{path} is locked by another process (waited {_busy_timeout_ms()} ms)"
        )
    if code == _NOTADB or "not a database" in text:
        return DatabaseUnavailable(f"{path} is not a SQLite database")
    if code == _CORRUPT or "malformed" in text:
        return Damaged(f"{path} is damaged ({text}); {_DAMAGED_ADVICE}")
    if code == _READONLY or code == _CANTOPEN:
        return ReadOnly(f"{path}: {text} (the file or its directory is not writable)")
    if code == _FULL:
        return DatabaseUnavailable(f"{path}: the disk is full")
    return DatabaseUnavailable(f"{path}: {text}")


_DAMAGED_ADVICE = (
    "restore a backup or recover it (sqlite3 FILE .recover), then `tandem db check` it"
)


_NOT_UNICODE = "text is not valid Unicode (it holds a lone surrogate)"


def damage_mark(path: Path) -> Path:
    """The side file that says ``path`` was found damaged (see :meth:`Store.mark_damaged`)."""
    return path.with_name(path.name + ".damaged")


def _readonly_uri(path: Path, *, immutable: bool) -> str:
    resolved = quote(str(path.resolve()), safe="/", errors="surrogateescape")
    return f"file:{resolved}?mode=ro" + ("&immutable=1" if immutable else "")


class Store:
    """A connection to the Tandem database, migrated to the current schema.

    :param path: the SQLite file; created when missing
    :param migrate: apply pending migrations (every command does; tests of old files may not)
    :param readonly: open without write access (reports, ``db status``); the file must exist
    """

    path: Path | str
    #: ``sqlite`` or ``postgresql``: for the few places whose SQL cannot be shared.
    backend = "sqlite"

    def __new__(cls, path: str | os.PathLike[str], **kwargs: Any) -> Store:
        # Store("postgresql://...") is the PostgreSQL store: every caller that opens a store
        # by its --db value gets the right backend without knowing there are two.
        if cls is Store and is_url(path):
            from store.pg import PostgresStore

            return super().__new__(PostgresStore)
        return super().__new__(cls)

    def __init__(
        self, path: str | os.PathLike[str], *, migrate: bool = True, readonly: bool = False
    ) -> None:
        self.file = Path(path)
        self.path = self.file
        self.readonly = readonly
        self._mark = damage_mark(self.file)
        self._mark_fs = os.fspath(self._mark)
        self._data_version: int | None = None
        _check_file(self.file)
        if readonly and not self.file.exists():
            raise DatabaseUnavailable(f"{self.file} does not exist")
        conn: sqlite3.Connection | None = None
        try:
            if readonly:
                conn = self._connect_readonly()
            else:
                conn = sqlite3.connect(self.file, isolation_level=None, check_same_thread=False)
            conn.row_factory = sqlite3.Row
            conn.execute(f"PRAGMA busy_timeout = {_busy_timeout_ms()}")
            if not readonly:
                mode = conn.execute("PRAGMA journal_mode = WAL").fetchone()[0]
                if mode.lower() != "wal":
                    raise DatabaseUnavailable(
                        f"{self.file}: cannot switch to WAL mode (got {mode})"
                    )
            conn.execute("PRAGMA synchronous = NORMAL")
            conn.execute("PRAGMA foreign_keys = ON")
            self.conn = conn
            self.db = sqlite_utils.Database(conn)
            from store.migrations import migrate as run_migrations
            from store.migrations import pending

            if readonly:
                todo = pending(self)
                if todo:
                    raise DatabaseUnavailable(
                        f"{self.file} is read-only and older than this tandem (needs"
                        f" {', '.join(todo)}): open it once with write access to migrate it"
                    )
            elif migrate:
                run_migrations(self)
        except BaseException as exc:
            if conn is not None:
                conn.close()
            if isinstance(exc, sqlite3.Error):
                raise _friendly(exc, self.file) from None
            raise

    def _connect_readonly(self) -> sqlite3.Connection:
        uri = _readonly_uri(self.file, immutable=False)
        conn = sqlite3.connect(uri, uri=True, isolation_level=None, check_same_thread=False)
        try:
            conn.execute("SELECT count(*) FROM sqlite_master").fetchone()
            return conn
        except sqlite3.Error as exc:
            conn.close()
            if _code(exc) not in (_READONLY, _CANTOPEN):
                raise
        # A WAL file in a directory we cannot write: SQLite needs to create the -shm index
        # even to read, unless told that nobody writes the file. In such a directory nobody
        # can (a writer needs the same -shm), so "immutable" is the truth, not a shortcut.
        uri = _readonly_uri(self.file, immutable=True)
        return sqlite3.connect(uri, uri=True, isolation_level=None, check_same_thread=False)

    def close(self) -> None:
        """Close the connection; the object is unusable afterwards."""
        self.conn.close()

    def __enter__(self) -> Store:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @contextmanager
    def write(
        self, conversation: int | Collection[int] | None = None, *, bookkeeping: bool = False
    ) -> Iterator[sqlite3.Connection]:
        """One write transaction (``BEGIN IMMEDIATE``): commit on success, roll back on error.

        Nesting is not supported on purpose: every lifecycle call is exactly one transaction,
        so a check and the write it guards can never be split.

        :param conversation: the transaction reads and writes the state of this conversation
            (or of these conversations) only (its row, its messages, new events; shared rows
            only by upserts and increments). SQLite has one writer anyway and ignores it;
            PostgreSQL lets such transactions on different conversations run side by side
            (store/pg.py).
        :param bookkeeping: the transaction reads and writes the hub workers' bookkeeping only
            (``hub_workers``, ``hub_leases``, ``cursors``): SQLite ignores it; on PostgreSQL
            such transactions run one at a time among themselves, beside the conversations'
            writers (store/pg.py)

        :raises Damaged: the file was found damaged (by this process, another, or
            ``tandem db check``): nothing more is written to it until it is repaired
        :raises DatabaseUnavailable: locked, read-only, disk full, I/O error
        :raises InvalidInput: a text value that is not valid Unicode reached SQLite
        """
        # os.access, not Path.exists: it answers without raising FileNotFoundError inside,
        # half the cost of the check every write pays (measured ~1.7 against ~3.3 us).
        if os.access(self._mark_fs, os.F_OK):
            raise Damaged(
                f"{self.file} was found damaged ({_read_mark(self._mark)}); {_DAMAGED_ADVICE}"
            )
        conn = self.conn
        try:
            conn.execute("BEGIN IMMEDIATE")
        except sqlite3.DatabaseError as exc:
            raise self._trouble(exc) from None
        try:
            yield conn
            conn.execute("COMMIT")
        except BaseException as exc:
            if conn.in_transaction:
                with suppress(sqlite3.Error):
                    conn.execute("ROLLBACK")
            if isinstance(exc, sqlite3.DatabaseError) and _code(exc) in _FILE_TROUBLE:
                # Locked, disk full, I/O error, damaged: nothing of this call is kept, and the
                # caller gets a sentence rather than a sqlite3 traceback.
                raise self._trouble(exc) from None
            if isinstance(exc, UnicodeEncodeError):
                raise InvalidInput(_NOT_UNICODE) from None
            raise

    def probe_write(self) -> None:
        """Commit a write that changes nothing readable; raise if the store cannot write now.

        For health checks: a read-only file, a full disk, a damaged or locked file all fail
        here as they would for a customer's message. It rewrites ``PRAGMA user_version`` with
        its own value, which SQLite still writes out (one page in the WAL).
        """
        with self.write() as conn:
            version = int(conn.execute("PRAGMA user_version").fetchone()[0])
            conn.execute(f"PRAGMA user_version = {version}")

    def mark_damaged(self, why: str) -> None:
        """Record beside the file that it is damaged, so every writer refuses it from now on.

        A damaged page is only met by whoever reads it; without the mark, a writer that
        happens not to touch it would go on adding to a file that is already lost.
        """
        with suppress(OSError):  # a read-only directory: the report still says it
            self._mark.write_text(f"{why.strip()[:300]}\n", encoding="utf-8")

    def clear_damage_mark(self) -> bool:
        """Remove the mark (``tandem db check`` found the file sound); whether there was one."""
        try:
            self._mark.unlink()
        except FileNotFoundError:
            return False
        except OSError:
            return True
        return True

    def _trouble(self, exc: sqlite3.DatabaseError) -> DatabaseUnavailable:
        error = _friendly(exc, self.file)
        if isinstance(error, Damaged) and not self.readonly:
            self.mark_damaged(str(exc))
        return error

    def query(self, sql: str, params: Params = ()) -> list[sqlite3.Row]:
        """Run a read query and return all rows."""
        try:
            rows: list[sqlite3.Row] = self.conn.execute(sql, params).fetchall()
        except sqlite3.DatabaseError as exc:
            if _code(exc) not in _FILE_TROUBLE:
                raise
            raise self._trouble(exc) from None
        except UnicodeEncodeError:
            raise InvalidInput(_NOT_UNICODE) from None
        return rows

    def rows(self, sql: str, params: Params = ()) -> Iterator[sqlite3.Row]:
        """Run a read query and yield its rows one by one (for scans too big for a list)."""
        try:
            yield from self.conn.execute(sql, params)
        except sqlite3.DatabaseError as exc:
            if _code(exc) not in _FILE_TROUBLE:
                raise
            raise self._trouble(exc) from None
        except UnicodeEncodeError:
            raise InvalidInput(_NOT_UNICODE) from None

    def one(self, sql: str, params: Params = ()) -> sqlite3.Row | None:
        """Run a read query and return the first row or ``None``."""
        try:
            row: sqlite3.Row | None = self.conn.execute(sql, params).fetchone()
        except sqlite3.DatabaseError as exc:
            if _code(exc) not in _FILE_TROUBLE:
                raise
            raise self._trouble(exc) from None
        except UnicodeEncodeError:
            raise InvalidInput(_NOT_UNICODE) from None
        return row

    def feed_changed(self, besides: Store | None = None, mask: int | None = None) -> bool:
        """Whether another connection may have committed since the last call (no table read).

        SQLite's ``data_version`` changes on every commit by another connection; the
        PostgreSQL store answers from ``LISTEN`` notifications instead.

        :param besides: commits through this store are no news (PostgreSQL only: SQLite
            cannot tell whose commit it was)
        :param mask: only commits with events in these shards are news (PostgreSQL only,
            see :meth:`store.pg.PostgresStore.feed_changed`)
        """
        version = int(self.conn.execute("PRAGMA data_version").fetchone()[0])
        changed = version != self._data_version
        self._data_version = version
        return changed

    def wait_feed(self, timeout: float) -> None:
        """Wait up to ``timeout`` seconds for a commit elsewhere (SQLite: a short sleep)."""
        time.sleep(timeout)


def _read_mark(mark: Path) -> str:
    try:
        return mark.read_text(encoding="utf-8", errors="replace").strip()[:300] or "no detail"
    except OSError:
        return "no detail"


def open_store(path: str | os.PathLike[str] | None = None, **kwargs: object) -> Store:
    """Open (creating and migrating as needed) the store at ``path`` or the default path."""
    return Store(resolve_path(path), **kwargs)  # type: ignore[arg-type]


def open_reader(path: str | os.PathLike[str] | None = None) -> Store:
    """Open the store for a command that only reads (``db status``, ``conv show``...).

    Like :func:`open_store` (a missing file is created, an old one migrated), except that a
    file the user may read but not write (``chmod 444``, a read-only directory or mount, a
    backup) is opened read-only instead of refused.
    """
    resolved = resolve_path(path)
    if isinstance(resolved, str):
        return Store(resolved)
    if resolved.is_file() and not _writable(resolved):
        return Store(resolved, readonly=True)
    try:
        return Store(resolved)
    except ReadOnly:
        return Store(resolved, readonly=True)


def _writable(path: Path) -> bool:
    parent = path.parent if str(path.parent) else Path(".")
    return os.access(path, os.W_OK) and os.access(parent, os.W_OK)


def at_commit(conn: sqlite3.Connection, sql: str, rows: Sequence[Params]) -> None:
    """Run ``sql`` once per parameter row as the last statements of the write transaction
    ``conn`` belongs to (nothing after them reads what they write).

    SQLite runs them now. On PostgreSQL they go to the server with the COMMIT, in one round
    trip: the feed's events are inserted this way, because an event's insert takes the feed
    lock that every writer's event waits for and holds it to the commit, so a round trip
    between them is time every other writer waits (store/pg.py).
    """
    later = getattr(conn, "at_commit", None)
    if later is not None:
        later(sql, rows)
    elif len(rows) == 1:
        conn.execute(sql, rows[0])
    elif rows:
        conn.executemany(sql, rows)


def now() -> float:
    """Wall-clock seconds since the epoch: the unit of every ``*_at`` column."""
    return time.time()
