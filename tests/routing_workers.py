"""Worker processes for the routing tests (imported by spawned children)."""

from __future__ import annotations

import random
import time
from multiprocessing.synchronize import Event as EventType
from typing import Any

from console.hub.routing import plan
from console.policy import RoutingSettings, queue_order
from store import Store, StoreError
from store import lifecycle as lc
from store import routing as sr
from store.views import start_of_day


def router(path: str, knobs: dict[str, Any], start: EventType, stop: EventType) -> int:
    """Assign as the hub's Router does, as fast as it can, until told to stop.

    :param knobs: :class:`RoutingSettings` fields (the settings themselves hold a mapping
        proxy, which does not pickle)
    """
    settings = RoutingSettings(**knobs)
    store = Store(path)
    assigned = 0
    start.wait()
    while not stop.is_set():
        at = time.time()
        done = sr.route(
            store,
            lambda w, c, a, at=at: plan(settings, w, c, a, now=at),
            capacity_of=settings.capacity_of,
            fresh_since=at - settings.stale_after_s,
            day_start=start_of_day(at),
            at=at,
        )
        assigned += len(done.assignments)
        if not done.assignments:
            time.sleep(0.002)
    store.close()
    return assigned


def _order(rows: list[dict[str, Any]]) -> list[int]:
    return [r["id"] for r in queue_order(rows)]


def take_next(
    path: str, agent: str, capacity: int, start: EventType, stop: EventType, seed: int
) -> dict[str, int]:
    """An agent pressing `n` over and over, as the console does with routing on."""
    store = Store(path)
    rng = random.Random(seed)
    got = full = 0
    start.wait()
    while not stop.is_set():
        try:
            if sr.claim_next(store, agent, _order, capacity=capacity) is not None:
                got += 1
        except sr.AtCapacity:
            full += 1
        time.sleep(rng.random() * 0.004)
    store.close()
    return {"got": got, "full": full}


def finisher(path: str, start: EventType, stop: EventType, seed: int) -> int:
    """Agents finishing their conversations: one held conversation resolved by its owner at a time."""
    store = Store(path)
    rng = random.Random(seed)
    done = 0
    start.wait()
    while not stop.is_set():
        held = store.query("SELECT id, owner FROM conversations WHERE state = 'human'")
        if not held:
            time.sleep(0.002)
            continue
        row = rng.choice(held)
        try:
            lc.resolve(store, row["id"], by=row["owner"])
            done += 1
        except StoreError:
            pass  # resolved a moment ago by nobody else; the next round picks again
        time.sleep(rng.random() * 0.003)
    store.close()
    return done
