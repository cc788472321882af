"""Running the hub as a process: signals, the simulator, the per-minute log line."""

from __future__ import annotations

import asyncio
import contextlib
import gc
import logging
import os
import signal
import ssl
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from console.hub.core import Hub, make_hub
from console.hub.pool import WorkerPool
from console.hub.shards import LEASE_TTL_S, ShardedFeed, claim_worker_name, database_key
from console.policy import PolicySettings
from store.db import is_url

log = logging.getLogger("tandem.hub")

GC_GEN0_THRESHOLD = 10_000
"""Allocations between young collections while serving (CPython's default is 700).

Under load the hub holds thousands of short-lived tasks, requests and verdicts for a few
hundred milliseconds. At 700 they survive two young collections and are promoted; the old
generation then grows by a quarter every second or two and each full collection scans the
whole heap (the triage state of up to 20,000 conversations): 100-300 ms during which the
channel API and the bot stand still. `tandem bench hub --http`, saturated: full collections
went from 7 (775 ms) to 1-2 (70-190 ms) per 10,000 messages, server CPU per message from
0.67-0.72 ms to 0.59-0.66 ms. Nothing else changes: cycles are still collected.
"""


def _say(line: str) -> None:
    # Plain stderr lines: `tandem demo` reads them from its child, people read them in a terminal.
    print(line, file=sys.stderr, flush=True)


async def serve_forever(
    path: str | Path,
    *,
    settings: PolicySettings | None = None,
    simulate: int = 0,
    speed: float = 1.0,
    duration: float | None = None,
    seed: int | None = None,
    data: Any = None,
    log_interval: float = 60.0,
    llm: Any = None,
    listen: tuple[str, int] | None = None,
    personas: list[str] | None = None,
    webhooks: Any = None,
    tls: ssl.SSLContext | None = None,
    judge_llm: Any = None,
    workers: int = 1,
    lease_ttl: float = LEASE_TTL_S,
) -> int:
    """Run the hub (and ``simulate`` customers) until SIGINT/SIGTERM or ``duration``; return 0.

    :param data: replay file for the simulator; ``False`` for scripts only
    :param llm: an enabled :class:`console.config.LLMConfig` for the LLM bot; ``None``: embedded
    :param listen: serve the channel API on ``(host, port)`` in the same loop; ``None``: no API
    :param personas: simulate only these personas
    :param webhooks: an enabled :class:`console.config.WebhookConfig`: POST events to its URLs
    :param tls: serve the APIs over HTTPS with this context; ``None``: plain HTTP
    :param judge_llm: an enabled :class:`console.config.LLMConfig` for triage's second opinion
        (default: ``llm``); given alone, the bot stays embedded
    :param workers: hub worker processes; 1 runs the hub in this process. Either way the hub
        takes a share of the conversations' shards by lease (``console.hub.shards``), so
        several ``tandem serve`` on one database share the work
    :param lease_ttl: seconds a worker's lease lasts unrenewed (a dead worker's share waits
        this long for another worker)
    """
    logging.basicConfig(level=logging.WARNING, format="%(name)s: %(message)s", stream=sys.stderr)
    if llm is not None:
        # Each LLM decision, one line: what the operator needs to trust (or distrust) the model.
        logging.getLogger("tandem.hub.llm").setLevel(logging.INFO)
    # On PostgreSQL several serve processes share the work by leases; no file to lock.
    lock = None if is_url(path) else one_hub_per_database(Path(path))
    thresholds = gc.get_threshold()
    gc.set_threshold(max(thresholds[0], GC_GEN0_THRESHOLD), *thresholds[1:])
    try:
        return await _serve(
            path,
            settings=settings,
            simulate=simulate,
            speed=speed,
            duration=duration,
            seed=seed,
            data=data,
            log_interval=log_interval,
            llm=llm,
            listen=listen,
            personas=personas,
            webhooks=webhooks,
            tls=tls,
            judge_llm=judge_llm,
            workers=workers,
            lease_ttl=lease_ttl,
        )
    finally:
        gc.set_threshold(*thresholds)
        if lock is not None:
            lock.close()


def one_hub_per_database(path: Path) -> Any:
    """Hold an exclusive lock on ``<db>.hub.lock`` while serving; refuse a second serve.

    A SQLite file lives on one host, where ``--workers N`` is the way to more hub processes;
    a second ``tandem serve`` on the same file is a mistake (a second demo, a forgotten
    terminal) that would split the conversations by lease with a process nobody watches. The
    lock is on a side file, never on the database (SQLite
    manages its own), and the kernel releases it however the process ends. The side file is
    named from the database's real path, so a symlink, ``..`` or a relative path to the same
    file finds the same lock.
    """
    try:
        import fcntl
    except ImportError:  # not on POSIX: no guard
        return None
    from console.errors import UsageError

    lock_path = Path(f"{os.path.realpath(path)}.hub.lock")
    if not lock_path.parent.is_dir():
        return None  # the store says what is wrong with the path
    try:
        fh = lock_path.open("a+")
    except OSError as exc:
        raise UsageError(f"{lock_path}: cannot open the hub's lock file ({exc.strerror})") from None
    try:
        fcntl.flock(fh.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        fh.seek(0)
        holder = fh.read().strip() or "?"
        fh.close()
        raise UsageError(
            f"another tandem serve (pid {holder}) is already running on {path}"
        ) from None
    fh.seek(0)
    fh.truncate()
    fh.write(str(os.getpid()))
    fh.flush()
    return fh


def _worker_hub(
    path: str | Path,
    *,
    settings: PolicySettings,
    llm: Any,
    judge_llm: Any,
    lease_ttl: float,
) -> tuple[Hub, str, Any]:
    """A hub on the shards it leases under a name of its own; also the name and the lock on it.

    ``tandem serve``'s own hub and each worker of ``--workers N`` are built alike.
    """
    name, slot = claim_worker_name(database_key(path))
    hub = make_hub(
        path,
        settings=settings,
        llm=llm,
        judge_llm=judge_llm,
        worker_name=name,
        lease_ttl=lease_ttl,
    )
    return hub, name, slot


async def _serve(
    path: str | Path,
    *,
    settings: PolicySettings | None,
    simulate: int,
    speed: float,
    duration: float | None,
    seed: int | None,
    data: Any,
    log_interval: float,
    llm: Any,
    listen: tuple[str, int] | None,
    personas: list[str] | None,
    webhooks: Any,
    tls: ssl.SSLContext | None = None,
    judge_llm: Any = None,
    workers: int = 1,
    lease_ttl: float = LEASE_TTL_S,
) -> int:
    # Signals first: building the hub loads triage's language data (seconds on a busy
    # machine), and a SIGTERM meanwhile must stop the hub cleanly, not kill the process.
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        with contextlib.suppress(NotImplementedError, RuntimeError):
            loop.add_signal_handler(sig, stop.set)
    settings = settings or PolicySettings()
    pool: WorkerPool | None = None
    hub: Hub | None = None
    slot: Any = None
    if workers > 1:
        pool = WorkerPool(
            path,
            workers,
            settings=settings,
            llm=llm,
            judge_llm=judge_llm,
            lease_ttl=lease_ttl,
            log_interval=log_interval,
        )
        tasks = [asyncio.create_task(pool.run(stop), name="hub workers")]
        wake: Callable[[], None] = _nothing
    else:
        hub, _, slot = _worker_hub(
            path, settings=settings, llm=llm, judge_llm=judge_llm, lease_ttl=lease_ttl
        )
        tasks = [asyncio.create_task(hub.run(stop), name="hub")]
        wake = hub.wake
    sim = None
    if simulate:
        from console.channels.sim import Simulator

        sim = Simulator(
            path,
            customers=simulate,
            speed=speed,
            seed=seed,
            data=data,
            personas=personas,
            settings=settings,
        )
        tasks.append(asyncio.create_task(sim.run(stop), name="simulator"))
    if webhooks is not None:
        from console.channels.webhooks import Webhooks

        tasks.append(asyncio.create_task(Webhooks(path, webhooks).run(stop), name="webhooks"))
    api_runner, api_note = (
        await _start_api(path, listen, wake, tls, llm, settings=settings)
        if listen
        else (None, "no channel API")
    )
    engine = f"llm {llm.model} (embedded when it fails)" if llm is not None else "embedded"
    _say(
        f"tandem serve: {path} | {api_note} | bot {engine} | policy escalate>={settings.escalate_level},"
        f" fallbacks>={settings.max_fallbacks} | {_hubs(hub, workers)} | simulate {simulate} at speed {speed:g}"
        + (f" | webhooks to {len(webhooks.urls)} endpoint(s)" if webhooks is not None else "")
        + (
            f" (replaying {sum(len(v) for v in sim.replay.values())} real first messages)"
            if sim and sim.replay
            else ""
        )
    )
    if duration is not None:
        loop.call_later(duration, stop.set)
    reporter = (
        asyncio.create_task(_report(hub, stop, log_interval))
        if log_interval > 0 and hub is not None
        else None
    )
    started = time.monotonic()
    try:
        done, _ = await asyncio.wait(tasks, return_when=asyncio.FIRST_EXCEPTION)
        for task in done:
            if task.exception() is not None:
                stop.set()
                raise task.exception()  # type: ignore[misc]
        await asyncio.gather(*tasks)
    finally:
        stop.set()
        if reporter is not None:
            reporter.cancel()
            await asyncio.gather(reporter, return_exceptions=True)
        for task in tasks:
            if not task.done():
                task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        if api_runner is not None:
            await api_runner.cleanup()
        if slot is not None:
            slot.close()
    took = f"tandem serve: stopped after {time.monotonic() - started:.0f}s: "
    if hub is not None:
        took += stopped_line(hub.stats)
    elif pool is not None:
        took += f"{workers} hub workers ({pool.restarts} restarted; each logged its own counts)"
    _say(took + (f"; {sim.started} simulated customers" if sim else ""))
    if sim and sim.outcomes:
        table = sim.summary()
        _say(
            "simulated customers (finished visits): "
            + ", ".join(
                f"{name} {c['customers']} ({c['escalated']} to a person"
                + (f", {c['unexpected']} not as the persona expects)" if c["unexpected"] else ")")
                for name, c in sorted(table.items(), key=lambda kv: -kv[1]["customers"])
            )
        )
    return 0


async def run_worker(
    path: str | Path,
    *,
    settings: PolicySettings,
    llm: Any,
    judge_llm: Any,
    lease_ttl: float,
    log_interval: float,
    parent: int,
) -> int:
    """One hub worker of ``tandem serve --workers N`` (a process of its own); return 0.

    Stops on SIGINT/SIGTERM, or by itself when its parent ``parent`` (a pid) is gone.
    """
    logging.basicConfig(level=logging.WARNING, format="%(name)s: %(message)s", stream=sys.stderr)
    thresholds = gc.get_threshold()
    gc.set_threshold(max(thresholds[0], GC_GEN0_THRESHOLD), *thresholds[1:])
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        with contextlib.suppress(NotImplementedError, RuntimeError):
            loop.add_signal_handler(sig, stop.set)
    hub, name, slot = _worker_hub(
        path, settings=settings, llm=llm, judge_llm=judge_llm, lease_ttl=lease_ttl
    )

    # A worker process lives long: load every language's word lists before taking shards,
    # not on the first message in each (seconds each, the loop standing still meanwhile).
    warm = getattr(hub.engine, "warm", None)
    if warm is not None:
        await loop.run_in_executor(None, warm)

    async def orphaned() -> None:
        while not stop.is_set():
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), 1.0)
            if os.getppid() != parent:
                stop.set()

    helpers = [asyncio.create_task(orphaned())]
    if log_interval > 0:
        helpers.append(asyncio.create_task(_report(hub, stop, log_interval, f"[{name}] ")))
    try:
        await hub.run(stop)
    finally:
        stop.set()
        for task in helpers:
            task.cancel()
        await asyncio.gather(*helpers, return_exceptions=True)
        if slot is not None:
            slot.close()
        gc.set_threshold(*thresholds)
    _say(f"hub worker {name} (pid {os.getpid()}): stopped: {stopped_line(hub.stats)}")
    return 0


def stopped_line(s: Any) -> str:
    """What a hub did, for its last line (a :class:`console.hub.stats.HubStats`)."""
    reasons = sorted(s.escalation_reasons.items(), key=lambda kv: -kv[1])
    return (
        f"{s.customer_messages} customer messages, {s.bot_replies} bot replies,"
        f" {s.escalations} escalations"
        + (f" ({', '.join(f'{k} {v}' for k, v in reasons)})" if reasons else "")
        + f", {s.idle_resolved + s.resolved_by_bot} resolved, {s.errors} errors"
    )


def _hubs(hub: Hub | None, workers: int) -> str:
    if hub is not None:
        return f"hub worker {hub.feed.name}" if isinstance(hub.feed, ShardedFeed) else "hub"
    return f"{workers} hub worker processes"


def _nothing() -> None:
    """The channel API's wake-up when the hub runs in other processes (they poll the feed)."""


def _drafter(llm_config: Any) -> Any:
    """Drafts for remote consoles, written here: the LLM (and its key) never leaves the server."""
    from console.assist.service import DraftService
    from console.llm import LLM

    llm = LLM(llm_config) if llm_config is not None else None

    def make(store: Any, agent: str) -> DraftService:
        return DraftService(store, agent=agent, llm=llm)

    return make


def _summarizer(llm_config: Any) -> Any:
    """The hand-over summary a transfer over the agent API takes along (the LLM's when
    configured and checked, else the embedded one), written here like the drafts."""
    from console.assist.summary import as_meta, summary_of
    from console.llm import LLM

    llm = LLM(llm_config) if llm_config is not None else None

    async def summarize(store: Any, conversation_id: int, agent: str) -> tuple[str, Any]:
        summary = await summary_of(store, conversation_id, agent=agent, llm=llm)
        return summary.as_text(), as_meta(summary)

    return summarize


async def _start_api(
    path: str | Path,
    listen: tuple[str, int],
    on_post: Callable[[], None],
    tls: ssl.SSLContext | None = None,
    llm: Any = None,
    *,
    settings: PolicySettings | None = None,
) -> tuple[Any, str]:
    """Start the channel API and, beside it on the same listener, the agent API (under
    /agent/v1/); a busy port is reported, never fatal for the hub."""
    from aiohttp import web

    from console.channels.agent_api import AgentApi
    from console.channels.api import ChannelApi, api_runner

    host, port = listen
    token = os.environ.get("TANDEM_API_TOKEN") or None
    api = ChannelApi(path, token=token, on_post=on_post, settings=settings)
    agents = AgentApi(
        path,
        drafts=_drafter(llm),
        routing=settings.routing if settings else None,
        summaries=_summarizer(llm),
    )
    agents.mount(api.app)
    runner = api_runner(api)
    await runner.setup()
    try:
        await web.TCPSite(runner, host, port, ssl_context=tls).start()
    except OSError as exc:
        await runner.cleanup()
        return None, f"channel API not started ({host}:{port}: {exc.strerror or exc})"
    creation = (
        "TANDEM_API_TOKEN set"
        if token
        else "no TANDEM_API_TOKEN: integrations cannot create conversations"
    )
    scheme = "https" if tls else "http"
    note = f"channel API {scheme}://{host}:{port} ({creation}), agent API /agent/v1/"
    if tls is None and host not in ("127.0.0.1", "localhost", "::1"):
        note += " WITHOUT TLS: tokens cross the network in clear (--tls-cert/--tls-key or a proxy)"
    return runner, note


async def _report(hub: Hub, stop: asyncio.Event, interval: float, prefix: str = "") -> None:
    previous = hub.stats.snapshot()
    last = time.monotonic()
    while not stop.is_set():
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), interval)
        if stop.is_set():
            return
        now = time.monotonic()
        try:
            _say(prefix + hub.status_line(previous, now - last))
        except Exception:  # a report must never take the hub down
            log.exception("status line")
        previous, last = hub.stats.snapshot(), now
