"""``tandem demo``: the hub with simulated customers and the agent console, zero configuration.

The hub runs as a managed child process (``tandem serve --simulate N --embedded``) on the same
SQLite file: its log goes to a file beside the database, never onto the console's screen, and
it is stopped when the console exits, however it exits.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

from console.commands.console import (
    add_console_options,
    agent_name,
    llm_settings,
    notify_protocol,
    policy_settings,
)
from console.errors import UsageError

START_TIMEOUT = 20.0
TERMINAL_CHECK_S = 0.5  # how soon a closed terminal stops the demo and its hub


def register(sub: argparse._SubParsersAction) -> None:
    parser = sub.add_parser(
        "demo",
        help="try it: simulated customers, the bot, and your agent console (offline)",
        description="Start the hub with simulated customers (embedded bot, offline) as a child "
        "process and open the agent console on the same database. Quit with q or ctrl+q; the hub "
        "stops with the console.",
        epilog="Example: tandem demo --simulate 40 --agent ana   (database: --db, else "
        "$TANDEM_DB, else a demo file in ~/.local/state/tandem)",
    )
    add_console_options(parser)
    # In the demo you play both roles: the supervisor view is one key away, not a refusal.
    parser.set_defaults(supervisor=True)
    parser.add_argument(
        "--simulate",
        metavar="N",
        type=int,
        default=24,
        help="simulated customers active at once (default 24)",
    )
    parser.add_argument(
        "--keep",
        action="store_true",
        help="continue the previous demo's conversations (default: the demo file starts afresh)",
    )
    parser.add_argument(
        "--speed",
        metavar="X",
        type=float,
        default=1.0,
        help="simulated customers type, read and wait X times faster (default 1)",
    )
    parser.add_argument(
        "--listen",
        metavar="HOST:PORT",
        default="127.0.0.1:8765",
        help="the hub's channel API and web chat page (default 127.0.0.1:8765; "
        "left out if the port is taken)",
    )
    parser.set_defaults(func=run)


def _port_free(listen: str) -> bool:
    host, _, port = listen.rpartition(":")
    try:
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
            sock.bind((host or "127.0.0.1", int(port)))
    except (OSError, ValueError):
        return False
    return True


def _die_with_parent() -> None:
    """In the child, before exec: ask Linux for SIGTERM when the parent exits (no-op elsewhere)."""
    try:
        import ctypes

        libc = ctypes.CDLL(None, use_errno=True)
        pr_set_pdeathsig = 1
        libc.prctl(pr_set_pdeathsig, signal.SIGTERM)
    except (OSError, AttributeError):
        pass


def default_demo_db() -> Path:
    """``$XDG_STATE_HOME/tandem/demo.db`` (``~/.local/state``): out of the working tree."""
    base = Path(os.environ.get("XDG_STATE_HOME") or Path.home() / ".local" / "state")
    return base / "tandem" / "demo.db"


class Hub:
    """``tandem serve`` as a child process with its output in ``log``.

    Args:
        db: the database file.
        simulate: simulated customers.
        speed: simulator speed factor.
        log: where the child's stdout and stderr go.
        listen: where the channel API listens, or ``None`` for no API.
        policy: the policy file the hub escalates by (the console shows the same SLAs).
    """

    def __init__(
        self,
        db: Path,
        simulate: int,
        speed: float,
        log: Path,
        listen: str | None,
        *,
        policy: str | None = None,
    ) -> None:
        self.db, self.simulate, self.speed, self.log, self.listen = db, simulate, speed, log, listen
        self.policy = policy
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        cmd = [
            sys.executable,
            "-m",
            "console.cli",
            "serve",
            "--db",
            str(self.db),
            "--simulate",
            str(self.simulate),
            "--speed",
            str(self.speed),
            "--embedded",
            "--log-interval",
            "30",
        ]
        cmd += ["--listen", self.listen] if self.listen else ["--no-api"]
        cmd += ["--policy", self.policy] if self.policy else []
        with self.log.open("ab") as out:
            # Own session: the terminal's signals reach the console, which then stops the hub.
            # If the console dies without stopping it (SIGKILL, a closed terminal), the kernel
            # sends the hub SIGTERM, so no orphan keeps simulating customers.
            self.proc = subprocess.Popen(
                cmd,
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=out,
                start_new_session=True,
                preexec_fn=_die_with_parent,
            )

    def wait_up(self, timeout: float = START_TIMEOUT) -> None:
        """Return once the hub has said it started; raise UsageError if it died or hung."""
        assert self.proc is not None
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise UsageError(
                    f"the hub stopped at start (exit {self.proc.returncode}): "
                    f"{self.last_line()} (log: {self.log})"
                )
            if "tandem serve:" in self._tail():
                return
            time.sleep(0.05)
        raise UsageError(f"the hub did not start within {timeout:.0f} s (log: {self.log})")

    def _tail(self) -> str:
        try:
            with self.log.open("rb") as fh:
                fh.seek(max(0, self.log.stat().st_size - 4000))
                return fh.read().decode("utf-8", "replace")
        except OSError:
            return ""

    def last_line(self) -> str:
        lines = [ln for ln in self._tail().splitlines() if ln.strip()]
        return lines[-1].strip() if lines else "no output"

    def stop(self) -> None:
        """SIGTERM (the hub finishes its batch and saves its cursor), then SIGKILL after 5 s."""
        proc = self.proc
        if proc is None or proc.poll() is not None:
            return
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=5)


def _leave_with_the_terminal(hub: Hub, fd: int) -> None:
    """Stop the hub and leave when the terminal on ``fd`` goes away (a closed window).

    The SIGHUP that says so cannot be relied on to run its handler: Python runs handlers in
    the main thread only, and that thread can already be waiting for ever on Textual's writer,
    which ended with the first write to the dead terminal. This thread does not depend on it.
    """

    def watch() -> None:
        while os.isatty(fd):
            time.sleep(TERMINAL_CHECK_S)
        try:
            hub.stop()
        finally:  # leave even if the hub would not stop: the kernel's SIGTERM reaches it then
            os._exit(128 + signal.SIGHUP)

    threading.Thread(target=watch, name="tandem-terminal", daemon=True).start()


class _Stopper:
    """What SIGHUP and SIGTERM do to the demo: the hub always stops with it.

    A closed terminal (SIGHUP) leaves nothing to restore: Textual's writes to the dead tty
    fail, its writer thread ends, the next screen update waits for it for ever, and its input
    thread spins on the closed descriptor. So the hub is stopped and the process leaves at
    once (the console's store writes are transactions: each is in or out, as when a console
    is killed). SIGTERM with the terminal still there asks the console to quit as ``q`` does.
    """

    def __init__(self, hub: Hub) -> None:
        self.hub = hub
        self.app: Any = None  # the console, once it runs

    def __call__(self, signum: int, _frame: object) -> None:
        app = self.app
        loop = asyncio._get_running_loop()  # the console's, when the signal lands in it
        if signum == signal.SIGHUP or app is None or loop is None or not app.is_running:
            self.hub.stop()
            os._exit(128 + signum)
        loop.call_soon_threadsafe(app.exit)  # the one loop call safe from a signal handler


def _start_afresh(db: Path) -> None:
    """Remove the previous demo's scratch database: its simulated customers left with the
    process that played them, so their conversations would wait in the queue for ever."""
    from console.hub.runner import one_hub_per_database

    lock = one_hub_per_database(db)  # refuses (one line) while another demo or serve uses it
    if lock is not None:
        lock.close()
    for suffix in ("", "-wal", "-shm", ".hub.log"):
        Path(f"{db}{suffix}").unlink(missing_ok=True)


def run(args: argparse.Namespace) -> int:
    if args.simulate < 0:
        raise UsageError("--simulate must be 0 or more")
    if args.speed <= 0:
        raise UsageError("--speed must be positive")
    settings = policy_settings(args)
    agent = agent_name(args.agent)
    llm = llm_settings()  # for the console's drafts (the demo's bot stays embedded)
    db = Path(args.db or os.environ.get("TANDEM_DB") or default_demo_db())
    if not args.db and not os.environ.get("TANDEM_DB"):
        db.parent.mkdir(parents=True, exist_ok=True)
        if not args.keep:
            _start_afresh(db)
    from store import Store

    Store(db).close()  # create and migrate once, before two processes race to
    log = db.with_name(db.name + ".hub.log")
    listen = args.listen if _port_free(args.listen) else None
    hub = Hub(db, args.simulate, args.speed, log, listen, policy=args.policy)
    # Watched from the start: a window closed while the hub starts up leaves no terminal to run on.
    tty = next((fd for fd in (0, 1, 2) if os.isatty(fd)), None)
    hub.start()
    if tty is not None:
        _leave_with_the_terminal(hub, tty)
    stopper = _Stopper(hub)
    for sig in (signal.SIGHUP, signal.SIGTERM):
        signal.signal(sig, stopper)
    try:
        hub.wait_up()
        from console.ui.app import TandemApp

        where = (
            f"be a customer yourself at http://{listen}/"
            if listen
            else f"{args.listen} is taken: no web chat this time"
        )
        notice = f"demo: {args.simulate} simulated customers · {where} · database {db}"
        app = TandemApp(
            db,
            agent,
            supervisor=args.supervisor,
            policy=settings,
            policy_path=Path(args.policy) if args.policy else None,
            notice=notice,
            llm=llm,
            alerts=args.alerts,
            notify_protocol=notify_protocol(args),
        )
        stopper.app = app
        app.run()
    finally:
        hub.stop()
    print(f"tandem demo: database {db} (hub log {log})")
    return 0
