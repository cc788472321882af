"""``tandem bench hub --http``: customer messages/s through the real channel API, over HTTP.

DESIGN.md section 11: "hub ingest, HTTP -> stored + triaged + bot reply (embedded)". Three
processes, as in production:

- the server: ``tandem serve --db <scratch> --listen 127.0.0.1:<free port> --embedded``
  (channel API, hub, triage and the embedded bot in one event loop), unchanged defaults;
- a client process (aiohttp) that creates conversations with ``POST /v1/conversations``
  (untimed setup) and then posts customer messages with ``POST /v1/conversations/{id}/messages``
  (an idempotency key each): ``saturated`` keeps ``--in-flight`` requests open, ``paced`` sends
  at ``--rate`` messages/s whatever the answers' speed (open loop);
- this process, which starts both, waits until the hub's saved feed cursor passes the last
  post, then reads the outcome of every message from the scratch database.

The client is one integration on one address, as in production: it holds the integration
token and each conversation's customer token. The API's production limits apply unchanged
(``ApiLimits``: per conversation 5/s with bursts of 20, so messages go round robin over
``--conversations`` conversations; conversation creations at the integration's own rate, which
the client respects by waiting on a 429 like a well-behaved integration). Any 429 on a post is
reported with the errors.

Numbers, per run: HTTP latency p50/p99 and errors by status; the outcome of every message from
the store (answered by the bot; answered by a reply to a later message of the same batch;
escalated; written while the conversation already waited for a person, which is triaged and
owes no bot reply; unanswered); the sustained rate (messages answered or escalated, and all
handled, over the time from the first post to the last answer); and the lag from a customer
message's ``created_at`` to the bot reply (``reply_to`` or the next bot line) or the
``escalated`` event, p50/p99.
"""

from __future__ import annotations

import argparse
import asyncio
import math
import os
import socket
import subprocess
import sys
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any


def add_http_arguments(parser: argparse.ArgumentParser) -> None:
    """The options only ``--http`` uses (``tandem bench hub`` adds them to its own)."""
    parser.add_argument(
        "--http",
        action="store_true",
        help="measure through the channel API over HTTP: a real `tandem serve --embedded`"
        " subprocess and an aiohttp client process (both runs spread over --conversations)",
    )
    parser.add_argument(
        "--in-flight",
        type=int,
        default=64,
        metavar="N",
        help="with --http: requests the saturated run keeps open (default 64)",
    )


@dataclass
class ClientPlan:
    """What the client process does in one run (picklable: it crosses a spawn)."""

    base_url: str
    token: str
    tag: str
    texts: list[str]
    conversations: int
    rate: float  # 0: saturated
    in_flight: int


@dataclass
class ClientResult:
    """What the client measured in one run."""

    conversation_ids: list[int] = field(default_factory=list)
    first_post_at: float = 0.0  # wall clock, the unit of the store's *_at columns
    send_seconds: float = 0.0  # first post sent -> last post sent
    seconds: float = 0.0  # first post sent -> last answer received
    behind_s: float = 0.0  # paced: how far the client's sending fell behind its schedule
    latencies: list[float] = field(default_factory=list)
    statuses: dict[str, int] = field(default_factory=dict)
    setup_error: str | None = None
    client_cpu_s: float = 0.0  # the client process's CPU while posting
    server_cpu_s: float = math.nan  # the server's CPU from the first post until the hub caught up


# --- the client process ------------------------------------------------------------------------


def client_main(plan: ClientPlan, out: Any, go: Any) -> None:
    """Entry point of the client process: open the conversations, put ``"ready"`` on ``out``,
    wait for ``go``, post, and put a :class:`ClientResult` on ``out``."""
    import gc

    # Like the server (console/hub/runner.py): a load generator whose full collections stall
    # its schedule would measure its own pauses, not the server's.
    gc.set_threshold(10_000, *gc.get_threshold()[1:])
    out.put(asyncio.run(_client(plan, out, go)))


async def _client(plan: ClientPlan, out: Any, go: Any) -> ClientResult:
    import aiohttp

    result = ClientResult()
    timeout = aiohttp.ClientTimeout(total=120)
    shared = aiohttp.ClientSession(
        plan.base_url, connector=aiohttp.TCPConnector(limit=0), timeout=timeout
    )
    sessions = {0: shared}

    def session(_conv: int) -> aiohttp.ClientSession:
        return shared

    try:
        convs = await _create(plan, session)
        if isinstance(convs, str):
            result.setup_error = f"could not open the conversations: {convs}"
            return result
        result.conversation_ids = [cid for cid, _ in convs]
        out.put("ready")
        await asyncio.get_running_loop().run_in_executor(None, go.wait)
        cpu0 = _own_cpu()
        await _post_all(plan, convs, session, result)
        result.client_cpu_s = _own_cpu() - cpu0
    finally:
        await asyncio.gather(*(s.close() for s in sessions.values()), return_exceptions=True)
    return result


async def _create(plan: ClientPlan, session: Any) -> list[tuple[int, str]] | str:
    """Open the run's conversations (untimed); return ``(id, customer token)`` or an error line."""
    import aiohttp

    gate = asyncio.Semaphore(64)
    auth = {"Authorization": f"Bearer {plan.token}"}

    async def one(n: int) -> tuple[int, str] | str:
        body = {
            "customer": {"name": f"Bench {plan.tag}-{n}", "external_id": f"bench-{plan.tag}-{n}"}
        }
        try:
            for _attempt in range(100):
                async with (
                    gate,
                    session(n).post("/v1/conversations", json=body, headers=auth) as resp,
                ):
                    data = await resp.json(content_type=None)
                    if resp.status == 429:
                        await asyncio.sleep(
                            0.1
                        )  # over the integration's creation rate: wait, retry
                        continue
                    if resp.status != 201:
                        return f"POST /v1/conversations -> {resp.status} {data}"
                    return int(data["id"]), str(data["customer_token"])
            return "POST /v1/conversations kept answering 429"
        except (aiohttp.ClientError, TimeoutError, ValueError, KeyError) as exc:
            return f"POST /v1/conversations failed: {type(exc).__name__}: {exc}"

    made = await asyncio.gather(*(one(n) for n in range(plan.conversations)))
    failed = [m for m in made if isinstance(m, str)]
    return failed[0] if failed else [m for m in made if not isinstance(m, str)]


async def _post_all(
    plan: ClientPlan, convs: list[tuple[int, str]], session: Any, result: ClientResult
) -> None:
    import aiohttp

    statuses: Counter[str] = Counter()
    latencies: list[float] = []
    n_conv = len(convs)

    async def post(n: int) -> None:
        conv = n % n_conv
        cid, token = convs[conv]
        body = {"text": plan.texts[n], "idempotency_key": f"{plan.tag}-{n}"}
        started = time.perf_counter()
        try:
            async with session(conv).post(
                f"/v1/conversations/{cid}/messages",
                json=body,
                headers={"Authorization": f"Bearer {token}"},
            ) as resp:
                await resp.read()
                status = str(resp.status)
        except (aiohttp.ClientError, TimeoutError) as exc:
            status = type(exc).__name__
        latencies.append(time.perf_counter() - started)
        statuses[status] += 1

    total = len(plan.texts)
    result.first_post_at = time.time()
    t0 = time.perf_counter()
    last_sent = t0
    if plan.rate > 0:
        # Open loop: message n leaves at t0 + n / rate whether or not earlier answers came back
        # (at most 4096 outstanding, so a stalled server cannot exhaust the client).
        gate = asyncio.Semaphore(4096)
        tasks: set[asyncio.Task[None]] = set()

        async def gated(n: int) -> None:
            try:
                await post(n)
            finally:
                gate.release()

        n = 0
        while n < total:
            now = time.perf_counter() - t0
            due = min(total, int(now * plan.rate) + 1)
            while n < due:
                await gate.acquire()
                result.behind_s = max(result.behind_s, time.perf_counter() - t0 - n / plan.rate)
                task = asyncio.create_task(gated(n))
                tasks.add(task)
                task.add_done_callback(tasks.discard)
                n += 1
            last_sent = time.perf_counter()
            if n < total:
                await asyncio.sleep(max(0.0, n / plan.rate - (time.perf_counter() - t0)))
        await asyncio.gather(*list(tasks))
    else:
        counter = iter(range(total))

        async def worker() -> None:
            nonlocal last_sent
            for n in counter:
                last_sent = time.perf_counter()
                await post(n)

        await asyncio.gather(*(worker() for _ in range(max(1, plan.in_flight))))
    result.send_seconds = last_sent - t0
    result.seconds = time.perf_counter() - t0
    result.latencies = latencies
    result.statuses = dict(statuses)


def _own_cpu() -> float:
    import resource

    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


# --- the server process -----------------------------------------------------------------------


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _start_server(path: Path, port: int, token: str, log: Any) -> subprocess.Popen[bytes]:
    env = {
        k: v
        for k, v in os.environ.items()
        if k
        not in ("TANDEM_DB", "OPENAI_BASE_URL", "OPENAI_API_KEY", "TANDEM_MODEL", "TANDEM_CONFIG")
    }
    env["TANDEM_API_TOKEN"] = token
    return subprocess.Popen(
        [
            sys.executable,
            "-m",
            "console.cli",
            "serve",
            "--db",
            str(path),
            "--listen",
            f"127.0.0.1:{port}",
            "--embedded",
            "--log-interval",
            "0",
        ],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=log,
    )


def _wait_healthy(proc: subprocess.Popen[bytes], port: int, timeout: float = 30.0) -> None:
    import json
    import urllib.error
    import urllib.request

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"tandem serve exited with code {proc.returncode}")
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=2) as resp:
                if json.loads(resp.read()).get("ok"):
                    return
        except (OSError, urllib.error.URLError, ValueError):
            pass
        time.sleep(0.1)
    raise RuntimeError(
        f"tandem serve did not answer /healthz on port {port} within {timeout:.0f} s"
    )


def _stop_server(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is None:
        proc.terminate()  # SIGTERM: the hub finishes what it holds and saves its cursor
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


# --- reading the outcome from the store ---------------------------------------------------------


@dataclass
class Outcome:
    """What became of one run's customer messages, from the store."""

    customer: int = 0
    answered: int = 0  # a bot reply with reply_to = the message
    coalesced: int = 0  # answered by the bot's reply to a later message of the same conversation
    escalated: int = 0
    queued: int = 0  # written while the conversation waited for a person: triaged, no bot reply due
    unanswered: int = 0
    lags: list[float] = field(default_factory=list)  # seconds, created_at -> reply or escalation
    last_outcome_at: float = 0.0


def _wait_for_hub(path: Path, proc: subprocess.Popen[bytes], timeout: float) -> tuple[bool, int]:
    """Wait until the hub's saved cursors (one per shard) pass every event committed so far;
    return (done, events)."""
    from console.hub.shards import SHARDS
    from store import Store, leases
    from store.feed import last_event_id

    with Store(path, readonly=True) as store:
        target = last_event_id(store)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline and proc.poll() is None:
            if min(leases.shard_cursors(store, "hub", range(SHARDS)).values()) >= target:
                return True, target
            time.sleep(0.05)
    return False, target


def read_outcome(path: Path, conversation_ids: list[int]) -> Outcome:
    """Walk the feed of the run's conversations and classify every customer message."""
    from store import Store
    from store.feed import events_with_messages

    out = Outcome()
    if not conversation_ids:
        return out
    wanted = set(conversation_ids)
    pending: dict[int, list[tuple[int, float]]] = {}
    waiting: set[int] = set()
    with Store(path, readonly=True) as store:
        rows = events_with_messages(
            store,
            first=min(wanted),
            last=max(wanted),
            kinds=("message", "escalated", "released", "handed_back"),
        )
    for cid, kind, at, mid, role, reply_to, created_at in rows:
        if cid not in wanted:
            continue
        if kind in ("released", "handed_back"):
            waiting.discard(cid)
        elif kind == "escalated":
            for _mid, posted in pending.pop(cid, []):
                out.escalated += 1
                out.lags.append(at - posted)
            waiting.add(cid)
            out.last_outcome_at = max(out.last_outcome_at, at)
        elif mid is None or created_at is None:
            continue  # an event without its message (none of the roles below)
        elif role == "customer":
            out.customer += 1
            if cid in waiting:
                out.queued += 1
            else:
                pending.setdefault(cid, []).append((mid, created_at))
        elif role == "bot":
            for waiting_mid, posted in pending.pop(cid, []):
                if waiting_mid == reply_to:
                    out.answered += 1
                else:
                    out.coalesced += 1
                out.lags.append(created_at - posted)
            out.last_outcome_at = max(out.last_outcome_at, created_at)
    out.unanswered = sum(len(v) for v in pending.values())
    return out


# --- the bench ------------------------------------------------------------------------------------


def _ms(seconds: float) -> str:
    return f"{seconds * 1000:.1f} ms" if not math.isnan(seconds) else "n/a"


def _statuses(statuses: dict[str, int]) -> str:
    ok = sum(n for s, n in statuses.items() if s in ("200", "201"))
    bad = sorted((s, n) for s, n in statuses.items() if s not in ("200", "201"))
    errors = ", ".join(f"{s} x{n}" for s, n in bad) if bad else "none"
    return f"{ok} ok, errors: {errors}"


def _server_cpu(pid: int) -> float:
    """CPU seconds (user + system) the process ``pid`` used so far; NaN where /proc is missing."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    except (OSError, IndexError, ValueError):
        return math.nan


def _receive(queue: Any, proc: Any, deadline: float) -> Any:
    """The client's next message; a crash or a hang is an error line, never an endless wait."""
    from queue import Empty

    while True:
        try:
            return queue.get(timeout=0.5)
        except Empty:
            if not proc.is_alive() or time.monotonic() > deadline:
                return ClientResult(
                    setup_error=f"the client process ended without a result (exit code {proc.exitcode})"
                )


def _one_run(
    plan: ClientPlan, path: Path, server: subprocess.Popen[bytes]
) -> tuple[ClientResult, Outcome, bool]:
    import multiprocessing as mp

    ctx = mp.get_context("spawn")
    queue, go = ctx.Queue(), ctx.Event()
    proc = ctx.Process(target=client_main, args=(plan, queue, go), daemon=True)
    proc.start()
    timeout = max(120.0, len(plan.texts) / 50)
    try:
        ready = _receive(queue, proc, time.monotonic() + 60 + plan.conversations / 50)
        if isinstance(ready, ClientResult):
            return ready, Outcome(), False
        cpu0 = _server_cpu(server.pid)
        go.set()
        result: ClientResult = _receive(queue, proc, time.monotonic() + timeout)
    finally:
        proc.join(timeout=10)
        if proc.is_alive():
            proc.terminate()
    if result.setup_error:
        return result, Outcome(), False
    done, _ = _wait_for_hub(path, server, timeout=timeout)
    result.server_cpu_s = _server_cpu(server.pid) - cpu0
    return result, read_outcome(path, result.conversation_ids), done


def run_http(args: argparse.Namespace) -> int:
    """``tandem bench hub --http``: print the numbers of a saturated and a paced run."""
    import secrets

    from console.bench.hub import scratch
    from console.channels.api import ApiLimits
    from store.stats import percentile_or_nan

    if args.conversations is None:
        # Two messages each: multi-turn, yet most messages still reach the bot or the
        # escalation (a conversation already waiting for a person owes no bot reply).
        args.conversations = max(1, args.messages // 2)
    if args.messages <= 0 or args.conversations <= 0 or args.in_flight <= 0:
        print("tandem bench hub: --messages, --conversations and --in-flight must be positive")
        return 1
    tmp, path, texts, source = scratch(args, "bench-hub-http.db")
    limits = ApiLimits()
    per_conv = math.ceil(args.messages / args.conversations)
    token = secrets.token_urlsafe(24)
    port = _free_port()
    log_path = Path(tmp.name) / "serve.log"
    with log_path.open("wb") as log:
        server = _start_server(path, port, token, log)
    try:
        _wait_healthy(server, port)
        print(
            f"hub bench over HTTP: `tandem serve --embedded` (pid {server.pid}) on 127.0.0.1:{port};"
            f" aiohttp client in its own process; {args.messages} customer messages per run over"
            f" {args.conversations} new conversations ({per_conv} each), one client address;"
            f" API limits unchanged: {limits.rate_per_s:g}/s and burst {limits.burst} per conversation,"
            f" {limits.integration_rate_per_s:g} creations/s; texts: {source}"
        )
        if per_conv > limits.burst:
            print(
                f"  note: {per_conv} messages per conversation exceeds the API's burst of {limits.burst};"
                " expect 429s unless the run is slow (raise --conversations)"
            )
        runs: list[tuple[str, float]] = [(f"saturated ({args.in_flight} in flight)", 0.0)]
        if args.rate > 0:
            runs.append((f"paced {args.rate:g}/s", args.rate))
        for i, (name, rate) in enumerate(runs):
            plan = ClientPlan(
                f"http://127.0.0.1:{port}",
                token,
                f"h{i}",
                texts[i * args.messages : (i + 1) * args.messages],
                args.conversations,
                rate,
                args.in_flight,
            )
            result, out, done = _one_run(plan, path, server)
            if result.setup_error:
                print(f"  {name}: {result.setup_error}")
                return 1
            sent = len(plan.texts)
            handled = out.answered + out.coalesced + out.escalated
            span = (
                out.last_outcome_at - result.first_post_at if out.last_outcome_at else float("nan")
            )
            behind = (
                f", client behind schedule by up to {_ms(result.behind_s)}"
                if rate and result.behind_s > 0.05
                else ""
            )
            pad = " " * (len(name) + 4)
            print(
                f"  {name}: posted {sent} in {result.send_seconds:.2f} s"
                f" ({sent / result.send_seconds if result.send_seconds > 0 else float('nan'):.0f}/s{behind})"
                f" | HTTP {_statuses(result.statuses)} | request latency"
                f" p50 {_ms(percentile_or_nan(result.latencies, 0.5))}, p99 {_ms(percentile_or_nan(result.latencies, 0.99))}"
                f" | CPU: server {result.server_cpu_s:.1f} s ({result.server_cpu_s / sent * 1000:.2f} ms/message),"
                f" client {result.client_cpu_s:.1f} s"
            )
            print(
                f"{pad}store: {out.customer} customer messages: {out.answered} answered"
                f" (+{out.coalesced} by the reply to a later one), {out.escalated} escalated, {out.queued} queued"
                f" behind an escalation (triaged, no bot reply due), {out.unanswered} unanswered"
                + ("" if done else " (the hub had not caught up when the bench gave up)")
            )
            print(
                f"{pad}sustained {handled / span:.0f}/s answered or escalated, {(handled + out.queued) / span:.0f}/s"
                f" all handled (first post -> last answer {span:.2f} s) | commit -> answer/escalation lag"
                f" p50 {_ms(percentile_or_nan(out.lags, 0.5))}, p99 {_ms(percentile_or_nan(out.lags, 0.99))},"
                f" max {_ms(max(out.lags) if out.lags else math.nan)}"
            )
    finally:
        _stop_server(server)
        lines = log_path.read_text(encoding="utf-8", errors="replace").splitlines()
        last = next((ln for ln in reversed(lines) if ln.startswith("tandem serve: stopped")), None)
        if last:
            print(f"  server: {last.removeprefix('tandem serve: ')}")
        else:
            print(
                f"  server: exit code {server.returncode}, no summary line; log tail: {' / '.join(lines[-3:])}"
            )
        tmp.cleanup()
    return 0
