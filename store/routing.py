"""Automatic assignment and take-next, each one transaction (issue 16 point 5, issue 18 point 2).

:func:`route` reads the queue and the agents who could take work, hands them to a planner
(the policy's choice: ``console.hub.routing.plan``), and stores the planner's assignments and
abuse pauses, all under the write lock: two routers, or a router and an agent pressing
``n``, cannot both give away one conversation or both fill an agent's last free place.
:func:`claim_next` is take-next the same way: the agent's capacity checked, the first in the
queue order claimed, in one transaction.

Assignments are ``assigned`` moves with the actor :data:`ROUTER`; an abuse pause is a
``paused`` event (no conversation; the actor is the agent; ``data.until``), so the agent's
console hears of both in the feed, and a restarted router knows who was paused and who had
the last assignment.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from store.db import Store, now
from store.errors import InvalidTransition
from store.lifecycle import _ensure_agent, _event, _load, _name, _require
from store.moves import ASSIGN, CLAIM
from store.protection import _ABUSIVE, abuse_shown

ROUTER = "router"
"""The actor of automatic assignments in the feed."""
PAUSED = "paused"
"""The feed's kind for an abuse pause."""


class AtCapacity(InvalidTransition):
    """Take-next refused: the agent already holds as many conversations as their capacity."""


@dataclass(frozen=True, slots=True)
class Candidate:
    """An agent who could be given work now (online, console beating, enabled, an agent).

    :param held: conversations they hold now
    :param langs: languages they take (empty: any)
    :param abusive_today: abusive customer messages put in front of them since the day began
    :param last_assigned_at: their newest automatic assignment today (``None``: none yet)
    :param pauses_today: abuse pauses they were given today
    :param paused_until: the end of their newest pause today (``None``: none)
    """

    name: str
    held: int
    langs: tuple[str, ...] = ()
    abusive_today: int = 0
    last_assigned_at: float | None = None
    pauses_today: int = 0
    paused_until: float | None = None


@dataclass(frozen=True, slots=True)
class Plan:
    """What a planner decided: ``(conversation, agent)`` pairs, and ``(agent, until)`` pauses."""

    assignments: list[tuple[int, str]] = field(default_factory=list)
    pauses: list[tuple[str, float]] = field(default_factory=list)


Planner = Callable[[list[dict[str, Any]], list[Candidate], Callable[[int], int]], Plan]
"""``planner(waiting, candidates, abusive)``: ``waiting`` rows (``id``, ``state``, ``level``,
``waiting_since``, ``lang``), unordered; ``abusive(id)`` counts a conversation's abusive
customer messages (asked only for the conversations the planner considers)."""


def _waiting(conn: sqlite3.Connection) -> list[dict[str, Any]]:
    cur = conn.execute(
        "SELECT id, state, level, waiting_since, lang FROM conversations WHERE state = 'waiting'"
    )
    return [
        {"id": r[0], "state": r[1], "level": r[2], "waiting_since": r[3], "lang": r[4]} for r in cur
    ]


def _held(conn: sqlite3.Connection) -> dict[str, int]:
    cur = conn.execute(
        "SELECT owner, count(*) FROM conversations WHERE state = 'human' GROUP BY owner"
    )
    return {str(r[0]): int(r[1]) for r in cur}


def _online(conn: sqlite3.Connection, fresh_since: float) -> list[tuple[str, str | None]]:
    cur = conn.execute(
        "SELECT a.name, a.langs FROM agents a WHERE a.role = 'agent' AND a.presence = 'online'"
        " AND a.last_seen_at >= ? AND NOT EXISTS (SELECT 1 FROM accounts acc"
        " WHERE acc.name = a.name AND acc.disabled_at IS NOT NULL) ORDER BY a.name",
        (fresh_since,),
    )
    return [(str(r[0]), r[1]) for r in cur]


def _candidates(
    store: Store,
    conn: sqlite3.Connection,
    online: list[tuple[str, str | None]],
    held: Mapping[str, int],
    day_start: float,
) -> list[Candidate]:
    # `kind != 'message'` lets SQLite use the partial index events_kind_at (migration 0007).
    last = {
        str(r[0]): float(r[1])
        for r in conn.execute(
            "SELECT json_extract(data, '$.owner'), max(at) FROM events WHERE kind = 'assigned'"
            " AND kind != 'message' AND at >= ? AND actor = ? GROUP BY 1",
            (day_start, ROUTER),
        )
        if r[0] is not None
    }
    pauses = {
        str(r[0]): (int(r[1]), float(r[2]) if r[2] is not None else None)
        for r in conn.execute(
            "SELECT actor, count(*), max(json_extract(data, '$.until')) FROM events"
            " WHERE kind = ? AND kind != 'message' AND at >= ? GROUP BY actor",
            (PAUSED, day_start),
        )
    }
    shown = abuse_shown(store, since=day_start)
    out = []
    for name, langs in online:
        count, until = pauses.get(name, (0, None))
        out.append(
            Candidate(
                name=name,
                held=held.get(name, 0),
                langs=tuple(x for x in (langs or "").split(",") if x),
                abusive_today=shown.get(name, 0),
                last_assigned_at=last.get(name),
                pauses_today=count,
                paused_until=until,
            )
        )
    return out


def _abusive_counter(conn: sqlite3.Connection) -> Callable[[int], int]:
    def abusive(cid: int) -> int:
        row = conn.execute(
            f"SELECT count(*) FROM messages m WHERE m.conversation_id = ? AND {_ABUSIVE}", (cid,)
        ).fetchone()
        return int(row[0]) if row else 0

    return abusive


def route(
    store: Store,
    planner: Planner,
    *,
    capacity_of: Callable[[str], int],
    fresh_since: float,
    day_start: float,
    at: float | None = None,
) -> Plan:
    """Assign waiting conversations as ``planner`` decides, in one transaction; return what was done.

    Nothing is locked unless there is work: the queue and the agents with room are looked at
    first without the write lock, and read again under it before anything is decided.

    :param capacity_of: conversations an agent may hold; an assignment beyond it is refused
        here whatever the planner said (the whole plan is rolled back: a planner bug)
    :param fresh_since: an online agent's console must have beaten since then
    :param day_start: "today" for abuse counts, pauses and the round robin's memory
    """
    conn = store.conn
    if not _room(conn, capacity_of, fresh_since):
        return Plan()
    with store.write() as conn:
        at = now() if at is None else at
        waiting = _waiting(conn)
        online = _online(conn, fresh_since)
        if not waiting or not online:
            return Plan()
        held = _held(conn)
        if all(held.get(name, 0) >= capacity_of(name) for name, _ in online):
            return Plan()
        candidates = _candidates(store, conn, online, held, day_start)
        plan = planner(waiting, candidates, _abusive_counter(conn))
        names = {c.name for c in candidates}
        for agent, until in plan.pauses:
            if agent not in names:
                raise ValueError(f"the planner paused {agent}, who is not a candidate")
            _event(conn, at, None, PAUSED, agent, data={"until": until})
        load = dict(held)
        for cid, agent in plan.assignments:
            if agent not in names:
                raise ValueError(f"the planner chose {agent}, who is not a candidate")
            load[agent] = load.get(agent, 0) + 1
            if load[agent] > capacity_of(agent):
                raise ValueError(f"the planner put {agent} over capacity ({load[agent]})")
            state, owner = _load(conn, cid)
            _require(ASSIGN, cid, state, owner, "assign")
            _give(conn, cid, agent, at)
            _event(conn, at, cid, ASSIGN.kind, ROUTER, state, ASSIGN.target, data={"owner": agent})
    return plan


def stamp(store: Store) -> tuple[Any, ...]:
    """A cheap fingerprint of what assignment depends on: which conversations wait and which
    are held, and the agents online (when each said so, their languages). Equal stamps: a pass
    that found nothing to do would find nothing again, unless time alone changed something (a
    pause ending, a console going stale) or something the stamp leaves out (a transfer)."""
    # Index-only (conversations_queue): which conversations wait and which are held.
    live = store.query(
        "SELECT state, count(*), sum(id) FROM conversations"
        " WHERE state IN ('waiting', 'human') GROUP BY state ORDER BY state"
    )
    online = store.query(
        "SELECT name, langs, presence_at FROM agents WHERE presence = 'online' ORDER BY name"
    )
    return (tuple(tuple(r) for r in live), tuple(tuple(r) for r in online))


def has_room(store: Store, capacity_of: Callable[[str], int], fresh_since: float) -> bool:
    """Whether anyone waits and an agent online has room: the cheap first look of a pass."""
    return _room(store.conn, capacity_of, fresh_since)


def _room(conn: sqlite3.Connection, capacity_of: Callable[[str], int], fresh_since: float) -> bool:
    # Outside the transaction: most ticks find an empty queue or everybody busy.
    if (
        conn.execute("SELECT 1 FROM conversations WHERE state = 'waiting' LIMIT 1").fetchone()
        is None
    ):
        return False
    online = _online(conn, fresh_since)
    if not online:
        return False
    held = _held(conn)
    return any(held.get(name, 0) < capacity_of(name) for name, _ in online)


def _give(conn: sqlite3.Connection, cid: int, agent: str, at: float) -> None:
    # As lifecycle's claim does, without counting the assignment as the agent being seen.
    conn.execute(
        "UPDATE conversations SET state = ?, owner = ?, claimed_at = ?, updated_at = ?,"
        " first_human_reply_at = NULL, version = version + 1 WHERE id = ?",
        (ASSIGN.target, agent, at, at, cid),
    )


def held_by(store: Store, agent: str) -> int:
    """How many conversations ``agent`` holds now."""
    row = store.one(
        "SELECT count(*) FROM conversations WHERE state = 'human' AND owner = ?", (agent,)
    )
    return int(row[0]) if row else 0


def claim_next(
    store: Store,
    agent: str,
    order: Callable[[list[dict[str, Any]]], Sequence[int]],
    *,
    capacity: int | None = None,
    at: float | None = None,
) -> int | None:
    """Take-next: claim the first waiting conversation in ``order``; return its id, or ``None``.

    One transaction, so the first in line is free when claimed, and a router cannot fill the
    agent's last place between the capacity check and the claim.

    :param order: the queue order (``console.policy.queue_order``'s ids) over ``waiting`` rows
        (``id``, ``state``, ``level``, ``waiting_since``, ``lang``)
    :param capacity: with routing on, the agent's capacity (``None``: no limit)
    :raises AtCapacity: the agent already holds ``capacity`` conversations
    """
    agent = _name(agent)
    with store.write() as conn:
        at = now() if at is None else at
        if capacity is not None:
            held = int(
                conn.execute(
                    "SELECT count(*) FROM conversations WHERE state = 'human' AND owner = ?",
                    (agent,),
                ).fetchone()[0]
            )
            if held >= capacity:
                raise AtCapacity(
                    f"you hold {held} conversation{'s' if held != 1 else ''}, your capacity"
                    " while routing is on: close or hand one back first",
                    state="human",
                )
        ids = order(_waiting(conn))
        if not ids:
            return None
        cid = ids[0]
        state, owner = _load(conn, cid)
        _require(CLAIM, cid, state, owner, "claim")
        _ensure_agent(conn, agent, at)
        _give(conn, cid, agent, at)
        _event(conn, at, cid, CLAIM.kind, agent, state, CLAIM.target, data={"owner": agent})
    return cid


def pauses(store: Store, agent: str, *, since: float) -> list[dict[str, Any]]:
    """``agent``'s abuse pauses since ``since``: ``at`` and ``until``, oldest first."""
    rows = store.query(
        "SELECT at, data FROM events WHERE kind = ? AND kind != 'message' AND actor = ?"
        " AND at >= ? ORDER BY id",
        (PAUSED, agent, since),
    )
    return [{"at": r[0], "until": json.loads(r[1] or "{}").get("until")} for r in rows]
