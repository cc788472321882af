"""Agents see what the bot's LLM did: a count on the tile, the reason under the turn."""

from __future__ import annotations

from pathlib import Path

from fake_openai import FakeOpenAI
from ui_support import wait_until

from console.config import LLMConfig
from console.hub import make_hub
from console.ui.app import TandemApp
from console.ui.screens.conversation import ConversationScreen
from store import Store, lifecycle


def _plain(app: TandemApp) -> str:
    return "\n".join(strip.text for strip in app.screen._compositor.render_strips())


def _widget_text(widget: object) -> str:
    lines = widget.render_lines(widget.region.reset_offset)  # type: ignore[attr-defined]
    return "\n".join(line.text for line in lines)


async def test_an_ungrounded_llm_reply_is_flagged_on_the_tile_and_the_turn(
    db_path: Path, fake_openai: FakeOpenAI
) -> None:
    fake_openai.tool_args = {
        "reply": "You can top up £2,000 a month.",
        "handoff": False,
        "kb_ids": ["KB-015"],
    }
    with Store(db_path) as s:
        cid = lifecycle.open_conversation(s, "Maya")
        lifecycle.add_customer_message(s, cid, "how much can I top up by debit card")
    # A generous timeout: the first request also imports openai, slow on a busy machine. The
    # drain's own deadline (10 s unless told) must not be the shorter one.
    hub = make_hub(db_path, llm=LLMConfig(base_url=fake_openai.base_url, model="m", timeout=60))
    await hub.drain(timeout=60)
    hub.close()
    app = TandemApp(db_path, "me", interval=0.05)
    async with app.run_test(size=(120, 40)) as pilot:
        await wait_until(pilot, lambda: "⚠llm 1" in _plain(app), what="the tile's count")
        await pilot.click("Tile")
        await wait_until(
            pilot,
            lambda: isinstance(app.screen, ConversationScreen) and app.screen.loaded,
            what="conversation",
        )

        def bot_turn() -> str:
            # Words only: the annotation wraps at the transcript's width.
            return " ".join(" ".join(_widget_text(w) for w in app.screen.query(".msg-bot")).split())

        await wait_until(pilot, lambda: "not grounded" in bot_turn(), what="the annotation")
        text = bot_turn()
        assert "⚠ LLM reply not sent, not grounded: amount £2,000 is not in KB-015" in text
        assert "the model wrote (not sent): You can top up £2,000 a month." in text
