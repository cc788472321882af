"""What every part of the hub works with: one store connection, the engine, the policy, a clock."""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, Protocol

from console.hub.stats import HubStats
from console.policy import PolicySettings
from store import Store
from store.db import location


class TriageEngineLike(Protocol):
    """What the hub needs from :class:`console.triage.TriageEngine`."""

    def new_state(self) -> Any: ...
    def observe(
        self,
        state: Any,
        role: str,
        text: Any,
        *,
        fallback: bool | None = None,
        at: float | None = None,
    ) -> Any: ...
    def waited(self, state: Any, seconds: float) -> Any: ...
    def dump_state(self, state: Any) -> str: ...
    def load_state(self, data: str) -> Any: ...


def _every(_conversation_id: int) -> bool:
    return True


def _always() -> bool:
    return True


class Shared:
    """The hub's connection and settings, handed to each of its parts.

    :param path: the SQLite file
    :param engine: the triage engine
    :param settings: the escalation policy and timers
    :param clock: wall clock (seconds); tests may pass a fake one for timers
    """

    def __init__(
        self,
        path: str | Path,
        *,
        engine: TriageEngineLike,
        settings: PolicySettings,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.path = location(path)  # a PostgreSQL URL stays a string
        self.engine = engine
        self.settings = settings
        self.clock = clock
        self.stats = HubStats()
        # Which conversations this hub handles: all, unless it is one of several workers
        # (console.hub.shards).
        self.owns: Callable[[int], bool] = _every
        # Whether this hub does the work done once for all workers (automatic assignment).
        self.leads: Callable[[], bool] = _always
        self._store: Store | None = None

    @property
    def store(self) -> Store:
        """The hub's own connection (opened on first use, in the loop's thread)."""
        if self._store is None:
            self._store = Store(self.path)
        return self._store

    def close(self) -> None:
        """Close the connection (the next use opens a new one)."""
        if self._store is not None:
            self._store.close()
            self._store = None
