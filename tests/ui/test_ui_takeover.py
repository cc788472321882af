"""Taking a conversation over: claim, claim lost to another process, reply, hand back, resolve."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Any

from remote_support import Consoles
from textual.command import CommandList
from ui_support import notes, screen_up, type_into, wait_until

from console.ui.app import TandemApp
from console.ui.screens.conversation import ConversationScreen
from console.ui.screens.wall import WallScreen
from console.ui.widgets.composer import Composer
from store import Store, lifecycle
from store.queries import get_conversation, transcript

SIZE = (160, 48)


def _one_conversation(db_path: Path, text: str = "my card was blocked abroad") -> int:
    with Store(db_path) as s:
        cid = lifecycle.open_conversation(s, "Maya")
        mid = lifecycle.add_customer_message(s, cid, text).message_id
        lifecycle.bot_reply(s, cid, "Let me check that for you.", reply_to=mid)
        lifecycle.escalate(s, cid, reasons=["human_request"], level="empathy", score=0.7)
    return cid


def _claim_in_another_process(db_path: Path, cid: int, agent: str) -> None:
    """Another agent's console claims ``cid``: a real second process on the same file."""
    code = (
        "import sys; from store import Store, lifecycle;"
        "lifecycle.claim(Store(sys.argv[1]), int(sys.argv[2]), sys.argv[3])"
    )
    subprocess.run(
        [sys.executable, "-c", code, str(db_path), str(cid), agent], check=True, timeout=30
    )


async def _opened(pilot: Any, app: TandemApp, cid: int) -> ConversationScreen:
    """Open ``cid`` from the wall (watching, not claimed) and wait for its transcript."""
    await wait_until(pilot, lambda: cid in app.rows, what="the tile")
    await pilot.press("enter")
    conv = await screen_up(pilot, ConversationScreen)
    await wait_until(pilot, lambda: conv.loaded, what="transcript")
    return conv


def _conv(app: TandemApp) -> ConversationScreen:
    assert isinstance(app.screen, ConversationScreen)
    return app.screen


async def _taken(pilot: Any, app: TandemApp) -> ConversationScreen:
    """Wait for the claim just asked for (it is written off the event loop) and its screen."""
    await wait_until(
        pilot,
        lambda: isinstance(app.screen, ConversationScreen) and app.screen.mine,
        what="the conversation, ours",
    )
    return _conv(app)


def _last(db_path: Path, cid: int) -> dict[str, Any]:
    with Store(db_path, migrate=False) as s:  # polled: no migration check each time
        return transcript(s, cid)[-1]


async def test_a_claims_answer_after_the_feed_does_not_draft_again(db_path: Path) -> None:
    """The feed can show the claim before the claim's own answer reaches the screen. The feed
    started the draft; the answer, coming after the agent had cleared it to write their own,
    streamed a second draft into what they were typing (seen once in a loaded run)."""
    cid = _one_conversation(db_path)
    app = TandemApp(db_path, "me", interval=0.05)
    async with app.run_test(size=SIZE) as pilot:
        conv = await _opened(pilot, app, cid)
        with Store(db_path) as s:
            lifecycle.claim(s, cid, "me")  # the store has it: the feed says so first
        await wait_until(pilot, lambda: conv.mine, what="the claim in the feed")
        composer = conv.query_one(Composer)
        await wait_until(
            pilot,
            lambda: composer.draft is not None and not composer.draft.streaming,
            what="the draft the feed started, done",
        )
        composer.clear()
        conv.post_message(TandemApp.Claimed(cid, False))  # the claim's own answer, late
        await pilot.pause(0.5)
        assert composer.draft is None and not composer.streaming and composer.text == ""


async def test_claim_reply_hand_back(db_path: Path, consoles: Consoles) -> None:
    cid = _one_conversation(db_path)
    app = consoles.app("me")
    async with app.run_test(size=SIZE, notifications=True) as pilot:
        conv = await _opened(pilot, app, cid)
        assert len(conv.query(".msg")) == 2  # the customer and the bot
        assert not conv.query_one(Composer).has_class("-active")  # watching only
        await pilot.press("ctrl+t")
        await wait_until(pilot, lambda: conv.mine, what="the claim")
        assert conv.query_one(Composer).has_class("-active")
        with Store(db_path) as s:
            assert get_conversation(s, cid)["owner"] == "me"
        # The drafts part streams a suggested reply in: let it start and finish (not streaming
        # yet is not done: over the API it can start late), then write our own.
        composer = conv.query_one(Composer)
        await wait_until(
            pilot,
            lambda: composer.draft is not None and not composer.draft.streaming,
            what="draft done",
        )
        composer.clear()
        await pilot.press(*"Sorry about that, I have unblocked it.")
        await pilot.press("ctrl+s")
        await wait_until(pilot, lambda: _last(db_path, cid)["role"] == "agent", what="the reply")
        last = _last(db_path, cid)
        assert (last["role"], last["author"], last["text"]) == (
            "agent",
            "me",
            "Sorry about that, I have unblocked it.",
        )
        await wait_until(pilot, lambda: last["id"] in conv.seen, what="own reply in the transcript")
        # The feed can show the reply before the write's own answer empties the editor.
        await wait_until(pilot, lambda: conv.query_one(Composer).text == "", what="editor emptied")
        # An internal note: stored as a note, shown to agents.
        await type_into(pilot, "ctrl+n", "note-input", "VIP customer")
        await wait_until(pilot, lambda: _last(db_path, cid)["role"] == "note", what="the note")
        assert _last(db_path, cid)["text"] == "VIP customer"
        await pilot.press("ctrl+g")
        await wait_until(pilot, lambda: isinstance(app.screen, WallScreen), what="the wall")
        with Store(db_path) as s:
            c = get_conversation(s, cid)
        assert (c["state"], c["owner"]) == ("bot", None)
        # The screen closes on the move's answer, which then reaches the app, which notifies.
        await wait_until(pilot, lambda: any("handed back" in n for n in notes(app)), what="said")


async def test_resolve_closes_and_leaves_the_wall(db_path: Path, consoles: Consoles) -> None:
    cid = _one_conversation(db_path)
    app = consoles.app("me")
    async with app.run_test(size=SIZE) as pilot:
        await wait_until(pilot, lambda: cid in app.rows, what="the tile")
        await pilot.press("t")  # take over straight from the wall
        conv = await _taken(pilot, app)
        # focus() takes effect a message later (Textual sets it with call_later).
        editor = conv.query_one(Composer).editor
        await wait_until(pilot, lambda: app.focused is editor, what="the editor focused")
        await pilot.press("ctrl+r")
        await wait_until(pilot, lambda: isinstance(app.screen, WallScreen), what="the wall")
        with Store(db_path) as s:
            assert get_conversation(s, cid)["state"] == "resolved"
        await wait_until(pilot, lambda: cid not in app.rows, what="tile gone")


async def test_claim_lost_to_an_agent_in_another_process(db_path: Path, consoles: Consoles) -> None:
    cid = _one_conversation(db_path)
    app = consoles.app("me")
    async with app.run_test(size=SIZE, notifications=True) as pilot:
        await _opened(pilot, app, cid)
        # Freeze our view of it: the other agent claims between our look and our key press.
        app.reader.stop()
        _claim_in_another_process(db_path, cid, "bob")
        await pilot.press("ctrl+t")
        await wait_until(pilot, lambda: "taken by bob" in notes(app), what="the refusal")
        await wait_until(pilot, lambda: isinstance(app.screen, WallScreen), what="the wall")
        with Store(db_path) as s:
            assert get_conversation(s, cid)["owner"] == "bob"
            assert all(m["role"] != "agent" for m in transcript(s, cid))


async def test_sending_after_losing_ownership_is_refused(db_path: Path, consoles: Consoles) -> None:
    cid = _one_conversation(db_path)
    with Store(db_path) as s:
        lifecycle.register_agent(s, "lead", role="supervisor")
    app = consoles.app("me")
    async with app.run_test(size=SIZE, notifications=True) as pilot:
        await wait_until(pilot, lambda: cid in app.rows, what="the tile")
        await pilot.press("t")
        conv = await _taken(pilot, app)
        with Store(db_path) as s:
            lifecycle.transfer(s, cid, "bob", by="lead")
        composer = conv.query_one(Composer)
        await wait_until(
            pilot, lambda: not getattr(composer, "streaming", False), what="draft done"
        )
        composer.clear()
        await pilot.press(*"hello?", "ctrl+s")
        await wait_until(pilot, lambda: "taken by bob" in notes(app), what="the refusal")
        with Store(db_path) as s:
            assert all(m["role"] != "agent" for m in transcript(s, cid))
        await wait_until(pilot, lambda: not conv.mine, what="the feed shows the transfer")
        assert not conv.query_one(Composer).has_class("-active")


async def test_every_action_is_in_the_command_palette(db_path: Path) -> None:
    cid = _one_conversation(db_path)
    app = TandemApp(db_path, "me", interval=0.05)
    async with app.run_test(size=SIZE) as pilot:
        await wait_until(pilot, lambda: cid in app.rows, what="the tile")
        wall = app.screen
        titles = [t for t, _, _ in wall.palette_commands()]  # type: ignore[attr-defined]
        for wanted in (
            "Open conversation",
            "Take over",
            "Search",
            "Filter: needs a human",
            "Supervisor view",
        ):
            assert wanted in titles
        # Run one through the palette itself: take over by name.
        await pilot.press("ctrl+p")
        await pilot.press(*"take over")

        def first_hit() -> str:
            hits = app.screen.query_one(CommandList)
            if hits.highlighted is None:
                return ""
            return str(hits.get_option_at_index(hits.highlighted).prompt)

        # The palette searches in a worker: wait for its answer before choosing it.
        await wait_until(pilot, lambda: first_hit().startswith("Take over"), what="the hit")
        await pilot.press("enter")
        await wait_until(
            pilot,
            lambda: isinstance(app.screen, ConversationScreen) and app.screen.mine,
            what="taken over from the palette",
        )
        conv = _conv(app)
        titles = [t for t, _, _ in conv.palette_commands()]
        for wanted in (
            "Send reply",
            "Hand back to the bot",
            "Resolve",
            "Add internal note",
            "Back to the wall",
        ):
            assert wanted in titles
        assert "Take over" not in titles  # already ours


async def test_a_long_conversation_loads_earlier_messages(db_path: Path) -> None:
    with Store(db_path) as s:
        cid = lifecycle.open_conversation(s, "Maya")
        for i in range(260):
            lifecycle.add_customer_message(s, cid, f"line {i}")
    app = TandemApp(db_path, "me", interval=0.05)
    async with app.run_test(size=SIZE, notifications=True) as pilot:
        conv = await _opened(pilot, app, cid)
        assert len(conv.query(".msg")) == 200 and min(conv.seen) == 61  # the newest 200
        await pilot.press("f6")
        await wait_until(pilot, lambda: len(conv.query(".msg")) == 260, what="earlier ones")
        first = conv.query(".msg").first()
        assert "line 0" in str(first.render())
        await pilot.press("f6")
        await wait_until(
            pilot, lambda: "this is the start of the conversation" in notes(app), what="the end"
        )


async def test_take_next_claims_the_most_urgent_waiting_conversation_and_skips_one_just_taken(
    db_path: Path,
) -> None:
    calm_wait = _one_conversation(db_path, "where is my refund")
    with Store(db_path) as s:
        urgent = lifecycle.open_conversation(s, "Ravi")
        lifecycle.add_customer_message(s, urgent, "someone is using my card right now")
        lifecycle.escalate(s, urgent, reasons=["fraud"], level="urgent", score=0.9)
    app = TandemApp(db_path, "me", interval=0.05)
    async with app.run_test(size=SIZE, notifications=True) as pilot:
        await wait_until(pilot, lambda: {calm_wait, urgent} <= set(app.rows), what="both tiles")
        # Another agent takes the urgent one between our look and our key press.
        app.reader.stop()
        _claim_in_another_process(db_path, urgent, "bob")
        await pilot.press("n")
        # The feed is stopped, so the screen cannot show it as ours: the store says so below.
        await wait_until(pilot, lambda: isinstance(app.screen, ConversationScreen), what="opened")
        assert _conv(app).conversation_id == calm_wait
        with Store(db_path) as s:
            assert get_conversation(s, calm_wait)["owner"] == "me"
            assert get_conversation(s, urgent)["owner"] == "bob"
        await pilot.press("escape")
        await wait_until(pilot, lambda: isinstance(app.screen, WallScreen), what="back on the wall")
        await pilot.press("n")  # nobody else is waiting
        await wait_until(
            pilot, lambda: "nobody is waiting for a person right now" in notes(app), what="empty"
        )
        assert isinstance(app.screen, WallScreen)
