"""The console stays responsive while another process holds the database's write lock.

Writes go through the app's writer thread (console/ui/writer.py). Before, a claim made on the
event loop waited there for SQLite's busy timeout: no key was handled until it gave up.
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
from ui_support import notes, type_into, wait_until

from console.ui.app import TandemApp
from console.ui.screens.conversation import ConversationScreen
from console.ui.screens.wall import WallScreen
from console.ui.widgets.composer import Composer
from store import Store, lifecycle
from store.queries import get_conversation, transcript

SIZE = (160, 48)

# Another process that takes a file's write lock (BEGIN IMMEDIATE) when told "lock PATH" and
# commits when told "unlock"; one per module, so each test does not pay for a Python start.
LOCKER = """
import sys
from store import Store
for line in sys.stdin:
    store = Store(line.split(" ", 1)[1].strip())
    with store.write():
        print("LOCKED", flush=True)
        assert sys.stdin.readline().strip() == "unlock"
    store.close()
    print("RELEASED", flush=True)
"""


@pytest.fixture(scope="module")
def locker() -> Iterator[subprocess.Popen[str]]:
    # Module-scoped, so started before the per-test isolation: it gets none of ours either.
    env = {k: v for k, v in os.environ.items() if not k.startswith(("TANDEM_", "OPENAI_"))}
    proc = subprocess.Popen(
        [sys.executable, "-c", LOCKER],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
        env=env,
    )
    yield proc
    assert proc.stdin is not None
    proc.stdin.close()
    proc.wait(timeout=30)


class Lock:
    """The write lock on one file, held by the locker process until :meth:`release`."""

    def __init__(self, proc: subprocess.Popen[str]) -> None:
        self.proc = proc
        self.held = False

    def _say(self, line: str, answer: str) -> None:
        assert self.proc.stdin is not None and self.proc.stdout is not None
        self.proc.stdin.write(line + "\n")
        self.proc.stdin.flush()
        assert self.proc.stdout.readline().strip() == answer

    @property
    def holding(self) -> bool:
        """Taken and not released, and the process holding it is alive."""
        return self.held and self.proc.poll() is None

    def take(self, db_path: Path) -> None:
        self._say(f"lock {db_path}", "LOCKED")
        self.held = True

    def release(self) -> None:
        """Let the locking process commit (idempotent)."""
        if self.held:
            self._say("unlock", "RELEASED")
            self.held = False


@contextmanager
def write_lock(proc: subprocess.Popen[str], db_path: Path) -> Iterator[Lock]:
    """Another process holds the write lock on ``db_path`` until the block ends (or ``release``)."""
    lock = Lock(proc)
    lock.take(db_path)
    try:
        yield lock
    finally:
        lock.release()


def _conversations(db_path: Path, n: int) -> list[int]:
    with Store(db_path) as s:
        cids = []
        for i in range(n):
            cid = lifecycle.open_conversation(s, f"Customer {i}")
            lifecycle.add_customer_message(s, cid, "I need a person please")
            lifecycle.escalate(s, cid, reasons=["human_request"], level="empathy", score=0.7)
            cids.append(cid)
    return cids


def _owner(db_path: Path, cid: int) -> str | None:
    # A read: in WAL mode it does not wait for the other process's write lock.
    with Store(db_path, migrate=False) as s:
        return get_conversation(s, cid)["owner"]


async def test_keys_work_while_a_claim_waits_for_the_lock_and_it_completes_when_released(
    db_path: Path, monkeypatch: pytest.MonkeyPatch, locker: subprocess.Popen[str]
) -> None:
    # Longer than the test can take: only the lock's release lets the claim through.
    monkeypatch.setenv("TANDEM_BUSY_TIMEOUT_MS", "60000")
    cids = _conversations(db_path, 3)
    app = TandemApp(db_path, "me", interval=0.05)
    async with app.run_test(size=SIZE, notifications=True) as pilot:
        await wait_until(pilot, lambda: set(cids) <= set(app.rows), what="the tiles")
        wall = app.screen
        assert isinstance(wall, WallScreen)
        with write_lock(locker, db_path) as lock:
            wanted = wall.cursor
            assert wanted is not None
            await pilot.press("t")
            # The claim waits for the lock; the keys do not.
            await pilot.press("right")
            assert wall.cursor not in (None, wanted)
            await pilot.press("2")  # the "needs a human" filter
            assert wall.filter == "needs"
            await type_into(pilot, "slash", "wall-search", "Customer", enter=False)
            assert wall.query_text == "Customer"
            await pilot.press("escape")
            assert wall.query_text == "" and app.screen is wall
            # All of that happened while the claim was still waiting: nothing was stored,
            # nothing was said, and the locking process still holds the lock.
            assert lock.holding and _owner(db_path, wanted) is None
            assert not notes(app)
            lock.release()
            await wait_until(
                pilot,
                lambda: isinstance(app.screen, ConversationScreen) and app.screen.mine,
                what="the claim goes through once the lock is released",
            )
        conv = app.screen
        assert isinstance(conv, ConversationScreen) and conv.conversation_id == wanted
        assert _owner(db_path, wanted) == "me"
        # focus() takes effect a message later (Textual sets it with call_later).
        editor = conv.query_one(Composer).editor
        await wait_until(pilot, lambda: app.focused is editor, what="the editor focused")


async def test_a_claim_that_outwaits_the_busy_timeout_fails_in_one_line_and_can_be_retried(
    db_path: Path, monkeypatch: pytest.MonkeyPatch, locker: subprocess.Popen[str]
) -> None:
    monkeypatch.setenv("TANDEM_BUSY_TIMEOUT_MS", "300")
    (cid,) = _conversations(db_path, 1)
    app = TandemApp(db_path, "me", interval=0.05)
    async with app.run_test(size=SIZE, notifications=True) as pilot:
        await wait_until(pilot, lambda: cid in app.rows, what="the tile")
        with write_lock(locker, db_path):
            await pilot.press("t")
            await wait_until(
                pilot, lambda: any("locked" in n for n in notes(app)), what="the failure"
            )
            (said,) = [n for n in notes(app) if "locked" in n]
            assert "\n" not in said and "Traceback" not in said
            assert isinstance(app.screen, WallScreen)
        assert _owner(db_path, cid) is None
        await pilot.press("t")  # the lock is gone: the same key works now
        await wait_until(
            pilot,
            lambda: isinstance(app.screen, ConversationScreen) and app.screen.mine,
            what="the second claim",
        )
        assert _owner(db_path, cid) == "me"


async def test_a_reply_waiting_for_the_lock_is_sent_once_and_other_keys_still_work(
    db_path: Path, monkeypatch: pytest.MonkeyPatch, locker: subprocess.Popen[str]
) -> None:
    monkeypatch.setenv("TANDEM_BUSY_TIMEOUT_MS", "60000")
    (cid,) = _conversations(db_path, 1)
    app = TandemApp(db_path, "me", interval=0.05)
    async with app.run_test(size=SIZE, notifications=True) as pilot:
        await wait_until(pilot, lambda: cid in app.rows, what="the tile")
        await pilot.press("t")
        await wait_until(
            pilot,
            lambda: isinstance(app.screen, ConversationScreen) and app.screen.mine,
            what="owned",
        )
        conv = app.screen
        assert isinstance(conv, ConversationScreen)
        composer = conv.query_one(Composer)
        await wait_until(pilot, lambda: composer.draft is not None and not composer.streaming)
        composer.clear()
        await pilot.press(*"On it.")
        with write_lock(locker, db_path) as lock:
            await pilot.press("ctrl+s")
            # The reply waits for the lock. Its text stays as sent, a second ctrl+s does not
            # send it twice, and the other keys work: a note is written meanwhile.
            await pilot.press(*" more", "ctrl+s")
            assert composer.text == "On it."
            await type_into(pilot, "ctrl+n", "note-input", "VIP", enter=False)
            note = conv.query_one("#note-input")
            assert app.focused is note and note.value == "VIP"  # type: ignore[attr-defined]
            await pilot.press("escape")
            # focus() takes effect a message later (Textual sets it with call_later).
            await wait_until(pilot, lambda: app.focused is composer.editor, what="editor again")
            assert lock.holding
            with Store(db_path) as s:
                assert all(m["role"] != "agent" for m in transcript(s, cid))
        status = composer.query_one(".composer--status")
        await wait_until(pilot, lambda: "sent (message" in str(status.content), what="sent")
        with Store(db_path) as s:
            replies = [m["text"] for m in transcript(s, cid) if m["role"] == "agent"]
        assert replies == ["On it."]
        assert composer.text == "" and not composer.editor.read_only
        await pilot.press(*"Next")
        assert composer.text == "Next"
