"""``tandem bench console --server``: remote consoles following a real ``tandem serve``.

What a team on one server costs (DESIGN section 12): a real ``tandem serve --embedded``
subprocess; a writer process posting customer messages through the channel API at ``--rate``
(the hub answers and triages them, so the feed carries several events per message); and
``--consoles`` simulated remote consoles in another process, each an aiohttp client holding
``GET /agent/v1/events`` open with its own account token, as ``tandem console --server``
would. Prints (never pass/fail):

* commit -> event at a remote console, p50/p99 over every event every console received
  (the event's ``at`` is stamped in the committing transaction; one clock, one machine);
* gaps and repeats: each console's ids against the feed in the store (should be 0 and 0);
* the server's CPU with the writer alone and with the consoles attached, and the difference
  per console;
* the row fetches (``GET wall?ids=``) the consoles made for rows the stream did not carry.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import multiprocessing as mp
import random
import tempfile
import time
from pathlib import Path
from typing import Any

from store.stats import percentile_or_nan

INTEGRATION_TOKEN = "bench-integration-token"


def add_server_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--server",
        action="store_true",
        help="measure remote consoles on the agent API of a real `tandem serve` instead",
    )
    parser.add_argument(
        "--consoles", type=int, default=50, help="with --server: remote consoles (default 50)"
    )
    parser.add_argument(
        "--seconds",
        type=float,
        default=10.0,
        help="with --server: seconds per phase; without: of the watching-only phase (default 10)",
    )
    parser.add_argument(
        "--client-processes",
        type=int,
        default=2,
        help="with --server: processes the consoles are spread over (default 2)",
    )


# --- the writer process ---------------------------------------------------------------------


def writer_main(url: str, conversations: int, rate: float, seconds: float, go: Any) -> None:
    """Customers through the channel API: open ``conversations``, then post at ``rate`` for
    ``seconds`` once ``go`` is set. Through HTTP, not into the file: in team mode every write
    happens in the server's process, and a second writing process would make the server's
    loop wait on SQLite's lock, which a team's server never does."""
    asyncio.run(_writer(url, conversations, rate, seconds, go))


async def _writer(url: str, conversations: int, rate: float, seconds: float, go: Any) -> None:
    import aiohttp

    rng = random.Random(7)
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0)) as session:
        customers: list[tuple[str, str]] = []
        for i in range(conversations):
            async with session.post(
                f"{url}/v1/conversations",
                headers={"Authorization": f"Bearer {INTEGRATION_TOKEN}"},
                json={"customer": {"name": f"Customer{i}"}},
            ) as resp:
                body = await resp.json()
                customers.append((body["id"], body["customer_token"]))
        await asyncio.get_running_loop().run_in_executor(None, go.wait)
        start = time.monotonic()
        pending: set[asyncio.Task[None]] = set()

        async def post(n: int) -> None:
            cid, token = rng.choice(customers)
            async with session.post(
                f"{url}/v1/conversations/{cid}/messages",
                headers={"Authorization": f"Bearer {token}"},
                json={"text": f"message {n}: where is my card?", "idempotency_key": f"m{n}"},
            ) as resp:
                await resp.read()

        n = 0
        while time.monotonic() - start < seconds:
            due = start + n / rate
            if due > time.monotonic():
                await asyncio.sleep(due - time.monotonic())
            task = asyncio.create_task(post(n))
            pending.add(task)
            task.add_done_callback(pending.discard)
            n += 1
        await asyncio.gather(*pending, return_exceptions=True)


# --- the consoles process -------------------------------------------------------------------


def consoles_main(
    url: str, tokens: list[str], after: int, stop: Any, out: Any, progress: Any
) -> None:
    out.put(asyncio.run(_consoles(url, tokens, after, stop, out, progress)))


async def _consoles(
    url: str, tokens: list[str], after: int, stop: Any, out: Any, progress: Any
) -> dict[str, Any]:
    import aiohttp

    ready = 0
    started = asyncio.Event()
    results: list[tuple[list[float], list[int]]] = []
    fetches = 0

    async def fetch_rows(
        session: aiohttp.ClientSession, token: str, pending: set[int], due: asyncio.Event
    ) -> None:
        # The console's reader thread (console.ui.feed): after a batch, the rows of the
        # conversations it touched that the stream did not carry, one request at a time.
        nonlocal fetches
        while True:
            await due.wait()
            due.clear()
            ids = sorted(pending)
            pending.clear()
            async with session.get(
                f"{url}/agent/v1/wall",
                params={"ids": ",".join(map(str, ids))},
                headers={"Authorization": f"Bearer {token}"},
            ) as resp:
                resp.raise_for_status()
                await resp.read()
            fetches += 1

    async def console(session: aiohttp.ClientSession, token: str) -> None:
        nonlocal ready
        lags: list[float] = []
        ids: list[int] = []
        results.append((lags, ids))
        pending: set[int] = set()
        carried: set[int] = set()
        due = asyncio.Event()
        fetcher = asyncio.create_task(fetch_rows(session, token, pending, due))
        try:
            headers = {"Authorization": f"Bearer {token}", "Last-Event-ID": str(after)}
            async with session.get(
                f"{url}/agent/v1/events", headers=headers, timeout=aiohttp.ClientTimeout(None)
            ) as resp:
                resp.raise_for_status()
                await resp.content.readline()  # "event: hello"
                ready += 1
                if ready == len(tokens):
                    out.put("ready")
                    started.set()
                # Whole chunks, split into frames here: a console reads what arrived, as the real
                # one would, without a coroutine per line.
                buffer = b""
                async for chunk in resp.content.iter_any():
                    received = time.time()
                    buffer += chunk
                    *frames, buffer = buffer.split(b"\n\n")
                    for frame in frames:
                        start = frame.find(b"\ndata: {")
                        if start >= 0 and frame.startswith(b"event: rows"):
                            # The rows the batch changed, ahead of its events (read as the console does).
                            rows = json.loads(frame[start + 7 :])["conversations"]
                            carried = {row["id"] for row in rows}
                            continue
                        if start < 0 or not frame.startswith(b"id: "):
                            continue
                        event = json.loads(frame[start + 7 :])
                        lags.append(received - event["at"])
                        ids.append(event["id"])
                        cid = event.get("conversation_id")
                        if cid is not None and cid not in carried:
                            pending.add(cid)
                    if pending:
                        due.set()
        finally:
            fetcher.cancel()

    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0)) as session:
        tasks = [asyncio.create_task(console(session, t)) for t in tokens]
        await started.wait()
        waiting = asyncio.get_running_loop().run_in_executor(None, stop.wait)
        while not waiting.done():
            # The slowest console's newest event: the main process waits for it to reach the end.
            progress.value = min((ids[-1] if ids else after) for _, ids in results)
            await asyncio.sleep(0.1)
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
    import resource

    usage = resource.getrusage(resource.RUSAGE_SELF)
    return {
        "lags": [lag for lags, _ in results for lag in lags],
        "ids": [ids for _, ids in results],
        "cpu": usage.ru_utime + usage.ru_stime,
        "fetches": fetches,
    }


# --- the run --------------------------------------------------------------------------------


def cpu_pressure() -> str:
    """The machine's CPU pressure (Linux PSI, share of time some task waited for a CPU over
    the last 10 s): latencies from a starved machine are the machine's, not the server's."""
    try:
        first = Path("/proc/pressure/cpu").read_text().splitlines()[0]
        return first.split()[1].split("=")[1] + "%"
    except (OSError, IndexError):
        return "unknown"


def _accounts(path: Path, consoles: int) -> list[str]:
    from store import Store, accounts

    with Store(path) as store:
        return [accounts.add(store, f"c{i:03d}", "agent") for i in range(consoles)]


def _quiet(path: Path, deadline: float) -> int:
    """Wait until the feed stops growing (the hub has answered everything); its last id."""
    from store import Store
    from store.feed import last_event_id

    last, quiet_since = -1, time.monotonic()
    while time.monotonic() < deadline:
        with Store(path) as store:
            now = last_event_id(store)
        if now != last:
            last, quiet_since = now, time.monotonic()
        elif time.monotonic() - quiet_since >= 1.0:
            break
        time.sleep(0.2)
    return last


def _phase_cpu(
    pid: int, go: Any, writer: Any, path: Path, progress: list[Any] | None = None
) -> float:
    """The server's CPU seconds from the writer's start until the hub is quiet and (with
    consoles) every console has received the last event: the backlog's cost counts too."""
    from console.bench.hub_http import _server_cpu

    cpu0 = _server_cpu(pid)
    go.set()
    writer.join()
    end = _quiet(path, time.monotonic() + 60)
    deadline = time.monotonic() + 120
    while any(p.value < end for p in progress or ()) and time.monotonic() < deadline:
        time.sleep(0.1)
    return _server_cpu(pid) - cpu0


def run_server(args: argparse.Namespace) -> int:
    from console.bench.hub_http import _free_port, _start_server, _stop_server, _wait_healthy
    from console.errors import UsageError
    from store import Store
    from store.feed import last_event_id, read_events

    if args.consoles < 1 or args.rate <= 0 or args.seconds <= 0 or args.client_processes < 1:
        raise UsageError("--consoles, --rate, --seconds and --client-processes must be positive")
    ctx = mp.get_context("spawn")
    with tempfile.TemporaryDirectory(prefix="tandem-bench-remote-") as tmp:
        path = Path(tmp) / "bench.db"
        conversations = min(args.conversations, 200)
        tokens = _accounts(path, args.consoles)
        port = _free_port()
        with (Path(tmp) / "serve.log").open("wb") as log:
            proc = _start_server(path, port, INTEGRATION_TOKEN, log)
            try:
                _wait_healthy(proc, port)
                url = f"http://127.0.0.1:{port}"
                print(
                    f"tandem serve --embedded on {conversations} conversations; writer at"
                    f" {args.rate:g} msg/s for {args.seconds:g} s per phase"
                )
                print(f"CPU pressure before (PSI some avg10): {cpu_pressure()}")
                # Phase 1: the writer alone, for the server's CPU without consoles.
                go = ctx.Event()
                writer = ctx.Process(
                    target=writer_main, args=(url, conversations, args.rate, args.seconds, go)
                )
                writer.start()
                cpu_alone = _phase_cpu(proc.pid, go, writer, path)
                # Phase 2: the consoles attach from the current end of the feed, then the writer.
                with Store(path) as store:
                    after = last_event_id(store)  # the consoles start from here
                # Several client processes, so the clients' own parsing is not what is measured.
                stop = ctx.Event()
                groups = [tokens[i :: args.client_processes] for i in range(args.client_processes)]
                clients = []
                for group in (g for g in groups if g):
                    out, progress = ctx.Queue(), ctx.Value("q", 0)
                    process = ctx.Process(
                        target=consoles_main, args=(url, group, after, stop, out, progress)
                    )
                    process.start()
                    clients.append((process, out, progress))
                for _, out, _ in clients:
                    if out.get(timeout=120) != "ready":
                        raise RuntimeError("the consoles did not connect")
                go = ctx.Event()
                writer = ctx.Process(
                    target=writer_main, args=(url, conversations, args.rate, args.seconds, go)
                )
                writer.start()
                cpu_with = _phase_cpu(proc.pid, go, writer, path, [p for _, _, p in clients])
                stop.set()
                results = [out.get(timeout=120) for _, out, _ in clients]
                for process, _, _ in clients:
                    process.join()
                result = {
                    "lags": [lag for r in results for lag in r["lags"]],
                    "ids": [ids for r in results for ids in r["ids"]],
                    "cpu": sum(r["cpu"] for r in results),
                    "fetches": sum(r["fetches"] for r in results),
                }
                with Store(path) as store:
                    feed = [e.id for e in read_events(store, after, 10_000_000)]
            finally:
                _stop_server(proc)
    _print(args, result, feed, cpu_alone, cpu_with)
    print(f"CPU pressure at the end (PSI some avg10): {cpu_pressure()}")
    return 0


def _print(
    args: argparse.Namespace,
    result: dict[str, Any],
    feed: list[int],
    cpu_alone: float,
    cpu_with: float,
) -> None:
    lags_ms = [lag * 1000 for lag in result["lags"]]
    feed_set = set(feed)
    gaps = repeats = behind = 0
    for ids in result["ids"]:
        repeats += len(ids) - len(set(ids))
        last = ids[-1] if ids else 0
        # A gap is a hole before the newest event a console got; what it had not got yet
        # when the run stopped is "behind", reported apart.
        gaps += len({i for i in feed_set if i <= last} - set(ids))
        behind += sum(1 for i in feed if i > last)
    print(f"the consoles' {args.client_processes} processes used {result['cpu']:.1f} CPU s")
    print(
        f"row fetches (GET wall?ids=, for rows the stream did not carry): {result['fetches']}"
        f" ({result['fetches'] / args.consoles / args.seconds:.1f} per console per second)"
    )
    print(
        f"{args.consoles} remote consoles: {len(lags_ms)} events delivered"
        f" ({len(feed)} feed events each), gaps {gaps}, repeats {repeats},"
        f" not yet delivered when the run stopped {behind}"
    )
    print(
        f"commit -> event at a remote console: p50 {percentile_or_nan(lags_ms, 0.5):.1f} ms,"
        f" p99 {percentile_or_nan(lags_ms, 0.99):.1f} ms, max {max(lags_ms, default=0):.1f} ms"
        "  (goal p99 <= 100 ms on loopback)"
    )
    # Per second of traffic: both phases carry the same writer for the same time.
    per = (cpu_with - cpu_alone) / args.consoles / args.seconds
    print(
        f"server CPU: {cpu_alone:.2f} s with the writer alone, {cpu_with:.2f} s with"
        f" {args.consoles} consoles (backlogs included): {per * 1000:.2f} ms per console per"
        f" second of traffic ({per * 100:.2f}% of a core)"
    )
