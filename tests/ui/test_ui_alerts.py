"""Alerts (issue 16, point 6): bell, Textual notification and desktop notification.

The Pilot tests run a TandemApp whose ``bell`` and ``terminal_write`` (the two calls that reach
the terminal's driver, silent under a headless run) record what they were given.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from ui_support import notes, wait_until

from console.policy import PolicySettings
from console.ui.alerts import (
    Alert,
    AlertWatch,
    ToastFolder,
    detect_protocol,
    osc_notification,
    terminal_safe,
)
from console.ui.app import TandemApp
from store import Store, lifecycle

HOSTILE = "Eve\x1b]0;owned\x07\x9c;rm -rf\u202e\nX"


class RecordingApp(TandemApp):
    def __init__(self, *args: Any, **kw: Any) -> None:
        super().__init__(*args, **kw)
        self.bells = 0
        self.written: list[str] = []

    def bell(self) -> None:
        self.bells += 1

    def terminal_write(self, data: str) -> None:
        self.written.append(data)


def _waiting(db_path: Path, name: str, level: str, waited: float = 0.0) -> int:
    at = time.time() - waited
    with Store(db_path) as s:
        cid = lifecycle.open_conversation(s, name)
        lifecycle.add_customer_message(s, cid, "help", at=at)
        lifecycle.escalate(s, cid, reasons=["fraud"], level=level, at=at)
    return cid


def test_terminal_safe_leaves_no_way_out_of_the_escape() -> None:
    safe = terminal_safe(HOSTILE)
    assert safe == "Eve]0ownedrm -rf X"
    assert not any(ord(c) < 32 or 0x7F <= ord(c) < 0xA0 for c in safe)
    assert osc_notification("osc9", "T", HOSTILE) == "\x1b]9;T: Eve]0ownedrm -rf X\x07"
    assert osc_notification("osc777", "T;x", "b") == "\x1b]777;notify;Tx;b\x07"
    assert osc_notification("none", "T", "b") == ""


def test_detect_protocol() -> None:
    assert detect_protocol({"TERM_PROGRAM": "iTerm.app"}) == "osc9"
    assert detect_protocol({"KITTY_WINDOW_ID": "1"}) == "osc9"
    assert detect_protocol({"VTE_VERSION": "7600"}) == "osc777"
    assert detect_protocol({"TERM": "foot"}) == "osc777"
    assert detect_protocol({"VTE_VERSION": "7600", "TMUX": "/tmp/x,1,0"}) == "none"
    assert detect_protocol({"TERM": "xterm-256color"}) == "none"


def _row(cid: int, state: str, level: str, since: float | None = None) -> dict[str, Any]:
    return {"id": cid, "state": state, "level": level, "waiting_since": since, "customer_name": "C"}


def test_alert_watch_modes() -> None:
    sla = PolicySettings().sla_s
    bot_empathy = _row(1, "bot", "empathy")
    queued = _row(1, "waiting", "empathy", 1000.0)
    assert AlertWatch("all", sla).entered([(bot_empathy, queued)]) is not None
    assert AlertWatch("urgent", sla).entered([(bot_empathy, queued)]) is None
    assert AlertWatch("off", sla).entered([(bot_empathy, queued)]) is None
    assert AlertWatch("all", sla).entered([(queued, queued)]) is None  # already waiting
    rose = _row(1, "waiting", "urgent", 1000.0)
    alert = AlertWatch("urgent", sla).entered([(queued, rose)])
    assert alert is not None and alert.severity == "error" and "#1" in alert.body
    assert AlertWatch("all", sla).entered([(None, _row(2, "waiting", "watch", 1.0))]) is None

    watch = AlertWatch("all", sla)
    rows = [_row(1, "waiting", "urgent", 1000.0), _row(2, "waiting", "calm", 1000.0)]
    assert watch.breached(rows, 1059.0) is None
    first = watch.breached(rows, 1061.0)
    assert first is not None and "#1 (urgent)" in first.body and "more" not in first.body
    assert watch.breached(rows, 1100.0) is None  # once per stay
    late = watch.breached(rows, 1601.0)
    assert late is not None and "#2 (calm)" in late.body
    # Claimed and back in the queue: a new stay, a new alert.
    assert watch.breached([_row(1, "waiting", "urgent", 2000.0)], 2061.0) is not None
    assert AlertWatch("urgent", sla).breached([rows[1]], 5000.0) is None
    assert AlertWatch("off", sla).breached(rows, 5000.0) is None


async def test_an_urgent_conversation_entering_the_queue_rings_and_notifies(db_path: Path) -> None:
    app = RecordingApp(db_path, "ana", interval=0.05, notify_protocol="osc777")
    async with app.run_test(size=(120, 30), notifications=True) as pilot:
        with Store(db_path) as s:
            lifecycle.open_conversation(s, "Bo")
        # The start's snapshot is in: what comes next arrives as a change.
        await wait_until(pilot, lambda: len(app.rows) == 1, what="the first snapshot")
        cid = _waiting(db_path, HOSTILE, "urgent")
        # notify() posts the notification as a message: it is listed a moment after the bell.
        await wait_until(pilot, lambda: app.bells >= 1 and notes(app), what="bell and notification")
        body = notes(app)[-1]
        assert body.startswith("Eve") and body.endswith(f"rm -rf� X #{cid} is waiting, urgent")
        assert app.written == [f"\x1b]777;notify;Tandem: a customer needs a person;{body}\x07"]
        # Nothing in the customer's name can end the sequence or start another.
        assert ";" not in body
        assert not any(ord(c) < 32 or 0x7F <= ord(c) < 0xA0 or c == "\u202e" for c in body)


async def test_a_wait_past_its_sla_rings_and_notifies(db_path: Path) -> None:
    # Already over urgent's minute when the console starts: the breach check says so.
    cid = _waiting(db_path, "Una", "urgent", waited=120.0)
    app = RecordingApp(db_path, "ana", interval=0.05, notify_protocol="osc9")
    async with app.run_test(size=(120, 30), notifications=True) as pilot:
        body = f"Una #{cid} (urgent) has waited over 60 s"
        # notify() posts the notification as a message: it is listed a moment after the bell.
        await wait_until(pilot, lambda: app.bells >= 1 and body in notes(app), what="bell and note")
        assert app.written == [f"\x1b]9;Tandem: SLA breached: {body}\x07"]


async def test_a_busy_queue_rings_once_per_gap_and_folds_its_notifications(db_path: Path) -> None:
    app = RecordingApp(db_path, "ana", interval=0.05, notify_protocol="osc9")
    app.alert_gap = 3600.0  # the whole test is inside one gap
    app.toasts = ToastFolder(3600.0)  # and inside the first notification's time on screen
    async with app.run_test(size=(120, 30), notifications=True) as pilot:
        with Store(db_path) as s:
            lifecycle.open_conversation(s, "Bo")
        await wait_until(pilot, lambda: len(app.rows) == 1, what="the first snapshot")
        first = _waiting(db_path, "Ann", "empathy")
        await wait_until(pilot, lambda: app.bells == 1, what="the first bell")
        second = _waiting(db_path, "Ben", "empathy")
        await wait_until(pilot, lambda: second in app.rows, what="Ben in the console's rows")
        await pilot.pause()
        # One notification on screen, one bell: Ben's is held, not shown over Ann's.
        entered = [n for n in notes(app) if "is waiting" in n]
        assert entered == [f"Ann #{first} is waiting, empathy"]
        assert app.bells == 1 and len(app.written) == 1 and f"#{first} " in app.written[0]
        # An urgent one is not held behind it.
        third = _waiting(db_path, "Cy", "urgent")
        await wait_until(
            pilot,
            lambda: f"Cy #{third} is waiting, urgent" in notes(app),
            what="the urgent one at once",
        )
        # When the notification on screen has gone, the held one comes.
        folded = app.toasts.due("Tandem: a customer needs a person", time.monotonic())
        assert folded is not None and folded.text == f"Ben #{second} is waiting, empathy"


def test_the_toast_folder_holds_a_kind_while_one_shows() -> None:
    folder = ToastFolder(8.0)
    a = Alert("T", "a", "warning")
    assert folder.offer(a, 100.0) == (a, None)
    assert folder.offer(Alert("T", "b", "warning", more=2), 101.0) == (None, 7.0)
    assert folder.offer(Alert("T", "c", "warning"), 102.0) == (None, None)  # its timer is set
    other = Alert("U", "x", "warning")
    assert folder.offer(other, 102.0) == (other, None)  # another kind shows at once
    assert folder.due("T", 108.0) == Alert("T", "b", "warning", more=3)  # b, its 2, and c
    assert folder.offer(a, 109.0) == (None, 7.0)  # the folded one is on screen now
    assert folder.due("U", 110.0) is None
    # Due but its timer late: the next one comes with the held ones, in one toast.
    assert folder.offer(Alert("T", "d", "warning"), 116.5) == (
        Alert("T", "a", "warning", more=1),
        None,
    )


def test_an_urgent_alert_is_not_held_behind_a_lesser_one() -> None:
    folder = ToastFolder(8.0)
    calm, urgent = Alert("T", "a", "warning"), Alert("T", "u", "error")
    assert folder.offer(calm, 100.0) == (calm, None)
    assert folder.offer(urgent, 101.0) == (urgent, None)
    assert folder.offer(Alert("T", "v", "error"), 102.0) == (None, 7.0)  # behind an urgent one
    assert folder.offer(calm, 103.0) == (None, None)
    assert folder.due("T", 109.0) == Alert("T", "v", "error", more=1)
