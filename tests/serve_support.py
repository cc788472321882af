"""A real ``tandem serve`` process for the tests that need one: started, known to be up, stopped.

One helper for every test that runs the server (the agent API, the channel API, the console's
remote backend, the hub workers): the same environment, the same clean-stop check (exit 0, no
traceback on stderr), and one answer to picking a port. A port found free here can be taken
before the server binds it (by another test's server when the suite runs in parallel, or as a
client connection's local port); ``tandem serve`` then keeps running without its API and says
so on its start line. :func:`start_serve` reads that line, so it never mistakes somebody
else's listener for its server, and tries another port.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

from waiting import wait_until

ROOT = Path(__file__).resolve().parents[1]
#: ``TANDEM_API_TOKEN`` of the servers started here: what an integration sends to create
#: conversations.
TOKEN = "integration-secret-for-tests"
#: Seconds a server may take to start (it loads triage's data; a shared core can stall).
START_TIMEOUT = 60.0
#: Seconds a server may take to stop after SIGTERM (it finishes what it has in hand).
STOP_TIMEOUT = 30.0


def free_port() -> int:
    """A TCP port of 127.0.0.1 nobody listens on now (see the module's note on races)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Serve:
    """One ``tandem serve`` process. Its stderr is read as it comes (:attr:`lines`), so a
    chatty server never blocks on a full pipe and a test can wait for a line."""

    def __init__(self, proc: subprocess.Popen[str]) -> None:
        self.proc = proc
        self.lines: list[str] = []
        self.url = ""
        self.port = 0
        self._sent: set[int] = set()
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self.proc.stderr is not None
        for line in self.proc.stderr:
            self.lines.append(line)

    @property
    def pid(self) -> int:
        return self.proc.pid

    @property
    def stderr(self) -> str:
        """What the server wrote to stderr so far."""
        return "".join(self.lines)

    def running(self) -> bool:
        """True while it runs; fails the test with its stderr once it exited."""
        assert self.proc.poll() is None, f"tandem serve exited: {self.stderr}"
        return True

    def line(self, words: str, *, timeout: float = START_TIMEOUT) -> str:
        """The first stderr line that contains ``words``, once written."""

        def found() -> str | None:
            hit = next((ln for ln in list(self.lines) if words in ln), None)
            if hit is None and self.proc.poll() is not None:
                self._reader.join(timeout=5)  # the last lines may still be on their way
                hit = next((ln for ln in self.lines if words in ln), None)
                assert hit is not None, f"tandem serve exited: {self.stderr}"
            return hit

        return wait_until(found, timeout=timeout, interval=0.02, what=f"{words!r} on stderr")

    def wait(self, *, timeout: float = STOP_TIMEOUT) -> str:
        """Wait for the process to end; its whole stderr. One still running after ``timeout``
        seconds is killed and fails the test."""
        try:
            self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(timeout=10)
            raise AssertionError(
                f"tandem serve did not end within {timeout} s: {self.stderr}"
            ) from None
        self._reader.join(timeout=10)
        return self.stderr

    def send(self, sig: int = signal.SIGTERM) -> None:
        """Send ``sig`` once (a second SIGTERM would land after serve gave its handler back,
        while the interpreter exits, and kill it); nothing if it already exited."""
        if self.proc.poll() is None and sig not in self._sent:
            self._sent.add(sig)
            self.proc.send_signal(sig)

    def stop(self, *, timeout: float = STOP_TIMEOUT, sig: int = signal.SIGTERM) -> str:
        """Signal it (once) and :meth:`wait` for the end; its whole stderr."""
        self.send(sig)
        return self.wait(timeout=timeout)

    def stop_cleanly(self, *, timeout: float = STOP_TIMEOUT) -> str:
        """:meth:`stop` with SIGTERM, then check it stopped as an operator expects: exit 0
        and no traceback printed. Its stderr."""
        err = self.stop(timeout=timeout)
        assert self.proc.returncode == 0, f"exit {self.proc.returncode}: {err}"
        assert "Traceback" not in err, err
        return err

    def kill(self) -> None:
        """SIGKILL: the process dies at once, mid-work."""
        self.stop(sig=signal.SIGKILL, timeout=10)


def serve_env(token: str | None = TOKEN, extra: dict[str, str] | None = None) -> dict[str, str]:
    """The environment of a server: none of the caller's ``TANDEM_*``/``OPENAI_*`` (a module
    fixture runs before the per-test isolation), the integration token, then ``extra``."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("TANDEM_", "OPENAI_"))}
    if token is not None:
        env["TANDEM_API_TOKEN"] = token
    env.update(extra or {})
    return env


def serve(
    db: str | Path, *args: str, env_extra: dict[str, str] | None = None, token: str | None = TOKEN
) -> Serve:
    """``tandem serve --db DB ARGS...`` started (not waited for)."""
    proc = subprocess.Popen(
        [sys.executable, "-m", "console.cli", "serve", "--db", str(db), *args],
        cwd=ROOT,
        env=serve_env(token, env_extra),
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    return Serve(proc)


def start_serve(
    db: str | Path,
    *args: str,
    port: int = 0,
    scheme: str = "http",
    env_extra: dict[str, str] | None = None,
    token: str | None = TOKEN,
    timeout: float = START_TIMEOUT,
) -> Serve:
    """``tandem serve`` on ``db`` with its APIs on 127.0.0.1 (``port``, or a free one), no
    replay data and no periodic log unless ``args`` say otherwise; returned once it listens.

    A port someone else took meanwhile is retried: another free port, or the same ``port``
    again until ``timeout`` (a test that restarts a server on its old address).
    """
    deadline = time.monotonic() + timeout
    while True:
        chosen = port or free_port()
        server = serve(
            db,
            *("--no-replay", "--log-interval", "0", *args),
            *("--listen", f"127.0.0.1:{chosen}"),
            env_extra=env_extra,
            token=token,
        )
        try:
            started = server.line("tandem serve: ", timeout=max(1.0, deadline - time.monotonic()))
        except BaseException:
            server.stop(sig=signal.SIGKILL, timeout=10)
            raise
        if f"channel API {scheme}://127.0.0.1:{chosen} " in started:
            server.port, server.url = chosen, f"{scheme}://127.0.0.1:{chosen}"
            return server
        server.kill()
        if "channel API not started" not in started or time.monotonic() > deadline:
            raise AssertionError(f"tandem serve did not listen on {chosen}: {server.stderr}")
        time.sleep(0.1)
