"""Automatic assignment: who gets which waiting conversation (issue 16 point 5, issue 18 point 2).

:func:`plan` is the choice, a pure function over the queue and the agents who could take
work; :class:`Router` runs it in the hub through :func:`store.routing.route`, which reads and
writes in one transaction. The rules:

- the queue is served in its one order (:func:`console.policy.queue_order`);
- an agent is eligible while under their capacity and not on an abuse pause; an agent with
  language skills takes only conversations in those languages (or in none detected yet);
  a conversation nobody eligible speaks stays in the queue and the next ones are served;
- ``least_loaded``: the agent holding the fewest conversations; ``round_robin``: the agent
  whose last assignment is the oldest (never assigned first); ties by name;
- an abusive conversation goes to the eligible agent shown the fewest abusive messages today;
- after every ``abuse_pause_after`` abusive messages shown today an agent is paused for
  ``abuse_pause_minutes``: no new assignments (they may still take work themselves). The
  pause is recorded, and starts, at the first pass that has work to give after the
  threshold: a pause only ever stands between an agent and work.
"""

from __future__ import annotations

import logging
import math
import sqlite3
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from console.hub.shared import Shared
from console.policy import RoutingSettings, queue_order
from store import routing as store_routing
from store.errors import DatabaseUnavailable
from store.routing import Candidate, Plan
from store.views import start_of_day

log = logging.getLogger("tandem.hub")


@dataclass(slots=True)
class _Agent:
    name: str
    held: int
    capacity: int
    langs: frozenset[str]
    shown: int
    last_at: float
    seq: int
    paused: bool
    pauses: int

    def speaks(self, lang: str | None) -> bool:
        return not self.langs or not lang or lang in self.langs


def plan(
    settings: RoutingSettings,
    waiting: list[dict[str, Any]],
    candidates: list[Candidate],
    abusive: Callable[[int], int],
    *,
    now: float,
) -> Plan:
    """Assignments and pauses for ``waiting`` among ``candidates`` (see the module's rules).

    :param abusive: a conversation's abusive customer messages (asked only when it matters)
    """
    every = settings.abuse_pause_after
    pause_s = settings.abuse_pause_minutes * 60
    pauses: list[tuple[str, float]] = []
    agents: list[_Agent] = []
    for c in candidates:
        paused = c.paused_until is not None and c.paused_until > now
        new_pause = bool(every) and c.abusive_today >= (c.pauses_today + 1) * every
        if new_pause:
            until = max(now, c.paused_until or now) + pause_s
            pauses.append((c.name, until))
            paused = True
        agents.append(
            _Agent(
                name=c.name,
                held=c.held,
                capacity=settings.capacity_of(c.name),
                langs=frozenset(c.langs),
                shown=c.abusive_today,
                last_at=-math.inf if c.last_assigned_at is None else c.last_assigned_at,
                seq=0,
                paused=paused,
                pauses=c.pauses_today + new_pause,
            )
        )

    def free(a: _Agent) -> bool:
        # Shown enough abuse in this very pass to be due a pause: the next pass records it.
        due = every and a.shown >= (a.pauses + 1) * every
        return not a.paused and not due and a.held < a.capacity

    assignments: list[tuple[int, str]] = []
    seq = 0
    for row in queue_order(waiting):
        if not any(free(a) for a in agents):
            break
        fits = [a for a in agents if free(a) and a.speaks(row.get("lang"))]
        if not fits:
            continue
        n_abusive = abusive(int(row["id"]))
        if n_abusive:
            best = min(fits, key=lambda a: (a.shown, a.held, a.last_at, a.seq, a.name))
        elif settings.mode == "least_loaded":
            best = min(fits, key=lambda a: (a.held, a.last_at, a.seq, a.name))
        else:
            best = min(fits, key=lambda a: (a.last_at, a.seq, a.name))
        seq += 1
        best.held += 1
        best.shown += n_abusive
        best.last_at, best.seq = now, seq
        assignments.append((int(row["id"]), best.name))
    return Plan(assignments, pauses)


class Router:
    """The hub's part that assigns the queue when ``[routing]`` is on."""

    #: However quiet the store, a full pass at least this often: a pause ending or a console
    #: going stale changes who may take work without changing anything in the store.
    RECHECK_S = 5.0

    def __init__(self, shared: Shared) -> None:
        self.shared = shared
        self.last_run = -math.inf
        self.assigned = 0
        self.paused = 0
        self.skipped = 0
        # The stamp of the store when a full pass last found nothing to do, and when.
        self._idle: tuple[tuple[object, ...], float] | None = None

    @property
    def settings(self) -> RoutingSettings:
        return self.shared.settings.routing

    def due(self) -> bool:
        """Whether ``interval_s`` passed since the last run."""
        return self.shared.clock() - self.last_run >= self.settings.interval_s

    def run(self) -> Plan:
        """Assign what can be assigned now; return what was done.

        A locked database is the hub loop's to retry; any other failure is logged and counted,
        and the next run tries again: routing must never stop the bot answering customers.
        """
        settings = self.settings
        at = self.shared.clock()
        self.last_run = at
        try:
            store = self.shared.store
            fresh = at - settings.stale_after_s
            if not store_routing.has_room(store, settings.capacity_of, fresh):
                return Plan()  # the usual case: nobody waits, or everyone online is busy
            # A queue nobody online can take (their languages, their pauses) would be read and
            # planned again every interval for nothing: while the stamp stands, skip.
            before = store_routing.stamp(store)
            if (
                self._idle is not None
                and self._idle[0] == before
                and at - self._idle[1] < self.RECHECK_S
            ):
                self.skipped += 1
                return Plan()
            done = self._route(settings, at)
        except (DatabaseUnavailable, sqlite3.OperationalError):
            raise
        except Exception:
            self.shared.stats.errors += 1
            log.exception("hub: routing")
            return Plan()
        idle = not done.assignments and not done.pauses
        self._idle = (before, at) if idle else None
        self.assigned += len(done.assignments)
        self.paused += len(done.pauses)
        for agent, until in done.pauses:
            log.info("routing: %s paused until %.0f (abusive messages today)", agent, until)
        return done

    def _route(self, settings: RoutingSettings, at: float) -> Plan:
        return store_routing.route(
            self.shared.store,
            lambda waiting, candidates, abusive: plan(
                settings, waiting, candidates, abusive, now=at
            ),
            capacity_of=settings.capacity_of,
            fresh_since=at - settings.stale_after_s,
            day_start=start_of_day(at),
            at=at,
        )
