"""Hub workers and their leases on shards of the conversations (``hub_workers``, ``hub_leases``).

Several hub workers (processes, on one host or several) share one database. Each one renews a
heartbeat row and holds leases on some shards; a lease not renewed before ``expires_at`` may be
taken by another worker, so a worker that dies hands its shards on after at most one lease
time. Each shard's place in the feed is a row of ``cursors`` named ``<prefix>/<shard>``, and a
worker writes it only in the transaction that checks it still holds the shard: a worker that
lost a lease (it stalled past the expiry) cannot move the new holder's cursor.

The SQL is plain (``INSERT ... ON CONFLICT ... DO UPDATE ... WHERE``, no engine-specific
locking), the same on SQLite and PostgreSQL. Every transaction here is bookkeeping
(``store.write(bookkeeping=True)``): they run one at a time among themselves, and on
PostgreSQL beside the conversations' writers, whom they never touch.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterable, Mapping
from typing import NamedTuple

from store.db import Store

STALE_AFTER_TTLS = 10  # heartbeat rows older than this many lease times are deleted


class Beat(NamedTuple):
    """What one heartbeat learned."""

    workers: list[str]  # workers seen within one lease time, by name (this one included)
    owned: set[int]  # shards this worker holds now (its leases renewed)
    free: set[int]  # shards nobody holds: never taken, released, or expired


class Lease(NamedTuple):
    """One row of ``hub_leases``."""

    shard: int
    owner: str | None
    expires_at: float


def cursor_name(prefix: str, shard: int) -> str:
    """The ``cursors`` row of one shard of the reader ``prefix`` (e.g. ``hub/7``)."""
    return f"{prefix}/{shard}"


def heartbeat(store: Store, worker: str, *, shards: int, at: float, ttl: float) -> Beat:
    """Say ``worker`` is alive, renew its leases until ``at + ttl``; see who else is.

    :param shards: the number of shards (0 .. shards-1)
    :param at: now (seconds since the epoch, the same clock for every worker)
    :param ttl: how long a lease and a heartbeat last without renewal
    """
    with store.write(bookkeeping=True) as conn:
        conn.execute(
            "INSERT INTO hub_workers (name, started_at, seen_at) VALUES (?, ?, ?)"
            " ON CONFLICT(name) DO UPDATE SET seen_at = excluded.seen_at",
            (worker, at, at),
        )
        conn.execute("DELETE FROM hub_workers WHERE seen_at < ?", (at - STALE_AFTER_TTLS * ttl,))
        conn.execute("UPDATE hub_leases SET expires_at = ? WHERE owner = ?", (at + ttl, worker))
        workers = [
            r[0]
            for r in conn.execute(
                "SELECT name FROM hub_workers WHERE seen_at >= ? ORDER BY name", (at - ttl,)
            )
        ]
        owned: set[int] = set()
        held: set[int] = set()
        for shard, owner, expires_at in conn.execute(
            "SELECT shard, owner, expires_at FROM hub_leases"
        ):
            if owner == worker:
                owned.add(shard)
            elif owner is not None and expires_at >= at:
                held.add(shard)
    free = set(range(shards)) - owned - held
    return Beat(workers, owned, free)


def renew(store: Store, worker: str, *, at: float, ttl: float) -> None:
    """Extend ``worker``'s heartbeat and every lease it holds until ``at + ttl`` (nothing else)."""
    with store.write(bookkeeping=True) as conn:
        conn.execute("UPDATE hub_workers SET seen_at = ? WHERE name = ?", (at, worker))
        conn.execute("UPDATE hub_leases SET expires_at = ? WHERE owner = ?", (at + ttl, worker))


def acquire(store: Store, worker: str, shards: Iterable[int], *, at: float, ttl: float) -> set[int]:
    """Take the leases of ``shards`` that are free (or already ``worker``'s); return those taken.

    A shard another worker holds with an unexpired lease is left alone; when two workers reach
    for the same free shard at once, one write wins and the other sees it taken.
    """
    wanted = sorted(set(shards))
    if not wanted:
        return set()
    with store.write(bookkeeping=True) as conn:
        for shard in wanted:
            conn.execute(
                "INSERT INTO hub_leases (shard, owner, expires_at, taken_at) VALUES (?, ?, ?, ?)"
                " ON CONFLICT(shard) DO UPDATE SET owner = excluded.owner,"
                " expires_at = excluded.expires_at, taken_at = excluded.taken_at"
                " WHERE hub_leases.owner IS NULL OR hub_leases.expires_at < ?"
                " OR hub_leases.owner = excluded.owner",
                (shard, worker, at + ttl, at, at),
            )
        mine = {
            r[0] for r in conn.execute("SELECT shard FROM hub_leases WHERE owner = ?", (worker,))
        }
    return mine & set(wanted)


def shard_cursors(store: Store, prefix: str, shards: Iterable[int]) -> dict[int, int]:
    """Where each shard's reader got to: its own cursor, else ``prefix``'s (one hub before
    shards existed), else 0."""
    rows = {
        name: event_id
        for name, event_id in store.query(
            "SELECT name, event_id FROM cursors WHERE name = ? OR name LIKE ?",
            (prefix, f"{prefix}/%"),
        )
    }
    base = rows.get(prefix, 0)
    return {s: rows.get(cursor_name(prefix, s), base) for s in shards}


def _save(
    conn: sqlite3.Connection, worker: str, prefix: str, positions: Mapping[int, int], at: float
) -> set[int]:
    mine = {r[0] for r in conn.execute("SELECT shard FROM hub_leases WHERE owner = ?", (worker,))}
    rows = [(cursor_name(prefix, s), e, at) for s, e in positions.items() if s in mine]
    if rows:
        # One batch (PostgreSQL: one pipelined round trip), not one statement per shard: a
        # worker saves up to 64 cursors four times a second, under the exclusive write lock.
        conn.executemany(
            "INSERT INTO cursors (name, event_id, updated_at) VALUES (?, ?, ?)"
            " ON CONFLICT(name) DO UPDATE SET event_id = excluded.event_id,"
            " updated_at = excluded.updated_at",
            rows,
        )
    return mine


def save_cursors(
    store: Store, worker: str, prefix: str, positions: Mapping[int, int], *, at: float
) -> set[int]:
    """Save each shard's cursor, for the shards ``worker`` still holds; return those it holds.

    :param positions: shard -> the last event id handled for it
    """
    with store.write(bookkeeping=True) as conn:
        return _save(conn, worker, prefix, positions, at)


def release(
    store: Store,
    worker: str,
    prefix: str,
    positions: Mapping[int, int],
    *,
    at: float,
    leaving: bool = False,
) -> None:
    """Save the cursors of ``positions``' shards and give their leases up, in one transaction.

    :param leaving: the worker stops: also forget its heartbeat, so the others count it out now
    """
    with store.write(bookkeeping=True) as conn:
        mine = _save(conn, worker, prefix, positions, at)
        for shard in positions:
            if shard in mine:
                conn.execute(
                    "UPDATE hub_leases SET owner = NULL, expires_at = 0 WHERE shard = ? AND owner = ?",
                    (shard, worker),
                )
        if leaving:
            conn.execute("DELETE FROM hub_workers WHERE name = ?", (worker,))


def reset_cursors(store: Store, prefix: str, event_id: int) -> None:
    """Move ``prefix`` and every shard's cursor to ``event_id`` (benchmarks start at the end)."""
    with store.write(bookkeeping=True) as conn:
        conn.execute(
            "INSERT INTO cursors (name, event_id, updated_at) VALUES (?, ?, 0)"
            " ON CONFLICT(name) DO UPDATE SET event_id = excluded.event_id",
            (prefix, event_id),
        )
        conn.execute("UPDATE cursors SET event_id = ? WHERE name LIKE ?", (event_id, f"{prefix}/%"))


def leases(store: Store) -> list[Lease]:
    """Every lease row, by shard (``tandem db status``, tests)."""
    return [
        Lease(*r)
        for r in store.query("SELECT shard, owner, expires_at FROM hub_leases ORDER BY shard")
    ]


def held(store: Store, *, at: float) -> dict[str, int]:
    """Shards per worker holding unexpired leases at ``at`` (``tandem db status``)."""
    return {
        owner: count
        for owner, count in store.query(
            "SELECT owner, count(*) FROM hub_leases WHERE owner IS NOT NULL AND expires_at >= ?"
            " GROUP BY owner ORDER BY owner",
            (at,),
        )
    }


def workers(store: Store, *, at: float, ttl: float) -> list[str]:
    """Workers seen within ``ttl`` seconds of ``at``, by name."""
    return [
        r[0]
        for r in store.query(
            "SELECT name FROM hub_workers WHERE seen_at >= ? ORDER BY name", (at - ttl,)
        )
    ]
