"""``tandem serve --workers N``: N hub worker processes beside the channel API.

Python runs one thread of Python at a time, so a second core is a second process. Each worker
is a fresh interpreter (``spawn``: nothing of the parent's event loop or connections is
inherited) that runs a hub over the shards it holds a lease on (``console.hub.shards``); the
parent keeps the channel and agent APIs, the simulator and the webhooks, and starts a worker
again when one ends while serving (the new one gets the old one's name, so its leases too).
A worker whose parent is gone stops by itself.
"""

from __future__ import annotations

import asyncio
import contextlib
import multiprocessing as mp
import os
import sys
import time
from multiprocessing.reduction import ForkingPickler
from pathlib import Path
from types import MappingProxyType
from typing import Any

from console.policy import PolicySettings

RESTART_BACKOFF_S = (0.5, 1.0, 2.0, 5.0, 10.0, 30.0)
"""Waits before starting a worker again that ended soon after it started (a crash loop)."""
QUICK_END_S = 10.0
STOP_TIMEOUT_S = 30.0


def _read_only(mapping: dict[Any, Any]) -> MappingProxyType[Any, Any]:
    return MappingProxyType(mapping)


def _reduce_mapping(mapping: MappingProxyType[Any, Any]) -> tuple[Any, tuple[dict[Any, Any]]]:
    return _read_only, (dict(mapping),)


# The policy's settings keep their tables read-only (MappingProxyType), which pickle refuses;
# for the workers' arguments only, they travel as plain dicts.
ForkingPickler.register(MappingProxyType, _reduce_mapping)


def _say(line: str) -> None:
    print(line, file=sys.stderr, flush=True)


def _exit_words(code: int | None) -> str:
    if code is None:
        return "still running"
    if code < 0:
        import signal

        try:
            return f"killed by {signal.Signals(-code).name}"
        except ValueError:
            return f"killed by signal {-code}"
    return f"exit code {code}"


class WorkerPool:
    """Keeps ``count`` hub worker processes running on ``path`` until ``stop``."""

    def __init__(
        self,
        path: str | Path,
        count: int,
        *,
        settings: PolicySettings,
        llm: Any,
        judge_llm: Any,
        lease_ttl: float,
        log_interval: float,
    ) -> None:
        self.path = path
        self.count = count
        self.args = (
            str(path),
            settings,
            llm,
            judge_llm,
            lease_ttl,
            log_interval,
            os.getpid(),
        )
        self.restarts = 0
        self.processes: list[Any] = []
        self._ctx = mp.get_context("spawn")

    def _start(self) -> Any:
        proc = self._ctx.Process(target=worker_main, args=self.args, name="tandem hub worker")
        proc.start()
        return proc

    @property
    def pids(self) -> list[int]:
        """The workers' process ids (tests kill one)."""
        return [p.pid for p in self.processes if p.pid is not None]

    async def run(self, stop: asyncio.Event) -> None:
        """Start the workers, start again any that ends, stop them all (SIGTERM) on ``stop``."""
        self.processes = [self._start() for _ in range(self.count)]
        started = [time.monotonic()] * self.count
        quick = [0] * self.count
        try:
            while not stop.is_set():
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(stop.wait(), 0.25)
                for i, proc in enumerate(self.processes):
                    if stop.is_set() or proc.is_alive():
                        continue
                    now = time.monotonic()
                    quick[i] = quick[i] + 1 if now - started[i] < QUICK_END_S else 0
                    wait = (
                        RESTART_BACKOFF_S[min(quick[i], len(RESTART_BACKOFF_S)) - 1]
                        if quick[i]
                        else 0
                    )
                    _say(
                        f"tandem serve: hub worker (pid {proc.pid}) ended ({_exit_words(proc.exitcode)});"
                        f" starting another{f' in {wait:g} s' if wait else ''}"
                    )
                    if wait:
                        with contextlib.suppress(TimeoutError):
                            await asyncio.wait_for(stop.wait(), wait)
                        if stop.is_set():
                            break
                    self.processes[i] = self._start()
                    started[i] = time.monotonic()
                    self.restarts += 1
        finally:
            await self._stop_all()

    async def _stop_all(self) -> None:
        for proc in self.processes:
            if proc.is_alive():
                proc.terminate()  # SIGTERM: finish what is in hand, save cursors, hand back
        deadline = time.monotonic() + STOP_TIMEOUT_S
        while any(p.is_alive() for p in self.processes) and time.monotonic() < deadline:
            await asyncio.sleep(0.05)
        for proc in self.processes:
            if proc.is_alive():
                proc.kill()
            proc.join(timeout=5)


def worker_main(
    path: str,
    settings: PolicySettings,
    llm: Any,
    judge_llm: Any,
    lease_ttl: float,
    log_interval: float,
    parent: int,
) -> None:
    """The body of one worker process (run by ``multiprocessing``)."""
    from console.hub.runner import run_worker

    code = asyncio.run(
        run_worker(
            path,
            settings=settings,
            llm=llm,
            judge_llm=judge_llm,
            lease_ttl=lease_ttl,
            log_interval=log_interval,
            parent=parent,
        )
    )
    raise SystemExit(code)
