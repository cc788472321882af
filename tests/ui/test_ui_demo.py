"""`tandem demo`'s managed hub: started, waited for, stopped; a failed start is one clear line."""

from __future__ import annotations

import fcntl
import os
import select
import shlex
import signal
import struct
import subprocess
import sys
import termios
import time
from pathlib import Path

import pytest
from serve_support import free_port
from waiting import DEADLINE, wait_until

from console.cli import UsageError
from console.commands.demo import Hub
from store import Store


def test_the_hub_child_starts_and_stops(tmp_path: Path) -> None:
    db = tmp_path / "demo.db"
    Store(db).close()
    hub = Hub(db, simulate=2, speed=5.0, log=tmp_path / "hub.log", listen=None)
    hub.start()
    try:
        hub.wait_up(timeout=30)
        assert hub.proc is not None and hub.proc.poll() is None
    finally:
        hub.stop()
    assert hub.proc.returncode is not None
    assert "tandem serve:" in (tmp_path / "hub.log").read_text()


def test_a_hub_that_cannot_start_is_reported(tmp_path: Path) -> None:
    bad = tmp_path / "not-a-db"
    bad.write_text("this is not SQLite")
    hub = Hub(bad, simulate=1, speed=1.0, log=tmp_path / "hub.log", listen=None)
    hub.start()
    try:
        with pytest.raises(UsageError, match="the hub stopped at start"):
            hub.wait_up(timeout=30)
    finally:
        hub.stop()


def _demo_on_a_terminal(
    tmp_path: Path, *, shell: bool = False
) -> tuple[subprocess.Popen[bytes], int, Path]:
    """``tandem demo`` on a pseudo-terminal of its own (its controlling terminal, 120x40);
    with ``shell``, started by a shell that leads the terminal's session, as ``make demo`` in
    a terminal window is."""
    master, slave = os.openpty()
    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 40, 120, 0, 0))

    def own_terminal() -> None:
        os.setsid()
        fcntl.ioctl(0, termios.TIOCSCTTY, 0)

    db = tmp_path / "demo.db"
    cmd = [sys.executable, "-m", "console.cli", "demo", "--db", str(db), "--simulate", "2"]
    cmd += ["--listen", f"127.0.0.1:{free_port()}"]
    if shell:  # "; exit $?": the shell waits for the demo rather than becoming it
        cmd = ["/bin/sh", "-c", shlex.join(cmd) + "; exit $?"]
    proc = subprocess.Popen(
        cmd,
        stdin=slave,
        stdout=slave,
        stderr=slave,
        preexec_fn=own_terminal,
        env={**os.environ, "TERM": "xterm-256color"},
    )
    os.close(slave)
    return proc, master, db


def _read_until(master: int, marker: bytes, timeout: float = DEADLINE) -> bytes:
    """What the demo wrote to its terminal, up to ``marker`` (or until it closed it)."""
    seen = b""
    deadline = time.monotonic() + timeout
    while marker not in seen and time.monotonic() < deadline:
        ready, _, _ = select.select([master], [], [], 0.2)
        if ready:
            try:
                chunk = os.read(master, 65536)
            except OSError:  # EIO: every process on the terminal closed it
                break
            if not chunk:
                break
            seen += chunk
    return seen


def _gone(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    return False


def _demo_and_hub(proc: subprocess.Popen[bytes], db: Path) -> list[int]:
    """The pids of the demo the shell ``proc`` started, and of its hub."""
    children = Path(f"/proc/{proc.pid}/task/{proc.pid}/children")
    demo = int(wait_until(lambda: children.read_text().split(), what="the demo started")[0])
    lock = db.with_name(db.name + ".hub.lock")
    hub = int(wait_until(lambda: lock.exists() and lock.read_text().strip(), what="the hub's pid"))
    return [demo, hub]


def _take_down(proc: subprocess.Popen[bytes], master: int, pids: list[int]) -> None:
    """What a failed test leaves: the terminal, the shell, the demo and its hub."""
    if master >= 0:
        os.close(master)
    if proc.poll() is None:
        proc.kill()
    proc.wait()
    for pid in pids:
        if not _gone(pid):
            os.kill(pid, signal.SIGKILL)


def test_closing_the_terminal_stops_the_demo_and_its_hub(tmp_path: Path) -> None:
    """A closed terminal window (tmux kill-session, say). The demo used to stay for ever, with
    its hub simulating customers, and the next ``make demo`` was refused ("another tandem serve
    is already running"): no SIGHUP reached it (the shell leads the terminal's session), its
    writes to the dead terminal ended Textual's writer thread, and the main thread waited on
    that writer for ever."""
    proc, master, db = _demo_on_a_terminal(tmp_path, shell=True)
    pids: list[int] = []
    try:
        assert b"Tandem" in _read_until(master, b"Tandem")  # the console is up: its header
        pids = _demo_and_hub(proc, db)
        assert not any(map(_gone, pids))
        # The window closes as tmux closes one: a SIGHUP to the pane's processes, then its end
        # of the terminal goes.
        os.killpg(proc.pid, signal.SIGHUP)
        os.close(master)
        master = -1
        wait_until(lambda: all(map(_gone, pids)), what="the demo and its hub gone")
    finally:
        _take_down(proc, master, pids)


def test_a_terminal_closed_while_the_hub_starts_stops_both(tmp_path: Path) -> None:
    """Closed before the console is up (a window closed at once, a tmux server gone): the demo
    must not open its console on a terminal that is no longer there."""
    proc, master, db = _demo_on_a_terminal(tmp_path, shell=True)
    pids: list[int] = []
    try:
        pids = _demo_and_hub(proc, db)
        os.close(master)  # no SIGHUP at all: only the terminal gone
        master = -1
        wait_until(lambda: all(map(_gone, pids)), what="the demo and its hub gone")
    finally:
        _take_down(proc, master, pids)


def test_sigterm_quits_the_demo_as_q_does(tmp_path: Path) -> None:
    proc, master, db = _demo_on_a_terminal(tmp_path)
    try:
        assert b"Tandem" in _read_until(master, b"Tandem")
        lock = db.with_name(db.name + ".hub.lock")
        hub = int(
            wait_until(lambda: lock.exists() and lock.read_text().strip(), what="the hub's pid")
        )
        proc.send_signal(signal.SIGTERM)
        # The console leaves the terminal as it found it, then says where the demo's data is.
        # (After the hub's own stop: up to 5 s before it is killed, more on a loaded machine.)
        out = _read_until(master, b"tandem demo: database", timeout=2 * DEADLINE)
        assert b"tandem demo: database" in out, out[-2000:]
        assert b"\x1b[?1049l" in out  # back from the alternate screen
        assert proc.wait(timeout=DEADLINE) == 0
        assert _gone(hub)
    finally:
        os.close(master)
        if proc.poll() is None:
            proc.kill()
            proc.wait()
