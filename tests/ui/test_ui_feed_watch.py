"""The reader follows the transcript of the conversation screen that asked last.

An agent who leaves a conversation and opens it again at once gets a new screen while the
old one is still being taken down: the new screen's watch and the old one's end cross.
"""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any

from textual.widgets import Static
from ui_support import wait_until
from waiting import wait_until as wait_sync

from console.backend import LocalBackend
from console.ui.app import TandemApp
from console.ui.feed import FeedReader, TranscriptChanged
from console.ui.screens.conversation import ConversationScreen
from store import Store, lifecycle


def _conversation(db_path: Path) -> int:
    with Store(db_path) as s:
        cid = lifecycle.open_conversation(s, "Maya")
        lifecycle.add_customer_message(s, cid, "my card was blocked abroad")
    return cid


def _texts(screen: ConversationScreen) -> str:
    return " ".join(str(w.render()) for w in screen.query(".msg").results(Static))


async def test_a_second_screen_on_the_same_conversation_loads_it_in_full(db_path: Path) -> None:
    cid = _conversation(db_path)
    app = TandemApp(db_path, "ana", interval=0.05)
    async with app.run_test(size=(160, 48)) as pilot:
        await wait_until(pilot, lambda: cid in app.rows, what="the tile")
        first = ConversationScreen(cid)
        app.push_screen(first)
        await wait_until(pilot, lambda: first.loaded, what="the first screen loaded")
        # The same conversation again before the first screen is gone: it was already the one
        # followed, and the reader gave the new screen nothing (it showed 'loading…' for ever).
        second = ConversationScreen(cid)
        app.push_screen(second)
        await wait_until(
            pilot, lambda: "blocked abroad" in _texts(second), what="the second screen loaded"
        )


class _Collector:
    """Stands where the app is: takes the reader's messages and applies them at once."""

    def __init__(self) -> None:
        self.reader: FeedReader | None = None
        self.got: list[Any] = []
        self.lock = threading.Lock()

    def post_message(self, message: Any) -> bool:
        with self.lock:
            self.got.append(message)
        assert self.reader is not None
        self.reader.applied()
        return True

    def transcripts(self) -> list[TranscriptChanged]:
        with self.lock:
            return [m for m in self.got if isinstance(m, TranscriptChanged)]


def test_a_screen_closing_after_the_next_one_watched_leaves_its_watch(db_path: Path) -> None:
    cid = _conversation(db_path)
    app = _Collector()
    reader = FeedReader(app, LocalBackend(db_path, "ana"), interval=0.05)  # type: ignore[arg-type]
    app.reader = reader
    reader.start()
    try:
        old = reader.watch(cid)
        wait_sync(lambda: any(m.full for m in app.transcripts()), what="the first load")
        new = reader.watch(cid)  # the next screen, before the old one's unmount
        wait_sync(lambda: sum(m.full for m in app.transcripts()) == 2, what="the second load")
        reader.unwatch(old)  # the old screen's unmount, last
        assert reader.watching == cid
        with Store(db_path) as s:
            mid = lifecycle.add_customer_message(s, cid, "hello? still there?").message_id
        wait_sync(
            lambda: any(mid in [x["id"] for x in m.messages] for m in app.transcripts()),
            what="the new message, followed",
        )
        reader.unwatch(new)
        assert reader.watching is None
    finally:
        reader.stop()
