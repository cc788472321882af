"""Agent protection in the console: abusive customer text is masked until the agent reveals it."""

from __future__ import annotations

from pathlib import Path

from ui_support import wait_until

from console.ui.app import TandemApp
from console.ui.model import MASKED_SHORT, MASKED_TEXT
from console.ui.screens.conversation import ConversationScreen
from store import Store, lifecycle
from store.feed import read_events

INSULT = "you useless idiots"
ABUSE = lifecycle.TriageMark(level="empathy", score=0.7, reasons=["abuse"])


def _plain(app: TandemApp) -> str:
    return "\n".join(strip.text for strip in app.screen._compositor.render_strips())


def _msg_text(app: TandemApp) -> str:
    # Each message widget as it renders (the transcript keeps to its end).
    return "\n".join(
        "\n".join(line.text for line in w.render_lines(w.region.reset_offset))
        for w in app.screen.query(".msg")
    )


def _abusive_conversation(db_path: Path) -> tuple[int, int]:
    with Store(db_path) as s:
        cid = lifecycle.open_conversation(s, "Rex")
        first = lifecycle.add_customer_message(s, cid, "where is my new card").message_id
        lifecycle.record_triage(s, cid, lifecycle.TriageMark("calm", 0.1), message_id=first)
        lifecycle.bot_reply(s, cid, "Cards arrive in 5 days.", reply_to=first)
        mid = lifecycle.add_customer_message(s, cid, f"{INSULT}, where is my card").message_id
        lifecycle.record_triage(s, cid, ABUSE, message_id=mid)
        lifecycle.escalate(s, cid, reasons=["abuse"], level="empathy")
    return cid, mid


async def test_abusive_text_is_masked_until_revealed_and_the_reveal_is_recorded(
    db_path: Path,
) -> None:
    cid, mid = _abusive_conversation(db_path)
    app = TandemApp(db_path, "me", interval=0.05)
    async with app.run_test(size=(130, 40)) as pilot:
        await wait_until(pilot, lambda: MASKED_SHORT in _plain(app), what="the masked tile")
        assert INSULT not in _plain(app)
        app.open_conversation(cid)
        await wait_until(
            pilot,
            lambda: isinstance(app.screen, ConversationScreen) and app.screen.loaded,
            what="the conversation",
        )
        screen = app.screen
        # The hand-over panel quotes the customer, never the abusive message.
        await wait_until(
            pilot, lambda: screen.query_one("#handover").has_class("-shown"), what="summary"
        )
        await wait_until(pilot, lambda: "where is my new card" in _plain(app), what="quote")
        await wait_until(pilot, lambda: MASKED_TEXT in _msg_text(app), what="masked message")
        assert INSULT not in _plain(app) and INSULT not in _msg_text(app)
        with Store(db_path) as s:
            assert not [e for e in read_events(s) if e.kind == "revealed"]

        await pilot.press("v")
        await wait_until(pilot, lambda: INSULT in _msg_text(app), what="revealed text")
        assert MASKED_TEXT not in _msg_text(app)
        with Store(db_path) as s:
            revealed = [e for e in read_events(s) if e.kind == "revealed"]
        assert [(e.actor, e.message_id, e.conversation_id) for e in revealed] == [("me", mid, cid)]

        # Opened again, the agent's reveal holds (read from the store); nothing is left to show.
        await pilot.press("escape")
        app.open_conversation(cid)
        await wait_until(
            pilot,
            lambda: isinstance(app.screen, ConversationScreen) and app.screen.loaded,
            what="the conversation again",
        )
        await wait_until(pilot, lambda: INSULT in _msg_text(app), what="still revealed")
        assert app.screen.hidden == {}


async def test_a_message_triaged_abusive_after_it_was_shown_is_masked(db_path: Path) -> None:
    with Store(db_path) as s:
        cid = lifecycle.open_conversation(s, "Zed")
        lifecycle.add_customer_message(s, cid, "hello")
    app = TandemApp(db_path, "me", interval=0.05)
    async with app.run_test(size=(130, 40)) as pilot:
        app.open_conversation(cid)
        await wait_until(
            pilot,
            lambda: isinstance(app.screen, ConversationScreen) and app.screen.loaded,
            what="the conversation",
        )
        with Store(db_path) as s:
            mid = lifecycle.add_customer_message(s, cid, "you absolute morons").message_id
        # Stored before triage reads it (the hub triages a moment later): drawn as it came.
        await wait_until(pilot, lambda: "absolute morons" in _msg_text(app), what="untriaged")
        with Store(db_path) as s:
            lifecycle.record_triage(s, cid, ABUSE, message_id=mid)
        await wait_until(pilot, lambda: MASKED_TEXT in _msg_text(app), what="masked in place")
        assert "absolute morons" not in _msg_text(app)
        # The customer keeps going: the next message is masked before triage sees it.
        with Store(db_path) as s:
            lifecycle.add_customer_message(s, cid, "clowns, all of you")
        await wait_until(
            pilot, lambda: _msg_text(app).count(MASKED_TEXT) == 2, what="masked on arrival"
        )
        assert "clowns" not in _msg_text(app)
        await wait_until(pilot, lambda: "clowns" not in _plain(app), what="drawn")
