"""Consoles over the network (``tandem console --server``) against a real ``tandem serve``.

Two consoles race for one conversation; a disabled account's console is signed out; a
dropped connection is shown and the feed resumes from the last event, without a gap or a
repeat. (The wall, take-over, drafts, hand back and supervisor tests run over both backends:
see the ``consoles`` fixture.)
"""

from __future__ import annotations

import os
import subprocess
import sys
import threading
from pathlib import Path

import pytest
from remote_support import Consoles
from serve_support import start_serve
from ui_support import notes, wait_until
from waiting import wait_until as wait_sync

from console.backend import SessionEnded
from console.backend.remote import RemoteBackend
from store import Store, accounts, lifecycle
from store.feed import read_events
from store.queries import get_conversation

SIZE = (160, 48)
DRIVER = Path(__file__).with_name("remote_console_driver.py")


def _waiting(db_path: Path) -> int:
    with Store(db_path) as s:
        cid = lifecycle.open_conversation(s, "Maya")
        lifecycle.add_customer_message(s, cid, "I was charged twice, I want a person")
        lifecycle.escalate(s, cid, reasons=["human_request"], level="empathy", score=0.7)
    return cid


@pytest.fixture
def remote(db_path: Path) -> Consoles:
    made = Consoles("remote", db_path)
    yield made
    made.close()


def test_two_remote_consoles_race_to_claim_one_wins_the_other_is_told_who(
    db_path: Path, remote: Consoles
) -> None:
    """Two consoles, each in its own process, connected to one server, press t on the same
    tile at once: one gets the conversation, the other is told who did."""
    cid = _waiting(db_path)
    remote.backend("ana").close()  # the server is up and both have accounts
    remote.backend("bob").close()
    procs = {}
    try:
        for name in ("ana", "bob"):
            procs[name] = subprocess.Popen(
                [sys.executable, str(DRIVER), remote.url, str(cid)],
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                text=True,
                env={**os.environ, "TANDEM_TOKEN": remote.tokens[name]},
            )
        for proc in procs.values():
            assert _line(proc).startswith("READY")
        for proc in procs.values():
            assert proc.stdin is not None
            proc.stdin.write("go\n")
            proc.stdin.flush()
        outcome = {name: _line(proc) for name, proc in procs.items()}
    finally:
        for proc in procs.values():
            proc.kill()
            proc.communicate(timeout=10)
    winners = [name for name, line in outcome.items() if line == "WON"]
    assert len(winners) == 1, outcome
    loser = "bob" if winners == ["ana"] else "ana"
    assert outcome[loser] == f"LOST taken by {winners[0]}", outcome
    with Store(db_path) as s:
        assert get_conversation(s, cid)["owner"] == winners[0]


def _line(proc: subprocess.Popen[str]) -> str:
    assert proc.stdout is not None
    line = proc.stdout.readline()
    if not line:
        err = proc.stderr.read() if proc.stderr else ""
        raise AssertionError(f"the console process ended: {err[-2000:]}")
    return line.strip()


async def test_a_disabled_account_is_signed_out_and_its_stream_closes(
    db_path: Path, remote: Consoles
) -> None:
    cid = _waiting(db_path)
    app = remote.app("ana")
    async with app.run_test(size=SIZE, notifications=True) as pilot:
        await wait_until(pilot, lambda: cid in app.rows, what="the tile")
        with Store(db_path) as s:
            accounts.set_disabled(s, "ana")
        # The notification is a message of its own, handled just after the state changed.
        await wait_until(
            pilot,
            lambda: (
                app.connection_problem == "ended" and any("session ended" in n for n in notes(app))
            ),
            what="the session ended, and said so",
        )
        # Nothing more arrives: the reader stopped with the stream, and a move is refused.
        await wait_until(pilot, lambda: not app.reader._thread.is_alive(), what="reader stopped")
        with pytest.raises(SessionEnded):
            app.backend.claim(cid)
        with Store(db_path) as s:
            assert get_conversation(s, cid)["state"] == "waiting"


def test_the_feed_resumes_after_a_dropped_connection_without_gap_or_repeat(
    db_path: Path, remote: Consoles
) -> None:
    """The server goes away mid-traffic and comes back on the same address: the events
    received are exactly the store's, in order, once each; the drop was reported."""
    cid = _waiting(db_path)
    backend = remote.backend("ana")
    assert isinstance(backend, RemoteBackend)
    wake = threading.Event()
    states: list[str | None] = []
    feed = backend.open_feed(wake, states.append)
    _, start = feed.snapshot()
    got: list[int] = []

    def drain() -> None:
        got.extend(e.id for e in feed.poll())

    def add(n: int) -> None:
        with Store(db_path) as s:
            for i in range(n):
                lifecycle.add_customer_message(s, cid, f"message {len(got)}-{i}")

    try:
        add(5)
        wait_sync(lambda: drain() or len(got) >= 5, what="first events")
        assert remote.server is not None
        remote.server.stop_cleanly()
        wait_sync(lambda: states and states[-1] is not None, what="the drop reported")
        add(7)  # written while the console is cut off
        remote.server = start_serve(db_path, port=remote.server.port)
        add(3)
        with Store(db_path) as s:
            expected = [e.id for e in read_events(s, start, 10_000)]
        wait_sync(lambda: drain() or len(got) >= len(expected), what="caught up")
        # (The hub writes events of its own meanwhile: compare up to the last one received.)
        with Store(db_path) as s:
            stored = [e.id for e in read_events(s, start, 10_000) if e.id <= got[-1]]
        assert got == stored  # no gap, no repeat, in order
        assert states[-1] is None  # the banner went away
        assert feed.reconnects >= 1
    finally:
        feed.close()
        backend.close()


async def test_a_dropped_connection_is_shown_until_the_console_is_back(
    db_path: Path, remote: Consoles
) -> None:
    cid = _waiting(db_path)
    app = remote.app("ana")
    async with app.run_test(size=SIZE, notifications=True) as pilot:
        await wait_until(pilot, lambda: cid in app.rows, what="the tile")
        assert remote.server is not None
        remote.server.stop_cleanly()
        await wait_until(
            pilot,
            lambda: (
                app.connection_problem is not None and any("reconnecting" in n for n in notes(app))
            ),
            what="the banner",
        )
        with Store(db_path) as s:  # a customer writes while the console is cut off
            lifecycle.add_customer_message(s, cid, "hello? anyone?")
        remote.server = start_serve(db_path, port=remote.server.port)
        # Looked for at once: a notification goes away after 5 s, and on a loaded machine the
        # message below can take longer than that to show.
        await wait_until(
            pilot,
            lambda: (
                app.connection_problem is None
                and any("live updates are back" in n for n in notes(app))
            ),
            what="reconnected, and said so",
        )
        await wait_until(
            pilot,
            lambda: any(t["text"] == "hello? anyone?" for t in app.rows[cid].get("turns") or ()),
            what="the message written meanwhile",
        )


def test_login_keeps_the_token_for_its_owner_only_and_the_console_needs_one(
    db_path: Path, remote: Consoles, tmp_path: Path
) -> None:
    remote.backend("ana").close()  # the server is up, ana has an account
    env = {k: v for k, v in os.environ.items() if k != "TANDEM_TOKEN"}
    env["XDG_CONFIG_HOME"] = str(tmp_path / "config")

    def tandem(*args: str, stdin: str = "") -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "console.cli", *args],
            input=stdin,
            capture_output=True,
            text=True,
            env=env,
            timeout=60,
        )

    refused = tandem("login", remote.url, stdin="tdm_not-a-real-token\n")
    assert refused.returncode == 1 and "invalid" in refused.stderr
    assert "Traceback" not in refused.stderr
    nothing = tandem("console", "--server", remote.url)
    assert nothing.returncode == 1 and f"tandem login {remote.url}" in nothing.stderr
    mixed = tandem("console", "--server", remote.url, "--agent", "sam")
    assert mixed.returncode == 1 and "drop --agent" in mixed.stderr
    ok = tandem("login", remote.url, stdin=remote.tokens["ana"] + "\n")
    assert ok.returncode == 0 and "as ana (agent)" in ok.stdout
    kept = tmp_path / "config" / "tandem" / "tokens.json"
    assert kept.stat().st_mode & 0o777 == 0o600
    assert kept.parent.stat().st_mode & 0o777 == 0o700
    assert remote.tokens["ana"] not in ok.stdout + ok.stderr  # never echoed
    kept.chmod(0o644)
    loose = tandem("console", "--server", remote.url)
    assert loose.returncode == 1 and "readable by others" in loose.stderr
