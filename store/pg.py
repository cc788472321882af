"""The store on PostgreSQL (psycopg 3 and a connection pool), behind the same functions.

A :class:`PgStore` is what ``Store("postgresql://...")`` returns. Its ``conn`` speaks the
store's SQLite SQL (store/dialect.py rewrites each statement once) and answers like
``sqlite3``: rows index by position and by name, ``lastrowid`` is the new row's id, a unique
conflict raises ``sqlite3.IntegrityError``. So every store function runs unchanged.

Writers take transaction-scoped advisory locks, four of them:

- the write lock: an ordinary ``store.write()`` holds it exclusively, so it runs alone, as
  under SQLite's ``BEGIN IMMEDIATE`` (the lifecycle's moves are "read the state, check the
  move, write", and routing reads many conversations at once);
- a conversation's lock: ``store.write(conversation=cid)``, for a transaction that touches
  one conversation only (the hub's bot replies and escalations, a customer's message), holds
  the write lock *shared* and the conversation's lock exclusively. Such transactions on
  different conversations run side by side; one on the same conversation, or any ordinary
  write, waits. A transaction on a few conversations (the bot replies the hub posts
  together) holds each of their locks, taken in key order so that two never wait in a
  cycle. Why not per-row locks or SERIALIZABLE everywhere: every store function would
  need its reads reviewed and a retry loop on serialization failures; the scope is declared
  only where it was reviewed, and everything else keeps the simple exclusive rule.
- the bookkeeping lock: ``store.write(bookkeeping=True)``, for the hub workers' heartbeats,
  leases and cursors (store/leases.py), which read and write those tables only. They run one
  at a time among themselves, as before, but no longer under the write lock: a busy worker
  saves its cursors four times a second and renews its leases every fifth of their time,
  and an exclusive write lock taken that often made every customer message and bot reply
  wait, first for the transactions in flight to end and then for the bookkeeping's own
  round trips and commit (a convoy behind each one).
- the feed lock, taken by each ``INSERT INTO events`` itself just before the new id is drawn
  (store/dialect.py), and held to the commit: the feed's ids become visible in id order (a
  follower reads ``id > cursor`` and must never skip a row that commits later with a smaller
  id), while the rest of those transactions' work overlaps.

Readers never take any of them (PostgreSQL's MVCC).
"""

from __future__ import annotations

import os
import sqlite3
import threading
import time
import weakref
from collections.abc import Collection, Iterator, Sequence
from contextlib import contextmanager, suppress
from typing import Any, cast
from urllib.parse import urlsplit, urlunsplit

import psycopg
from psycopg import errors as pgerrors
from psycopg import pq
from psycopg.adapt import Loader
from psycopg.rows import RowMaker
from psycopg_pool import ConnectionPool, PoolTimeout

from store.db import Params, Store
from store.dialect import translate
from store.errors import DatabaseUnavailable, InvalidInput, ReadOnly

#: The advisory lock every write transaction holds, exclusively unless it is scoped to one
#: conversation (any constant; "Tandem" in ASCII).
WRITE_LOCK = 0x54616E64656D
#: The first key of a conversation's lock (the two-key form: a space apart from the others);
#: the second is the conversation id folded into 32 bits (two sharing one only wait longer).
CONVERSATION_LOCKS = 0x546E
#: The advisory lock of the hub workers' bookkeeping (``store.write(bookkeeping=True)``).
BOOKKEEPING_LOCK = 0x54616E64656C
#: The channel the feed's trigger notifies on each committed insert into ``events``.
FEED_CHANNEL = "tandem_feed"
#: A follower reads the feed at least this often even without a notification (one is lost
#: when the listening connection drops and comes back, for instance).
FEED_RESCAN_S = 1.0

_BEGIN_LOCKED = f"BEGIN; SELECT pg_advisory_xact_lock({WRITE_LOCK})"
_BEGIN_BOOKKEEPING = f"BEGIN; SELECT pg_advisory_xact_lock({BOOKKEEPING_LOCK})"
_BEGIN_SCOPED = (
    f"BEGIN; SELECT pg_advisory_xact_lock_shared({WRITE_LOCK}),"
    f" pg_advisory_xact_lock({CONVERSATION_LOCKS}, {{key}})"
)
_NOT_UNICODE = "text is not valid Unicode (it holds a lone surrogate)"


def _lock_key(conversation_id: int) -> int:
    """``conversation_id`` as the signed 32-bit second key of its advisory lock."""
    return (conversation_id + 2**31) % 2**32 - 2**31


def _begin_scoped_many(conversations: Collection[int]) -> str:
    """BEGIN and the locks of a transaction on several conversations: the write lock shared,
    then each conversation's lock in key order, one statement each (run in order), so two
    such transactions never wait for each other in a cycle."""
    keys = sorted({_lock_key(int(c)) for c in conversations})
    return f"BEGIN; SELECT pg_advisory_xact_lock_shared({WRITE_LOCK})" + "".join(
        f"; SELECT pg_advisory_xact_lock({CONVERSATION_LOCKS}, {key})" for key in keys
    )


def redacted(url: str) -> str:
    """``url`` without its password, for messages and ``tandem db status``."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    netloc = parts.netloc.rsplit("@", 1)
    user = netloc[0].split(":", 1)[0]
    return urlunsplit(parts._replace(netloc=f"{user}:***@{netloc[1]}"))


def _timeout_ms() -> int:
    try:
        return max(0, int(os.environ.get("TANDEM_BUSY_TIMEOUT_MS", 5000)))
    except ValueError:
        return 5000


class Row(tuple[Any, ...]):
    """A result row: by position like a tuple, by column name like ``sqlite3.Row``."""

    __slots__ = ()
    _index: dict[str, int] = {}

    def __getitem__(self, key: Any) -> Any:
        if isinstance(key, str):
            return tuple.__getitem__(self, self._index[key])
        return tuple.__getitem__(self, key)

    def keys(self) -> list[str]:
        """The column names, in order (``dict(row)`` uses it)."""
        return list(self._index)


_ROW_CLASSES: dict[tuple[str, ...], type[Row]] = {}
_ROW_LOCK = threading.Lock()


def _row_class(names: tuple[str, ...]) -> type[Row]:
    cls = _ROW_CLASSES.get(names)
    if cls is None:
        with _ROW_LOCK:
            index = {name: i for i, name in reversed(list(enumerate(names)))}
            cls = _ROW_CLASSES.setdefault(names, type("Row", (Row,), {"_index": index}))
    return cls


def _rows(cursor: psycopg.Cursor[Any]) -> RowMaker[Row]:
    # The names straight from the result: cursor.description builds a Column object per
    # column, a fifth of a short query's cost in the client.
    result = cursor.pgresult
    if result is None or not result.nfields:
        return Row
    return _row_class(tuple((result.fname(i) or b"").decode() for i in range(result.nfields)))


class _NumericLoader(Loader):
    """``sum()`` of integers is NUMERIC in PostgreSQL: an int (or float) as SQLite gives."""

    def load(self, data: Any) -> int | float:
        text = bytes(data).decode()
        try:
            return int(text)
        except ValueError:
            return float(text)


class _Result:
    """What ``execute`` returns: reads like a ``sqlite3.Cursor`` whose rows are all fetched
    (the connection's one cursor is reused by the next statement)."""

    __slots__ = ("_next", "_rows", "lastrowid", "rowcount")

    def __init__(self, rows: list[Row], rowcount: int, lastrowid: int | None = None) -> None:
        self._rows = rows
        self._next = 0
        self.rowcount = rowcount
        self.lastrowid = lastrowid

    def fetchone(self) -> Row | None:
        if self._next >= len(self._rows):
            return None
        self._next += 1
        return self._rows[self._next - 1]

    def fetchall(self) -> list[Row]:
        rest = self._rows[self._next :] if self._next else self._rows
        self._next = len(self._rows)
        return rest

    def __iter__(self) -> Iterator[Row]:
        return iter(self.fetchall())


_NO_ROWS: list[Row] = []


class Connection:
    """A psycopg connection that takes the store's SQLite statements (see the module doc)."""

    def __init__(self, raw: psycopg.Connection[Row], id_tables: frozenset[str]) -> None:
        self._raw = raw
        self._cursor: psycopg.Cursor[Row] | None = None
        self.id_tables = id_tables
        self.in_transaction = False
        # Statements sent with the COMMIT (store.db.at_commit): (translated SQL, rows).
        self._at_commit: list[tuple[str, Sequence[Params]]] = []

    @property
    def raw(self) -> psycopg.Connection[Row]:
        """The psycopg connection (replaced after a lost one, see ``PostgresStore._live``)."""
        return self._raw

    @raw.setter
    def raw(self, raw: psycopg.Connection[Row]) -> None:
        self._raw = raw
        self._cursor = None

    def execute(self, sql: str, params: Params = ()) -> Any:
        """Run one statement; the result reads like a ``sqlite3.Cursor``."""
        t = translate(sql, self.id_tables)
        cur = self._cursor
        if cur is None:
            # One cursor for every statement: making one per statement was a quarter of a
            # short statement's cost in the client, and each result is fetched at once.
            cur = self._cursor = self._raw.cursor()
        try:
            cur.execute(t.sql, params or None, prepare=None)
            if t.id_table is None:
                result = cur.pgresult
                if result is None or result.status != pq.ExecStatus.TUPLES_OK:
                    return _Result(_NO_ROWS, cur.rowcount)
                return _Result(cur.fetchall(), cur.rowcount)
            row = cur.fetchone()
        except psycopg.Error as exc:
            raise _mapped(exc) from None
        if row is None and t.conflict_is_error:
            raise sqlite3.IntegrityError(f"UNIQUE constraint failed: {t.id_table}")
        return _Result(_NO_ROWS, cur.rowcount, None if row is None else int(row[0]))

    def stream(self, sql: str, params: Params = ()) -> Iterator[Row]:
        """The rows of one query, made one by one (a scan too big for a list of rows)."""
        try:
            cur = self._raw.execute(translate(sql, self.id_tables).sql, params or None)
        except psycopg.Error as exc:
            raise _mapped(exc) from None
        return iter(cur)

    def at_commit(self, sql: str, rows: Sequence[Params]) -> None:
        """Run ``sql`` for each row just before the COMMIT, in its round trip (see
        :func:`store.db.at_commit`)."""
        if rows:
            self._at_commit.append((translate(sql, frozenset()).sql, rows))

    def commit(self) -> None:
        """COMMIT, after the statements kept for it: all in one round trip (a pipeline)."""
        later, self._at_commit = self._at_commit, []
        raw = self._raw
        try:
            if not later:
                raw.execute("COMMIT")
                return
            cur = raw.cursor()
            try:
                with raw.pipeline():
                    for sql, rows in later:
                        cur.executemany(sql, rows)
                    cur.execute("COMMIT")
            finally:
                cur.close()
        except psycopg.Error as exc:
            raise _mapped(exc) from None

    def discard(self) -> None:
        """Forget the statements kept for a COMMIT that will not come (a rollback)."""
        self._at_commit = []

    def executemany(self, sql: str, rows: Any) -> None:
        """Run one statement for each parameter row (one round trip per batch, pipelined)."""
        t = translate(sql, frozenset())
        try:
            with self._raw.cursor() as cur:
                cur.executemany(t.sql, rows)
        except psycopg.Error as exc:
            raise _mapped(exc) from None


def _mapped(exc: psycopg.Error) -> Exception:
    """The exception the store's callers expect for ``exc`` (they were written for sqlite3)."""
    if isinstance(exc, pgerrors.UniqueViolation):
        return sqlite3.IntegrityError(f"UNIQUE constraint failed: {exc.diag.message_primary}")
    if isinstance(exc, psycopg.IntegrityError):
        return sqlite3.IntegrityError(str(exc.diag.message_primary or exc))
    if isinstance(exc, pgerrors.LockNotAvailable | pgerrors.QueryCanceled):
        return DatabaseUnavailable(
            f"the database is locked by another writer (waited {_timeout_ms()} ms)"
        )
    if isinstance(exc, pgerrors.ReadOnlySqlTransaction | pgerrors.InsufficientPrivilege):
        return ReadOnly(f"the database refused a write: {exc.diag.message_primary or exc}")
    if isinstance(exc, pgerrors.CharacterNotInRepertoire | pgerrors.UntranslatableCharacter):
        return InvalidInput("text holds a character PostgreSQL cannot store (a NUL byte)")
    if isinstance(exc, psycopg.DataError) and "0x00" in str(exc):
        return InvalidInput("text holds a character PostgreSQL cannot store (a NUL byte)")
    if isinstance(exc, pgerrors.DeadlockDetected):
        return DatabaseUnavailable("two writers waited for each other; nothing was written")
    if isinstance(exc, psycopg.OperationalError):
        return DatabaseUnavailable(f"the database server is unreachable: {_first_line(exc)}")
    return exc


def _first_line(exc: BaseException) -> str:
    return (str(exc).strip().splitlines() or [type(exc).__name__])[0]


def _configure(raw: psycopg.Connection[Any]) -> None:
    raw.adapters.register_loader("numeric", _NumericLoader)
    raw.row_factory = _rows
    # A writer waits this long for the write lock (SQLite's busy_timeout); a statement never
    # hangs on a lock forever.
    raw.execute(f"SET lock_timeout = {_timeout_ms()}")


def _reset(raw: psycopg.Connection[Any]) -> None:
    raw.execute("UNLISTEN *")


_POOLS: dict[str, ConnectionPool[psycopg.Connection[Any]]] = {}
_POOLS_LOCK = threading.Lock()


def _pool(url: str) -> ConnectionPool[psycopg.Connection[Any]]:
    """One pool per server and process: stores opened and closed again reuse connections."""
    with _POOLS_LOCK:
        pool = _POOLS.get(url)
        if pool is None or pool.closed:
            pool = ConnectionPool(
                url,
                min_size=1,
                max_size=int(os.environ.get("TANDEM_PG_POOL", "32")),
                kwargs={"autocommit": True},
                configure=_configure,
                reset=_reset,
                timeout=float(os.environ.get("TANDEM_PG_CONNECT_TIMEOUT", "10")),
                open=False,
                name="tandem",
            )
            pool.open(wait=False)
            _POOLS[url] = pool
        return pool


def _id_tables(raw: psycopg.Connection[Any]) -> frozenset[str]:
    rows = raw.execute(
        "SELECT table_name FROM information_schema.columns"
        " WHERE table_schema = current_schema() AND column_name = 'id' AND is_identity = 'YES'"
    ).fetchall()
    return frozenset(str(r[0]) for r in rows)


class _Lease:
    """A store's connection from the pool, given back once (by close() or the finalizer)."""

    __slots__ = ("pool", "raw")

    def __init__(self, pool: ConnectionPool[Any], raw: psycopg.Connection[Any]) -> None:
        self.pool = pool
        self.raw: psycopg.Connection[Any] | None = raw

    def give_back(self) -> None:
        raw, self.raw = self.raw, None
        if raw is not None:
            with suppress(Exception):
                self.pool.putconn(raw)


class PostgresStore(Store):
    """:class:`store.db.Store` on a PostgreSQL server: ``Store("postgresql://...")`` is one.

    :param url: ``postgresql://user:password@host:port/dbname`` (libpq's URL and parameters)
    :param migrate: apply pending migrations
    :param readonly: never write (``db status`` and reports of a server the user may only read)
    """

    backend = "postgresql"

    def __init__(
        self, url: str | os.PathLike[str], *, migrate: bool = True, readonly: bool = False
    ) -> None:
        self.url = str(url)
        self.path = redacted(self.url)
        self.readonly = readonly
        self._listening = False
        self._rescan_at = 0.0
        self._pool = _pool(self.url)
        try:
            raw = self._pool.getconn()
        except PoolTimeout:
            raise DatabaseUnavailable(
                f"{self.path}: cannot connect to the database server"
                f" ({_pool_error(self._pool) or 'timed out'})"
            ) from None
        # A store dropped without close() gives its connection back when it is collected;
        # otherwise each one would hold a pool slot until the process ends.
        self._lease = _Lease(self._pool, raw)
        weakref.finalize(self, self._lease.give_back)
        try:
            from store.migrations_pg import migrate as run_migrations
            from store.migrations_pg import pending

            self.conn = cast(sqlite3.Connection, Connection(raw, frozenset()))
            if readonly:
                todo = pending(self)
                if todo:
                    raise DatabaseUnavailable(
                        f"{self.path} is older than this tandem (needs {', '.join(todo)}):"
                        " open it once with write access to migrate it"
                    )
            elif migrate:
                run_migrations(self)
            self.pg.id_tables = _id_tables(raw)
        except BaseException as exc:
            self._give_back()
            if isinstance(exc, psycopg.Error):
                raise _mapped(exc) from None
            raise

    def _give_back(self) -> None:
        self._lease.give_back()

    @property
    def pg(self) -> Connection:
        """The translating connection (for the store's PostgreSQL-only code)."""
        return cast(Connection, self.conn)

    def close(self) -> None:
        """Give the connection back to the pool; the object is unusable afterwards."""
        self._give_back()

    @contextmanager
    def write(
        self, conversation: int | Collection[int] | None = None, *, bookkeeping: bool = False
    ) -> Iterator[sqlite3.Connection]:
        """One write transaction under the write lock: commit on success, roll back on error.

        :param conversation: it touches this conversation (or these) only: the write lock
            is held shared and the conversations' exclusively (see the module doc)
        :param bookkeeping: it touches the hub workers' bookkeeping only: the bookkeeping
            lock instead of the write lock (see the module doc)
        """
        if self.readonly:
            raise ReadOnly(f"{self.path} was opened read-only")
        conn = self._live()
        raw = conn.raw
        if bookkeeping:
            begin = _BEGIN_BOOKKEEPING
        elif conversation is None:
            begin = _BEGIN_LOCKED
        elif isinstance(conversation, int):
            begin = _BEGIN_SCOPED.format(key=_lock_key(conversation))
        else:
            begin = _begin_scoped_many(conversation)
        try:
            # One round trip for BEGIN and the locks (no parameters: one simple query).
            conn.in_transaction = True
            raw.execute(begin)
        except psycopg.Error as exc:
            self._rollback()
            raise _mapped(exc) from None
        try:
            yield self.conn
            conn.commit()
            conn.in_transaction = False
        except BaseException as exc:
            self._rollback()
            if isinstance(exc, psycopg.Error):
                raise _mapped(exc) from None
            if isinstance(exc, UnicodeEncodeError):
                raise InvalidInput(_NOT_UNICODE) from None
            raise

    def _rollback(self) -> None:
        conn = self.pg
        conn.in_transaction = False
        conn.discard()
        with suppress(psycopg.Error):
            conn.raw.execute("ROLLBACK")

    def probe_write(self) -> None:
        """Commit a write transaction that changes nothing; raise if the server refuses it."""
        with self.write() as conn:
            conn.execute("SELECT 1")

    def mark_damaged(self, why: str) -> None:
        """Nothing to mark: the server keeps its own pages (``amcheck`` reports damage)."""

    def clear_damage_mark(self) -> bool:
        """No mark is ever written for a server (see :meth:`mark_damaged`)."""
        return False

    def _live(self) -> Connection:
        """The connection, replaced first if the last one was lost (a server restart, a killed
        backend, a network cut): the call that met the loss failed with DatabaseUnavailable,
        the next one works again once the server answers."""
        conn = self.pg
        if not conn.raw.closed or conn.in_transaction:
            return conn
        self._lease.give_back()  # the pool discards a closed connection
        try:
            raw = self._pool.getconn()
        except PoolTimeout:
            raise DatabaseUnavailable(
                f"{self.path}: the connection to the database server was lost and no new one"
                f" could be made ({_pool_error(self._pool) or 'timed out'})"
            ) from None
        self._lease.raw = conn.raw = raw
        self._listening = False  # LISTEN went with the old session; feed_changed() says True
        return conn

    def _execute(self, sql: str, params: Params) -> Any:
        try:
            return self._live().execute(sql, params)
        except UnicodeEncodeError:
            raise InvalidInput(_NOT_UNICODE) from None

    def query(self, sql: str, params: Params = ()) -> list[sqlite3.Row]:
        """Run a read query and return all rows."""
        return cast(list[sqlite3.Row], self._execute(sql, params).fetchall())

    def rows(self, sql: str, params: Params = ()) -> Iterator[sqlite3.Row]:
        """Run a read query and yield its rows one by one."""
        try:
            yield from cast(Iterator[sqlite3.Row], self._live().stream(sql, params))
        except UnicodeEncodeError:
            raise InvalidInput(_NOT_UNICODE) from None

    def one(self, sql: str, params: Params = ()) -> sqlite3.Row | None:
        """Run a read query and return the first row or ``None``."""
        return cast("sqlite3.Row | None", self._execute(sql, params).fetchone())

    def feed_changed(self, besides: Store | None = None, mask: int | None = None) -> bool:
        """Whether a new feed event may have committed since the last call.

        The first call starts listening and answers ``True``; so does a call at least
        :data:`FEED_RESCAN_S` after the last ``True`` (a lost notification costs at most that).

        :param besides: the notifications of commits through this store (its server
            process) are skipped: a hub needs no news of its own replies, and each of them
            made every worker read the feed again (every commit notifies every listener)
        :param mask: only commits with events in these shards are news (bit ``s`` for shard
            ``s`` of :data:`store.feed.NOTIFY_SHARDS`; the trigger's payload says which): a
            hub worker skips the other workers' commits and the messages to their shards
        """
        raw = self._live().raw
        nowm = time.monotonic()
        if not self._listening:
            raw.execute(f"LISTEN {FEED_CHANNEL}")
            self._listening = True
            self._rescan_at = nowm + FEED_RESCAN_S
            return True
        own = besides.backend_pid() if isinstance(besides, PostgresStore) else None
        got = False
        for n in raw.notifies(timeout=0):
            if n.pid != own and (mask is None or _in_shards(n.payload, mask)):
                got = True
        if got or nowm >= self._rescan_at:
            self._rescan_at = nowm + FEED_RESCAN_S
            return True
        return False

    def backend_pid(self) -> int | None:
        """The server process of this store's connection (``None`` while it has none)."""
        raw = self.pg.raw
        if raw.closed:
            return None
        return raw.info.backend_pid

    def wait_feed(self, timeout: float) -> None:
        """Block until a feed notification arrives or ``timeout`` seconds pass."""
        if not self._listening:
            return
        for _ in self.pg.raw.notifies(timeout=max(0.0, timeout), stop_after=1):
            self._rescan_at = 0.0  # the next feed_changed() answers True
            return


def _in_shards(payload: str, mask: int) -> bool:
    """Whether a feed notification's ``payload`` (its events' shards as a bit mask, see
    store/migrations_pg.py) touches ``mask``; a payload that says nothing (a statement whose
    events have no conversation, a trigger from before 0016) may touch any."""
    try:
        return bool(int(payload) & mask)
    except ValueError:
        return True


def _pool_error(pool: ConnectionPool[Any]) -> str:
    with suppress(Exception):
        stats = pool.get_stats()
        if stats.get("connections_errors"):
            return "connection refused or authentication failed"
    return ""


def close_pool(url: str) -> None:
    """Close this process's pool for ``url`` (its connections end; a later open makes a new one)."""
    with _POOLS_LOCK:
        pool = _POOLS.pop(url, None)
    if pool is not None:
        with suppress(Exception):
            pool.close(timeout=1)


def close_pools() -> None:
    """Close every pool of this process (a command that exits, a test that stops a server)."""
    with _POOLS_LOCK:
        for pool in _POOLS.values():
            with suppress(Exception):
                pool.close(timeout=1)
        _POOLS.clear()
