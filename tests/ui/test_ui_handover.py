"""The hand-over summary above the transcript when a person is about to take over, or has."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from textual.widgets import Static
from ui_support import wait_until

from console.ui.app import TandemApp
from console.ui.screens.conversation import ConversationScreen
from store import Store, lifecycle

SIZE = (160, 48)


def _panel(app: Any) -> str:
    found = app.screen.query("#handover")  # empty until the pushed screen has composed
    return str(found.first(Static).render()) if found else ""


async def test_the_summary_names_the_request_and_the_reasons(db_path: Path) -> None:
    with Store(db_path) as s:
        cid = lifecycle.open_conversation(s, "Maya")
        mid = lifecycle.add_customer_message(
            s, cid, "hi. There is a payment of 49.99 [b]I did not make[/b]. Can you stop it?"
        ).message_id
        lifecycle.bot_reply(s, cid, "I'm not sure about that one.", reply_to=mid, fallback=True)
        calm = lifecycle.open_conversation(s, "Ben")
        lifecycle.add_customer_message(s, calm, "how do I change my address?")
        lifecycle.escalate(s, cid, reasons=["fraud"], level="urgent", score=0.9)
    app = TandemApp(db_path, "ana", interval=0.05)
    async with app.run_test(size=SIZE) as pilot:
        await wait_until(pilot, lambda: cid in app.rows and calm in app.rows, what="tiles")
        app.push_screen(ConversationScreen(cid))
        await wait_until(pilot, lambda: "Wants:" in _panel(app), what="the summary")
        text = _panel(app)
        assert "49.99 [b]I did not make[/b]" in text  # the customer's words, as text
        assert "reporting fraud" in text and "said it did not know 1 time" in text
        assert app.screen.query_one("#handover", Static).has_class("-shown")

        # A conversation still with the bot has nobody to brief: no panel.
        app.pop_screen()
        app.push_screen(ConversationScreen(calm))
        screen = app.screen
        await wait_until(pilot, lambda: getattr(screen, "loaded", False), what="transcript")
        # The load decides at once whether to brief anyone: no summary was asked for.
        assert screen._summarised_state is None
        assert not screen.query_one("#handover", Static).has_class("-shown")
