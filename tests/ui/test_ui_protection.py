"""Agent protection in the console: abusive customer text is masked until the agent reveals it."""

from __future__ import annotations

import os
from pathlib import Path

from ui_support import screen_up, wait_until

from console.ui.app import TandemApp
from console.ui.model import MASKED_SHORT, MASKED_TEXT
from console.ui.screens.conversation import ConversationScreen
from store import Store, lifecycle
from store.feed import read_events

INSULT = "you useless idiots"
ABUSE = lifecycle.TriageMark(level="empathy", score=0.7, reasons=["abuse"])
# Set TANDEM_SCREENSHOTS=DIR to save the README's screenshot of a masked message.
SHOTS = os.environ.get("TANDEM_SCREENSHOTS")


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
        if SHOTS:
            await pilot.pause()
            app.save_screenshot("console-masked-wall.svg", path=SHOTS)
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
        handover = screen.query_one("#handover")
        await wait_until(
            pilot, lambda: "where is my new card" in str(handover.render()), what="the quote"
        )
        assert INSULT not in str(handover.render())
        await wait_until(pilot, lambda: MASKED_TEXT in _msg_text(app), what="masked message")
        assert INSULT not in _plain(app) and INSULT not in _msg_text(app)
        if SHOTS:
            await pilot.pause()
            app.save_screenshot("console-masked.svg", path=SHOTS)
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


async def test_supervisor_sees_abuse_per_agent_and_gives_a_final_notice(db_path: Path) -> None:
    from textual.widgets import DataTable

    from console.ui.screens.supervisor import SupervisorScreen
    from store.protection import FINAL_NOTICE_TEXT, reveal
    from store.queries import get_conversation, transcript

    cid, mid = _abusive_conversation(db_path)
    with Store(db_path) as s:
        lifecycle.register_agent(s, "bob")
        lifecycle.register_agent(s, "cara")
        # Another abusive conversation cara only watched and revealed.
        other = lifecycle.open_conversation(s, "Zed")
        bad = lifecycle.add_customer_message(s, other, "clowns").message_id
        lifecycle.record_triage(s, other, ABUSE, message_id=bad)
        reveal(s, bad, by="cara")
        lifecycle.claim(
            s, cid, "bob"
        )  # bob holds Rex's conversation: its insult is in front of him
        lifecycle.agent_reply(s, cid, "bob", "Please keep it civil, or I will have to close this.")
        lifecycle.add_customer_message(s, cid, "shut up you morons")
    app = TandemApp(db_path, "lead", supervisor=True, interval=0.05)
    async with app.run_test(size=(150, 40), notifications=True) as pilot:
        await wait_until(pilot, lambda: cid in app.rows, what="rows")
        await pilot.press("s")
        sup = await screen_up(pilot, SupervisorScreen)
        agents = sup.query_one("#agents-table", DataTable)

        def abuse_column() -> dict[str, str]:
            return {
                str(agents.get_row_at(i)[0]): str(agents.get_row_at(i)[-1])
                for i in range(agents.row_count)
            }

        # bob holds Rex's conversation with one message triage flagged (the last one is not
        # triaged in this test); cara revealed one elsewhere; the supervisor saw none.
        await wait_until(
            pilot,
            lambda: abuse_column() == {"bob": "1", "cara": "1", "lead": "0"},
            what="the abuse column",
        )

        table = sup.query_one("#queue-table", DataTable)
        await wait_until(pilot, lambda: sup.selected_id() == cid, what="Rex selected")
        assert table.row_count >= 1
        await pilot.press("f")
        with Store(db_path) as s:
            await wait_until(
                pilot,
                lambda: get_conversation(s, cid)["state"] == "resolved",
                what="closed",
            )
            last = transcript(s, cid)[-1]
            events = [e for e in read_events(s) if e.conversation_id == cid]
        assert (last["role"], last["text"]) == ("system", FINAL_NOTICE_TEXT)
        assert (events[-1].kind, events[-1].actor) == ("resolved", "lead")


async def test_while_typing_v_types_and_ctrl_o_reveals(db_path: Path) -> None:
    from console.ui.widgets.composer import Composer

    cid, mid = _abusive_conversation(db_path)
    with Store(db_path) as s:
        lifecycle.claim(s, cid, "me")
    app = TandemApp(db_path, "me", interval=0.05)
    async with app.run_test(size=(130, 40)) as pilot:
        app.open_conversation(cid)
        await wait_until(
            pilot,
            lambda: isinstance(app.screen, ConversationScreen) and app.screen.loaded,
            what="the conversation",
        )
        await wait_until(pilot, lambda: MASKED_TEXT in _msg_text(app), what="masked")
        editor = app.screen.query_one(Composer).editor
        await wait_until(pilot, lambda: editor.has_focus, what="the composer focused")
        await wait_until(pilot, lambda: editor.text.strip() != "", what="the takeover draft")
        before = editor.text
        await pilot.press("v")  # typed into the reply, not a reveal
        await wait_until(pilot, lambda: editor.text.count("v") > before.count("v"), what="v typed")
        assert MASKED_TEXT in _msg_text(app) and app.screen.revealed == set()
        await pilot.press("ctrl+o")
        await wait_until(pilot, lambda: INSULT in _msg_text(app), what="revealed")
        with Store(db_path) as s:
            assert [(e.actor, e.message_id) for e in read_events(s) if e.kind == "revealed"] == [
                ("me", mid)
            ]


async def test_a_supervisor_gives_the_final_notice_from_the_conversation(db_path: Path) -> None:
    from store.protection import FINAL_NOTICE_TEXT
    from store.queries import get_conversation, transcript

    cid, _ = _abusive_conversation(db_path)
    app = TandemApp(db_path, "lead", supervisor=True, interval=0.05)
    async with app.run_test(size=(130, 40)) as pilot:
        app.open_conversation(cid)
        await wait_until(
            pilot,
            lambda: isinstance(app.screen, ConversationScreen) and app.screen.loaded,
            what="the conversation",
        )
        await pilot.press("f12")
        await wait_until(pilot, lambda: not isinstance(app.screen, ConversationScreen), what="back")
        with Store(db_path) as s:
            assert get_conversation(s, cid)["state"] == "resolved"
            last = transcript(s, cid)[-1]
            closing = [e for e in read_events(s) if e.conversation_id == cid and e.to_state][-1]
        assert (last["role"], last["text"]) == ("system", FINAL_NOTICE_TEXT)
        assert (closing.kind, closing.actor) == ("resolved", "lead")
