"""Reopening a conversation one already owns: a draft is waiting if the customer is."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

from waiting import wait_until_async

from console.ui.widgets.composer import Composer
from store import Store, lifecycle

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from test_assist_helpers import refund_conversation  # noqa: E402


async def _until(predicate: Any) -> None:
    await wait_until_async(predicate)


async def _open(db_path: Path, cid: int) -> tuple[Any, Any]:
    from console.ui.app import TandemApp
    from console.ui.screens.conversation import ConversationScreen

    app = TandemApp(db_path, "ana", interval=0.05)
    return app, ConversationScreen


async def test_reopening_while_the_customer_waits_drafts_the_answer(db_path: Path) -> None:
    cid = refund_conversation(db_path)
    app, screen_type = await _open(db_path, cid)
    async with app.run_test(size=(160, 48)):
        await _until(lambda: cid in app.rows)
        app.open_conversation(cid)
        await _until(lambda: isinstance(app.screen, screen_type) and app.screen.loaded)
        composer = app.screen.query_one(Composer)
        await _until(lambda: composer.draft is not None and not composer.draft.streaming)
        assert composer.text.startswith(("Hi Maya", "Hello Maya"))


async def test_reopening_after_our_own_reply_drafts_nothing(db_path: Path) -> None:
    cid = refund_conversation(db_path)
    with Store(db_path) as s:
        lifecycle.agent_reply(s, cid, "ana", "Hi Maya, I'm checking the refund with the shop now.")
    app, screen_type = await _open(db_path, cid)
    async with app.run_test(size=(160, 48)):
        await _until(lambda: cid in app.rows)
        app.open_conversation(cid)
        await _until(lambda: isinstance(app.screen, screen_type) and app.screen.loaded)
        composer = app.screen.query_one(Composer)
        # The first load decides at once: the editor has the focus (the conversation is ours,
        # set a message later: focus() goes through call_later) and a draft, had one been due,
        # would be under way from that moment (and still be, or be done, by then).
        await _until(lambda: app.focused is composer.editor)
        assert not composer.streaming and composer.draft is None and composer.text == ""
