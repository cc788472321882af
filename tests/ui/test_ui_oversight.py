"""Live oversight in the console (issue 16, point 7): whisper, barge in, who is viewing.

Each test runs one console; the other person's console is the store written from the test,
as a second console on the same file would write it.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import test_agent_api
from test_agent_api import Server
from textual.widgets import Static
from ui_support import answer_prompt, notes, type_into, wait_until

from console.backend.remote import RemoteBackend
from console.ui.app import TandemApp
from console.ui.screens.conversation import ConversationScreen
from console.ui.widgets.composer import Composer
from console.ui.widgets.tile import TILE_HEIGHT, Tile
from store import Store, lifecycle, oversight
from store.feed import read_events
from store.queries import get_conversation, transcript

SIZE = (160, 48)

# A real `tandem serve` with accounts ana, bob (agents) and sam (supervisor).
server = test_agent_api.server


class QuietApp(TandemApp):
    """Counts the bell instead of ringing it."""

    bells = 0

    def bell(self) -> None:
        self.bells += 1


def _held(db_path: Path, agent: str = "ana") -> int:
    with Store(db_path) as s:
        lifecycle.register_agent(s, "sam", role="supervisor")
        cid = lifecycle.open_conversation(s, "Maya")
        lifecycle.add_customer_message(s, cid, "someone took money from my account")
        lifecycle.escalate(s, cid, reasons=["fraud"], level="urgent", score=0.9)
        lifecycle.claim(s, cid, agent)
    return cid


async def _open(pilot: Any, app: TandemApp, cid: int) -> ConversationScreen:
    await wait_until(pilot, lambda: cid in app.rows, what="the tile")
    app.open_conversation(cid)
    await wait_until(
        pilot,
        lambda: isinstance(app.screen, ConversationScreen) and app.screen.loaded,
        what="the transcript",
    )
    assert isinstance(app.screen, ConversationScreen)
    return app.screen


def _whisper_lines(conv: ConversationScreen) -> list[Static]:
    return list(conv.query(".msg-whisper").results(Static))


async def test_a_supervisor_whispers_with_w_and_the_customer_never_sees_it(db_path: Path) -> None:
    cid = _held(db_path)
    app = QuietApp(db_path, "sam", supervisor=True, interval=0.05)
    async with app.run_test(size=SIZE, notifications=True) as pilot:
        conv = await _open(pilot, app, cid)
        titles = [t for t, _, _ in conv.palette_commands()]
        assert "Whisper to ana" in titles and "Barge in" in titles
        await type_into(pilot, "w", "whisper-input", "ask for the last four digits")
        await wait_until(pilot, lambda: _whisper_lines(conv), what="the whisper, shown")
        line = _whisper_lines(conv)[0]
        assert "whisper from sam to ana" in str(line.render())
        assert not line.has_class("-to-me")  # highlighted for ana, not for its writer
    with Store(db_path) as s:
        note = transcript(s, cid)[-1]
        public = transcript(s, cid, include_notes=False)
    assert (note["role"], note["author"], note["text"]) == (
        "note",
        "sam",
        "ask for the last four digits",
    )
    assert note["meta"] == {"whisper": True, "to": "ana"}
    assert all(m["id"] != note["id"] for m in public)


async def test_the_owning_agent_sees_a_whisper_at_once_highlighted(db_path: Path) -> None:
    cid = _held(db_path)
    app = QuietApp(db_path, "ana", interval=0.05)
    async with app.run_test(size=SIZE, notifications=True) as pilot:
        # On the wall: the notification says it, whatever screen is up.
        await wait_until(pilot, lambda: cid in app.rows, what="the tile")
        with Store(db_path) as s:
            oversight.whisper(s, cid, "offer the card block first", by="sam")
        await wait_until(
            pilot, lambda: "offer the card block first" in notes(app), what="the toast"
        )
        toast = next(n for n in app._notifications if n.message == "offer the card block first")
        assert toast.title.startswith("whisper from sam") and f"#{cid}" in toast.title
        assert app.bells >= 1
        # In the conversation: the line stands out, marked as meant for this agent.
        conv = await _open(pilot, app, cid)
        await wait_until(pilot, lambda: _whisper_lines(conv), what="the highlighted line")
        line = _whisper_lines(conv)[0]
        assert line.has_class("-to-me")
        assert "whisper from sam to you" in str(line.render())
        # A whisper arriving while the conversation is open: toast and line, both.
        with Store(db_path) as s:
            oversight.whisper(s, cid, "she is a long-time customer", by="sam")
        await wait_until(pilot, lambda: len(_whisper_lines(conv)) == 2, what="the second line")
        await wait_until(
            pilot, lambda: "she is a long-time customer" in notes(app), what="the second toast"
        )


async def test_another_agent_opening_the_conversation_never_sees_the_whisper(
    db_path: Path,
) -> None:
    cid = _held(db_path)
    with Store(db_path) as s:
        lifecycle.register_agent(s, "bob")
        oversight.whisper(s, cid, "offer the card block first", by="sam")
    app = QuietApp(db_path, "bob", interval=0.05)
    async with app.run_test(size=SIZE, notifications=True) as pilot:
        conv = await _open(pilot, app, cid)
        # One arriving while bob has it open, then a plain note to know the feed got there.
        with Store(db_path) as s:
            oversight.whisper(s, cid, "she is a long-time customer", by="sam")
            lifecycle.add_note(s, cid, "ana", "checking the card now")
        await wait_until(
            pilot,
            lambda: any(
                "checking the card now" in str(w.render())
                for w in conv.query(".msg-note").results(Static)
            ),
            what="ana's note",
        )
        shown = " ".join(str(w.render()) for w in conv.query(".msg").results(Static))
        assert not _whisper_lines(conv)
        assert "card block" not in shown and "long-time" not in shown
        assert not any("long-time" in n for n in notes(app))


async def test_a_supervisor_barges_in_with_B(db_path: Path) -> None:
    cid = _held(db_path)
    app = QuietApp(db_path, "sam", supervisor=True, interval=0.05)
    async with app.run_test(size=SIZE, notifications=True) as pilot:
        conv = await _open(pilot, app, cid)
        assert not conv.query_one(Composer).has_class("-active")
        await pilot.press("B")
        await wait_until(pilot, lambda: conv.mine, what="the conversation, the supervisor's")
        assert conv.query_one(Composer).has_class("-active")
        # The feed can show the move before the write's own answer (and its notification) is in.
        await wait_until(
            pilot, lambda: any("ana was told" in n for n in notes(app)), what="ana was told"
        )
    with Store(db_path) as s:
        assert get_conversation(s, cid)["owner"] == "sam"
        last = [e for e in read_events(s) if e.conversation_id == cid and e.to_state][-1]
    assert (last.kind, last.actor, last.data) == (
        "transferred",
        "sam",
        {"from": "ana", "owner": "sam", "reason": "barge"},
    )


async def test_the_displaced_agent_is_told_and_their_reply_turns_read_only(
    db_path: Path,
) -> None:
    cid = _held(db_path)
    app = QuietApp(db_path, "ana", interval=0.05)
    async with app.run_test(size=SIZE, notifications=True) as pilot:
        conv = await _open(pilot, app, cid)
        composer = conv.query_one(Composer)
        await wait_until(pilot, lambda: not composer.streaming, what="the draft done")
        composer.clear()
        composer.focus_editor()
        await pilot.press(*"Let me check")
        with Store(db_path) as s:
            oversight.barge(s, cid, by="sam")
        await wait_until(pilot, lambda: composer.frozen, what="the reply box, read only")
        assert composer.editor.read_only and composer.text == "Let me check"
        assert composer.display  # still in sight
        assert any("sam took over Maya" in n for n in notes(app))
        assert app.bells >= 1
        await pilot.press("ctrl+s")  # refused here, nothing reaches the store
        await pilot.press(*"!!")
        assert composer.text == "Let me check"
    with Store(db_path) as s:
        assert all(m["role"] != "agent" for m in transcript(s, cid))
        moves = [(e.kind, e.actor, e.data) for e in read_events(s) if e.kind == "transferred"]
    assert moves == [("transferred", "sam", {"from": "ana", "owner": "sam", "reason": "barge"})]


def _tile(app: TandemApp, cid: int) -> Tile:
    return next(t for t in app.screen.query(Tile) if t.conversation_id == cid)


def _bottom_edge(tile: Tile) -> str:
    return tile.render_line(TILE_HEIGHT - 1).text


async def test_the_tile_shows_who_is_viewing_until_it_runs_out(db_path: Path) -> None:
    cid = _held(db_path)
    app = QuietApp(db_path, "ana", interval=0.05)
    async with app.run_test(size=SIZE) as pilot:
        await wait_until(pilot, lambda: cid in app.rows, what="the tile")
        assert "viewing" not in _bottom_edge(_tile(app, cid))
        with Store(db_path) as s:
            oversight.view(s, cid, "sam", ttl=3)
        await wait_until(pilot, lambda: _tile(app, cid).viewers == ("sam",), what="the viewer")
        assert "sam viewing" in _bottom_edge(_tile(app, cid))
        # Nobody renews it (a console that died): it runs out on its own, with no event.
        await wait_until(pilot, lambda: _tile(app, cid).viewers == (), what="the viewer gone")
        assert "viewing" not in _bottom_edge(_tile(app, cid))


async def test_opening_a_conversation_records_the_viewer_and_closing_removes_it(
    db_path: Path,
) -> None:
    cid = _held(db_path)
    with Store(db_path) as s:
        oversight.view(s, cid, "ana")  # the owner has it open in their console
    app = QuietApp(db_path, "sam", supervisor=True, interval=0.05)

    def viewing() -> list[str]:
        with Store(db_path, migrate=False) as s:
            return [v["agent"] for v in oversight.viewers(s).get(cid, [])]

    async with app.run_test(size=SIZE) as pilot:
        conv = await _open(pilot, app, cid)
        await wait_until(pilot, lambda: "sam" in viewing(), what="sam recorded as viewing")
        header = conv.query_one("#conv-header", Static)
        await wait_until(
            pilot, lambda: "also viewing: ana" in str(header.render()), what="the header"
        )
        await pilot.press("escape")
        await wait_until(pilot, lambda: viewing() == ["ana"], what="sam's view withdrawn")


# --- the same over the network: remote consoles on a real `tandem serve` ------------------


async def test_remote_consoles_whisper_barge_and_are_told(server: Server) -> None:
    """A supervisor's remote console whispers and barges; the agent's remote console hears it."""
    cid = _held(server.db)
    sam = QuietApp(RemoteBackend(server.url, server.tokens["sam"]), interval=0.05)
    async with sam.run_test(size=SIZE, notifications=True) as pilot:
        conv = await _open(pilot, sam, cid)
        await type_into(pilot, "w", "whisper-input", "check the last payment")
        await wait_until(pilot, lambda: _whisper_lines(conv), what="the whisper over the API")

        def viewing() -> list[str]:
            with Store(server.db, migrate=False) as s:
                return [v["agent"] for v in oversight.viewers(s).get(cid, [])]

        assert viewing() == ["sam"]  # opened over the API (POST .../viewers)
        # The feed can show the whisper before its write answers and closes the box; escape
        # in the box closes the box, not the conversation.
        box = conv.query_one("#whisper-input")
        await wait_until(pilot, lambda: not box.has_class("-active"), what="the box closed")
        await pilot.press("escape")
        await wait_until(pilot, lambda: viewing() == [], what="closed over the API (DELETE)")
    ana = QuietApp(RemoteBackend(server.url, server.tokens["ana"]), interval=0.05)
    async with ana.run_test(size=SIZE, notifications=True) as pilot:
        conv = await _open(pilot, ana, cid)
        assert _whisper_lines(conv)[0].has_class("-to-me")
        with Store(server.db) as s:
            oversight.whisper(s, cid, "then freeze the card", by="sam")
        await wait_until(pilot, lambda: "then freeze the card" in notes(ana), what="the toast")
        with Store(server.db) as s:
            oversight.barge(s, cid, by="sam")
        composer = conv.query_one(Composer)
        await wait_until(pilot, lambda: composer.frozen, what="read only after the barge")
        assert any("sam took over Maya" in n for n in notes(ana))
    with Store(server.db) as s:
        notes_stored = [m for m in transcript(s, cid) if m["role"] == "note"]
        assert [(m["author"], m["meta"]) for m in notes_stored] == [
            ("sam", {"whisper": True, "to": "ana"}),
            ("sam", {"whisper": True, "to": "ana"}),
        ]
        assert get_conversation(s, cid)["owner"] == "sam"


async def test_a_supervisors_own_transfer_is_not_announced_as_taken_from_them(
    db_path: Path,
) -> None:
    cid = _held(db_path, agent="sam")
    with Store(db_path) as s:
        lifecycle.register_agent(s, "bob")
        lifecycle.register_agent(s, "lead", role="supervisor")
    app = QuietApp(db_path, "sam", supervisor=True, interval=0.05)
    async with app.run_test(size=SIZE, notifications=True) as pilot:
        await wait_until(pilot, lambda: app.rows.get(cid, {}).get("owner") == "sam", what="held")
        await pilot.press("s")
        await wait_until(pilot, lambda: app.screen.query("#queue-table"), what="the view")
        await answer_prompt(pilot, "x", "ana")
        await wait_until(pilot, lambda: app.rows[cid]["owner"] == "ana", what="in the feed")
        await wait_until(
            pilot, lambda: any(f"#{cid} transferred to ana" in n for n in notes(app)), what="ok"
        )
        assert not any("took over" in n for n in notes(app)) and app.bells == 0
        # Another supervisor moving one sam holds is still news to sam.
        with Store(db_path) as s:
            lifecycle.transfer(s, cid, "sam", by="lead")
        await wait_until(pilot, lambda: app.rows[cid]["owner"] == "sam", what="back with sam")
        with Store(db_path) as s:
            lifecycle.transfer(s, cid, "bob", by="lead")
        await wait_until(
            pilot, lambda: any("bob took over Maya" in n for n in notes(app)), what="told"
        )
        assert app.bells == 1
