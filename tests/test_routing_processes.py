"""Automatic assignment under capacity with real processes on one real SQLite file.

Routers (the hub's assignment, twice: two servers sharing a store), agents pressing take-next
and agents finishing their conversations all run at once; afterwards the store alone says
whether anyone was ever over capacity or any conversation was given away twice.
"""

from __future__ import annotations

import json
import multiprocessing as mp
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

import routing_workers as workers

from console.hub.routing import plan
from console.policy import RoutingSettings
from store import Store, presence
from store import lifecycle as lc
from store import routing as sr
from store.check import check
from store.protection import abuse_shown
from store.views import start_of_day

CTX = mp.get_context("spawn")


def _waiting(store: Store, n: int, *, abusive: bool = False, offset: int = 0) -> list[int]:
    ids = []
    for i in range(n):
        cid = lc.open_conversation(store, f"customer {offset + i}")
        mid = lc.add_customer_message(
            store, cid, "you useless clowns" if abusive else "help"
        ).message_id
        mark = lc.TriageMark(
            "empathy", 0.7, ["abuse"] if abusive else ["human_request"], abusive=abusive
        )
        lc.record_triage(store, cid, mark, message_id=mid)
        lc.escalate(store, cid, reasons=["human_request"], level=("watch", "empathy")[i % 2])
        ids.append(cid)
    return ids


def _max_held(store: Store) -> dict[str, int]:
    """Replay the feed: the most conversations each agent ever held at once."""
    held: Counter[str] = Counter()
    peak: Counter[str] = Counter()
    owner: dict[int, str] = {}
    for e in store.query(
        "SELECT conversation_id, kind, data FROM events WHERE kind IN"
        " ('claimed', 'assigned', 'resolved', 'handed_back', 'transferred') ORDER BY id"
    ):
        cid, kind = e["conversation_id"], e["kind"]
        if cid in owner and kind != "claimed" and kind != "assigned":
            held[owner.pop(cid)] -= 1
        if kind in ("claimed", "assigned", "transferred"):
            agent = json.loads(e["data"])["owner"]
            owner[cid] = agent
            held[agent] += 1
            peak[agent] = max(peak[agent], held[agent])
    return dict(peak)


def test_routers_racing_take_next_never_exceed_capacity_nor_give_twice(
    store: Store, db_path: Path
) -> None:
    ids = _waiting(store, 60) + _waiting(store, 20, abusive=True, offset=60)
    knobs = {"mode": "least_loaded", "capacity": 2, "capacity_per_agent": {"a0": 3, "a3": 1}}
    settings = RoutingSettings(**knobs)  # type: ignore[arg-type]
    agents = [f"a{i}" for i in range(6)]
    for a in agents:
        presence.set_presence(store, a, "online")
    with CTX.Manager() as manager:
        start, stop = manager.Event(), manager.Event()
        with CTX.Pool(6) as pool:
            routers = [
                pool.apply_async(workers.router, (str(db_path), knobs, start, stop))
                for _ in range(2)
            ]
            # a0..a2 also press take-next; a3..a5 only receive work from the routers.
            pressing = [
                pool.apply_async(
                    workers.take_next,
                    (str(db_path), a, settings.capacity_of(a), start, stop, i),
                )
                for i, a in enumerate(agents[:3])
            ]
            finishing = pool.apply_async(workers.finisher, (str(db_path), start, stop, 7))
            start.set()
            deadline = time.monotonic() + 120
            while time.monotonic() < deadline:
                left = store.one("SELECT count(*) FROM conversations WHERE state != 'resolved'")
                if left is not None and left[0] == 0:
                    break
                time.sleep(0.1)
            stop.set()
            assigned = sum(r.get(timeout=60) for r in routers)
            took = [r.get(timeout=60) for r in pressing]
            resolved = finishing.get(timeout=60)
    # Everyone was served, by both paths, and nobody was lost on the way.
    states = {r[0] for r in store.query("SELECT state FROM conversations")}
    assert states == {"resolved"} and resolved == len(ids)
    got = sum(t["got"] for t in took)
    assert assigned > 0 and got > 0 and assigned + got == len(ids)
    assert any(t["full"] for t in took)  # take-next did meet the capacity
    # Never over capacity: the feed replayed says how many each held at every moment.
    peak = _max_held(store)
    assert all(peak[a] <= settings.capacity_of(a) for a in peak), peak
    assert peak.get("a0") == 3  # the override was used up to its end, not beyond
    # Never given twice: each conversation left the queue exactly once.
    gives = Counter(
        r[0]
        for r in store.query(
            "SELECT conversation_id FROM events WHERE kind IN ('claimed', 'assigned')"
        )
    )
    assert set(gives) == set(ids) and set(gives.values()) == {1}
    router_gives = store.one(
        "SELECT count(*) FROM events WHERE kind = 'assigned' AND actor = 'router'"
    )
    assert router_gives is not None and router_gives[0] == assigned
    assert check(store) == []


def _run_routers(db_path: Path, knobs: dict[str, Any], done: Callable[[], bool]) -> int:
    """Two routers on the file until ``done()`` (polled; a minute at most); their assignments."""
    with CTX.Manager() as manager:
        start, stop = manager.Event(), manager.Event()
        with CTX.Pool(2) as pool:
            routers = [
                pool.apply_async(workers.router, (str(db_path), knobs, start, stop))
                for _ in range(2)
            ]
            start.set()
            deadline = time.monotonic() + 60
            while not done() and time.monotonic() < deadline:
                time.sleep(0.05)
            stop.set()
            return sum(r.get(timeout=60) for r in routers)


def _count(store: Store, sql: str) -> int:
    row = store.one(sql)
    return int(row[0]) if row else 0


def test_two_routers_spread_abuse_and_pause_at_the_threshold(store: Store, db_path: Path) -> None:
    # ana holds nothing, the others two calm conversations each: least-loaded alone would
    # give ana three of the insults and dee one; the abuse rule gives everyone two.
    calm = _waiting(store, 6)
    for cid, agent in zip(calm, ["bo", "bo", "cy", "cy", "dee", "dee"], strict=True):
        lc.claim(store, cid, agent)
    abusive = _waiting(store, 8, abusive=True, offset=10)
    agents = ["ana", "bo", "cy", "dee"]
    for a in agents:
        presence.set_presence(store, a, "online")
    spread = {"mode": "least_loaded", "capacity": 10}
    waiting = "SELECT count(*) FROM conversations WHERE state = 'waiting'"
    assigned = _run_routers(db_path, spread, lambda: _count(store, waiting) == 0)
    assert assigned == len(abusive)
    assert abuse_shown(store, since=start_of_day(time.time())) == dict.fromkeys(agents, 2)

    # With a pause after two, the next work finds everyone due one: each is paused once,
    # though two routers race, and the newcomer waits.
    late = _waiting(store, 1, offset=99)[0]
    pausing = {**spread, "abuse_pause_after": 2}
    paused = "SELECT count(*) FROM events WHERE kind = 'paused'"
    assert _run_routers(db_path, pausing, lambda: _count(store, paused) >= 4) == 0
    pauses = store.query("SELECT actor, data FROM events WHERE kind = 'paused' ORDER BY id")
    assert sorted(p["actor"] for p in pauses) == agents
    assert all(json.loads(p["data"])["until"] > time.time() + 14 * 60 for p in pauses)
    settings = RoutingSettings(**pausing)  # type: ignore[arg-type]
    at = time.time()
    again = sr.route(
        store,
        lambda w, c, a: plan(settings, w, c, a, now=at),
        capacity_of=settings.capacity_of,
        fresh_since=at - settings.stale_after_s,
        day_start=start_of_day(at),
        at=at,
    )
    assert again.assignments == [] and again.pauses == []
    late_state = store.one("SELECT state FROM conversations WHERE id = ?", (late,))
    assert late_state is not None and late_state[0] == "waiting"
    assert check(store) == []
