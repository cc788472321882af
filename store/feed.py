"""The change feed: read ``events`` after a cursor, and follow it from another process.

SQLite has one writer at a time and ``events.id`` is assigned inside the write transaction,
so commits become visible in id order: a reader that asks for ``id > last_seen`` never skips
an event that commits later with a smaller id.
"""

from __future__ import annotations

import json
import os
import time
from dataclasses import dataclass
from functools import lru_cache
from typing import Any, NamedTuple

from store.db import Store, now

#: The shards a feed notification on PostgreSQL names (its payload: a bit per shard of
#: ``conversation_id % NOTIFY_SHARDS``, store/migrations_pg.py). A follower of shards of
#: this many (``Follower.of``) wakes only for commits in its own.
NOTIFY_SHARDS = 64


@dataclass(frozen=True, slots=True)
class Event:
    """One row of the feed."""

    id: int
    at: float
    conversation_id: int | None
    kind: str
    actor: str | None
    from_state: str | None
    to_state: str | None
    message_id: int | None
    data: dict[str, Any] | None


_SELECT = (
    "SELECT id, at, conversation_id, kind, actor, from_state, to_state, message_id, data"
    " FROM events WHERE id > ? ORDER BY id LIMIT ?"
)


def _to_event(row: tuple[Any, ...]) -> Event:
    data = row[8]
    return Event(
        row[0],
        row[1],
        row[2],
        row[3],
        row[4],
        row[5],
        row[6],
        row[7],
        json.loads(data) if data else None,
    )


def read_events(store: Store, after: int = 0, limit: int = 1000) -> list[Event]:
    """Events with ``id > after``, oldest first.

    :param after: the last id already seen (0 for the start of the feed)
    :param limit: at most this many
    """
    return [_to_event(tuple(r)) for r in store.conn.execute(_SELECT, (after, limit))]


@lru_cache(maxsize=256)
def _shard_select(shards: frozenset[int], of: int) -> str:
    # The shard numbers are written into the statement (integers of ours, never input): one
    # statement per set of shards, which changes only when a worker's leases do.
    listed = ",".join(str(int(s)) for s in sorted(shards)) or "-1"
    # The first row (tagged 0) is the end of the feed, the others (tagged 1) the shards'
    # events up to it: one statement, so both are read from the same snapshot.
    return (
        "SELECT max(id), NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, 0 FROM events"
        " UNION ALL SELECT * FROM ("
        "SELECT id, at, conversation_id, kind, actor, from_state, to_state, message_id, data, 1"
        " FROM events WHERE id > ? AND id <= (SELECT max(id) FROM events)"
        f" AND conversation_id % {int(of)} IN ({listed})"
        " ORDER BY id LIMIT ?)"
    )


def read_shard_events(
    store: Store, shards: frozenset[int], of: int, *, after: int, limit: int
) -> tuple[list[Event], int]:
    """Events of the conversations in ``shards`` (``conversation_id % of``) after ``after``,
    and the newest event id of the whole feed (0 when empty), in one statement.

    For hub workers that share the conversations: each reads its own shards' events only,
    not every event of the feed (events without a conversation belong to no shard). Every
    event of the shards up to the end returned is among them (unless ``limit`` cut them
    short): commits are visible in id order, and both are read from one snapshot.
    """
    top = 0
    events: list[Event] = []
    for r in store.conn.execute(_shard_select(shards, of), (after, limit)):
        if r[9]:
            events.append(_to_event(tuple(r)))
        else:
            top = r[0] or 0
    events.sort(key=_event_id)  # a union's rows come in no promised order
    return events, top


def _event_id(event: Event) -> int:
    return event.id


def last_event_id(store: Store) -> int:
    """The newest event id, or 0 for an empty feed."""
    row = store.conn.execute("SELECT max(id) FROM events").fetchone()
    return row[0] or 0


def load_cursor(store: Store, name: str) -> int | None:
    """Where the reader ``name`` got to, or ``None`` if it never saved a cursor."""
    row = store.conn.execute("SELECT event_id FROM cursors WHERE name = ?", (name,)).fetchone()
    return None if row is None else row[0]


def save_cursor(store: Store, name: str, event_id: int) -> None:
    """Remember that reader ``name`` has handled every event up to ``event_id``."""
    with store.write(bookkeeping=True) as conn:
        conn.execute(
            "INSERT INTO cursors (name, event_id, updated_at) VALUES (?, ?, ?)"
            " ON CONFLICT(name) DO UPDATE SET event_id = excluded.event_id, updated_at = excluded.updated_at",
            (name, event_id, now()),
        )


class Follower:
    """Follows the feed of the database at ``path`` with its own connection.

    Create it anywhere, but call :meth:`poll` from one thread only: the connection is opened
    on the first poll, in the polling thread. A poll first asks whether anything committed
    (SQLite's ``data_version``, PostgreSQL's ``LISTEN``: no table read) and queries ``events``
    only then; either way it reads the feed by id, so a missed notification loses nothing.

    :param path: the database file
    :param after: start after this event id; ``None`` starts at the current end of the feed
    :param batch: the most events one poll returns
    :ivar shards: when set, only the events of these shards of the conversations (ids modulo
        ``of``); :attr:`cursor` then still says how far the whole feed was read
    """

    def __init__(
        self, path: str | os.PathLike[str], *, after: int | None = 0, batch: int = 2000
    ) -> None:
        self.path = path
        self.cursor = after
        self.batch = batch
        self.shards: frozenset[int] | None = None
        self.of = 1
        #: Commits through this store are no news to the reader (its own writes: a hub's
        #: replies); the feed is still read past them on the next poll for any other reason.
        self.own_writes: Store | None = None
        self._store: Store | None = None
        self._behind = True
        self._mask_of: frozenset[int] | None = None
        self._mask_bits = 0

    def _open(self) -> Store:
        if self._store is None:
            self._store = Store(self.path)
            if self.cursor is None:
                self.cursor = last_event_id(self._store)
        return self._store

    def poll(self) -> list[Event]:
        """Events committed since the last poll (at most ``batch``), oldest first."""
        store = self._open()
        if not store.feed_changed(self.own_writes, self._mask()) and not self._behind:
            return []
        if self.shards is not None:
            # With the end of the feed: every event of the shards up to it is read (commits
            # are visible in id order), so the cursor moves on even when none of them is ours.
            events, top = read_shard_events(
                store, self.shards, self.of, after=self.cursor or 0, limit=self.batch
            )
            self._behind = len(events) >= self.batch
            self.cursor = events[-1].id if self._behind else max(top, self.cursor or 0)
            return events
        events = read_events(store, self.cursor or 0, self.batch)
        self._behind = len(events) >= self.batch
        if events:
            self.cursor = events[-1].id
        return events

    def _mask(self) -> int | None:
        """The shards followed as a notification's bit mask (``None``: every commit is news)."""
        shards = self.shards
        if shards is None or self.of != NOTIFY_SHARDS:
            return None
        if self._mask_of is not shards:
            if self._mask_of is not None:
                # New shards: read once, for what was skipped while they were not followed.
                self._behind = True
            self._mask_of, self._mask_bits = shards, sum(1 << s for s in shards)
        return self._mask_bits

    def wait(self, timeout: float = 1.0, interval: float = 0.01) -> list[Event]:
        """Poll until something arrives or ``timeout`` seconds pass."""
        deadline = time.monotonic() + timeout
        while True:
            events = self.poll()
            left = deadline - time.monotonic()
            if events or left <= 0:
                return events
            self._open().wait_feed(min(interval, left))

    def close(self) -> None:
        """Close the follower's connection."""
        if self._store is not None:
            self._store.close()
            self._store = None


class EventMessage(NamedTuple):
    """A feed event with the message it announces (the message fields are ``None`` without one)."""

    conversation_id: int
    kind: str
    at: float
    message_id: int | None
    role: str | None
    reply_to: int | None
    created_at: float | None


def events_with_messages(
    store: Store, *, first: int, last: int, kinds: tuple[str, ...]
) -> list[EventMessage]:
    """Events of conversations ``first``..``last`` (inclusive) with their messages, in feed order.

    For reading back what happened to a known set of conversations (benchmarks, reports).

    :param first: the smallest conversation id
    :param last: the largest conversation id
    :param kinds: only events of these kinds (e.g. ``("message", "escalated")``)
    """
    if not kinds:
        return []
    marks = ",".join("?" * len(kinds))
    return [
        EventMessage(*r)
        for r in store.query(
            "SELECT e.conversation_id, e.kind, e.at, m.id, m.role, m.reply_to, m.created_at"
            " FROM events e LEFT JOIN messages m ON m.id = e.message_id"
            f" WHERE e.conversation_id BETWEEN ? AND ? AND e.kind IN ({marks}) ORDER BY e.id",
            (first, last, *kinds),
        )
    ]


def messages_of(store: Store, message_ids: list[int]) -> dict[int, dict[str, Any]]:
    """The messages that ``message`` events point to, by id (for a remote console's stream)."""
    out: dict[int, dict[str, Any]] = {}
    for start in range(0, len(message_ids), 500):
        chunk = message_ids[start : start + 500]
        marks = ",".join("?" * len(chunk))
        for r in store.query(
            "SELECT id, conversation_id, role, author, text, created_at, reply_to, level, score,"
            f" reasons, meta FROM messages WHERE id IN ({marks})",
            chunk,
        ):
            row = dict(r)
            row["reasons"] = json.loads(row["reasons"]) if row["reasons"] else []
            row["meta"] = json.loads(row["meta"]) if row["meta"] else {}
            out[row["id"]] = row
    return out


def conversation_events(store: Store, conversation_id: int, limit: int = 1000) -> list[Event]:
    """The newest ``limit`` events of one conversation, oldest first (who did what, when)."""
    rows = store.conn.execute(
        "SELECT id, at, conversation_id, kind, actor, from_state, to_state, message_id, data"
        " FROM events WHERE conversation_id = ? ORDER BY id DESC LIMIT ?",
        (conversation_id, limit),
    ).fetchall()
    return [_to_event(tuple(r)) for r in reversed(rows)]
