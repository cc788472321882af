"""Worker processes for the store's concurrency tests (imported by spawned children)."""

from __future__ import annotations

import random
import sys
import time
from multiprocessing.synchronize import Event as EventType
from typing import Any

from store import InvalidTransition, NotOwner, Store, Taken
from store import lifecycle as lc
from store.feed import Follower


def claim_all(path: str, agent: str, ids: list[int], start: EventType, seed: int) -> dict[str, Any]:
    store = Store(path)
    order = ids[:]
    random.Random(seed).shuffle(order)
    won: list[int] = []
    lost: dict[int, str] = {}
    start.wait()
    for cid in order:
        try:
            lc.claim(store, cid, agent)
            won.append(cid)
        except Taken as exc:
            lost[cid] = str(exc)
    return {"agent": agent, "won": won, "lost": lost}


def bot_loop(
    path: str, ids: list[int], start: EventType, stop: EventType, posting: EventType | None = None
) -> dict[str, int]:
    """Reply to ``ids`` over and over until ``stop``; ``posting`` is set at the first reply
    (the agents start then, so the race happens however late this process was scheduled)."""
    store = Store(path)
    posted = refused = 0
    start.wait()
    while not stop.is_set():
        for cid in ids:
            try:
                lc.bot_reply(store, cid, "Here is what I found.")
                posted += 1
                if posted == 1 and posting is not None:
                    posting.set()
            except NotOwner:
                refused += 1
    return {"posted": posted, "refused": refused}


def agent_claims(path: str, agent: str, ids: list[int], start: EventType, seed: int) -> int:
    store = Store(path)
    rng = random.Random(seed)
    order = ids[:]
    rng.shuffle(order)
    won = 0
    start.wait()
    for cid in order:
        time.sleep(rng.random() * 0.004)
        try:
            lc.claim(store, cid, agent)
            won += 1
        except InvalidTransition:
            pass
    return won


def post_with_keys(path: str, ids: list[int], start: EventType) -> dict[str, int]:
    store = Store(path)
    start.wait()
    seen: dict[str, int] = {}
    for cid in ids:
        for n in range(5):
            key = f"{cid}-{n}"
            seen[key] = lc.add_customer_message(
                store, cid, f"message {n}", idempotency_key=key
            ).message_id
    return seen


def writer(path: str, cid: int, count: int, start: EventType) -> int:
    store = Store(path)
    start.wait()
    for n in range(count):
        lc.add_customer_message(store, cid, f"line {n}")
    return count


def follow(path: str, expected: int, timeout: float) -> list[int]:
    follower = Follower(path, after=0, batch=137)  # odd batch size: exercise partial batches
    seen: list[int] = []
    deadline = time.monotonic() + timeout
    while len(seen) < expected and time.monotonic() < deadline:
        seen.extend(e.id for e in follower.wait(timeout=0.2))
    return seen


def stream_until_killed(path: str, cid: int) -> None:
    """Post messages forever, printing each id only after its call returned."""
    store = Store(path)
    n = 0
    while True:
        mid = lc.add_customer_message(store, cid, f"stream {n}", idempotency_key=f"s{n}").message_id
        sys.stdout.write(f"{mid}\n")
        sys.stdout.flush()
        n += 1


if __name__ == "__main__":
    stream_until_killed(sys.argv[1], int(sys.argv[2]))
