"""Two consoles and a hub as separate processes on one database (issue #6, acceptance 2)."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

from waiting import wait_until

from store import Store, lifecycle
from store.queries import get_conversation, transcript

DRIVER = Path(__file__).with_name("console_driver.py")


def _spawn(*args: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, *args],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def _expect(proc: subprocess.Popen[str], prefix: str, timeout: float = 20.0) -> str:
    assert proc.stdout is not None
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        line = proc.stdout.readline()
        if not line:
            err = proc.stderr.read() if proc.stderr else ""
            raise AssertionError(f"process ended before {prefix!r}: {err[-2000:]}")
        if line.startswith(prefix):
            return line.strip()
    raise AssertionError(f"no {prefix!r} within {timeout} s")


def test_a_claim_in_one_console_shows_in_the_other_and_stops_the_bot(db_path: Path) -> None:
    with Store(db_path) as s:
        cid = lifecycle.open_conversation(s, "Maya")
    procs: list[subprocess.Popen[str]] = []
    try:
        hub = _spawn(
            "-m",
            "console.cli",
            "serve",
            "--db",
            str(db_path),
            "--no-api",
            "--embedded",
            "--log-interval",
            "0",
        )
        procs.append(hub)
        with Store(db_path) as s:
            lifecycle.add_customer_message(s, cid, "how long does a transfer to another bank take?")

            def bot_answers() -> bool:
                return any(m["role"] == "bot" for m in transcript(s, cid))

            wait_until(bot_answers, timeout=30, what="the bot's answer")  # the hub is live
        ana = _spawn(str(DRIVER), str(db_path), "ana", "claim", str(cid))
        bob = _spawn(str(DRIVER), str(db_path), "bob", "watch", str(cid), "ana")
        procs += [ana, bob]
        _expect(ana, "READY")
        _expect(bob, "READY")
        assert ana.stdin is not None
        ana.stdin.write("go\n")
        ana.stdin.flush()
        _expect(ana, "CLAIMED")
        _expect(bob, "SEEN")  # how fast is `tandem bench console`'s business, not a test's
        # Bob's own try is refused with the winner's name.
        notes = []
        while (line := _expect(bob, "")) != "DONE":
            notes.append(line)
        assert "NOTE taken by ana" in notes
        # The customer writes again: the bot, in its own process, stays silent now.
        with Store(db_path) as s:
            bots_before = sum(m["role"] == "bot" for m in transcript(s, cid))
            mid = lifecycle.add_customer_message(s, cid, "hello? is anyone there?").message_id

            def triaged() -> bool:
                # The hub's last act on a customer message: its triage level is stored (when
                # the bot owns the conversation, in the same transaction as the bot's answer).
                return any(m["id"] == mid and m["level"] for m in transcript(s, cid))

            wait_until(triaged, timeout=30, what="the hub handling the new message")
            conv = get_conversation(s, cid)
            assert (conv["state"], conv["owner"]) == ("human", "ana")
            assert sum(m["role"] == "bot" for m in transcript(s, cid)) == bots_before
        assert hub.poll() is None, "the hub died"
    finally:
        for p in procs:
            if p.poll() is None:
                if p.stdin:
                    p.stdin.close()
                p.terminate()
            try:
                p.wait(timeout=10)
            except subprocess.TimeoutExpired:
                p.kill()
