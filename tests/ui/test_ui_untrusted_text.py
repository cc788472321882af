"""Customer text is data (DESIGN.md section 10): shown literally, never markup, never escapes."""

from __future__ import annotations

import re
from pathlib import Path

from ui_support import wait_until

from console.ui.app import TandemApp
from console.ui.screens.conversation import ConversationScreen
from store import Store, lifecycle

HOSTILE = (
    "[bold red]not bold[/bold red] [@click=app.quit]quit[/] [link=https://evil.example]x[/link] "
    "\x1b[31mred\x1b[0m \x1b]52;c;ZXZpbA==\x07 \x1b]0;owned\x07 \x1b[2J\x9b2J \x08\x7f "
    "שלום עולם مرحبا \u202eevil\u202c 👍🏽👨‍👩‍👧 "
)
LONG = "x" * 10_000
# What Textual itself writes: colours (SGR) and cursor moves. Anything else came from the text.
_OURS = re.compile(r"\x1b\[[0-9;:]*m|\x1b\[\d+;\d+H|\x1b\[\d*[ABCDK]")


def _frame(app: TandemApp) -> str:
    update = app.screen._compositor.render_update(full=True)
    return update.render_segments(app.console)


def _plain(app: TandemApp) -> str:
    return "\n".join(strip.text for strip in app.screen._compositor.render_strips())


def _widget_text(widget: object) -> str:
    lines = widget.render_lines(widget.region.reset_offset)  # type: ignore[attr-defined]
    return "\n".join(line.text for line in lines)


def _assert_inert(frame: str) -> None:
    rest = _OURS.sub("", frame)
    assert "\x1b" not in rest, repr(rest[rest.index("\x1b") - 20 : rest.index("\x1b") + 20])
    for ch in ("\x07", "\x08", "\x9b", "\x7f", "\u202e"):
        assert ch not in rest


async def test_hostile_text_is_literal_and_inert(db_path: Path) -> None:
    with Store(db_path) as s:
        cid = lifecycle.open_conversation(s, "[b]Eve[/b] \x1b[5m")
        lifecycle.add_customer_message(s, cid, HOSTILE)
        lifecycle.add_customer_message(s, cid, LONG)
        lifecycle.add_customer_message(s, cid, "[@click=app.quit]click me[/]")
    app = TandemApp(db_path, "me", interval=0.05)
    async with app.run_test(size=(120, 40)) as pilot:
        await wait_until(pilot, lambda: cid in app.rows, what="the tile")
        # The name, literally, control made visible.
        await wait_until(pilot, lambda: "[b]Eve[/b] ␛[5m" in _plain(app), what="the tile drawn")
        wall_text = _plain(app)
        assert "[@click=app.quit]click me[/]" in wall_text
        _assert_inert(_frame(app))
        # Clicking the literal "[@click=app.quit]" runs nothing: it opens the conversation.
        await pilot.click("Tile")
        await wait_until(
            pilot,
            lambda: isinstance(app.screen, ConversationScreen) and app.screen.loaded,
            what="conversation",
        )
        assert app.is_running

        def transcript_text() -> str:
            # The transcript keeps to its end; read each message widget as it renders.
            return "\n".join(_widget_text(w) for w in app.screen.query(".msg"))

        await wait_until(pilot, lambda: "click me" in transcript_text(), what="the last message")
        text = transcript_text()
        assert "[bold red]not bold[/bold red] [@click=app.quit]quit[/]" in text
        assert "[link=https://evil.example]x[/link]" in text
        assert "␛[31mred␛[0m" in text and "␛]52;c;ZXZpbA==␇" in text
        assert "שלום עולם" in text and "👍" in text
        _assert_inert(_frame(app))
        app.screen.query_one("#transcript").scroll_home(animate=False)
        await wait_until(pilot, lambda: "[bold red]not bold" in _plain(app), what="the top")
        _assert_inert(_frame(app))
        # The 10,000-character line is all there, wrapped, not cut: scroll through the widget.
        msg = app.screen.query(".msg-customer")[1]
        assert msg.size.height >= 10_000 // 120
        assert _widget_text(msg).count("x") == 10_000
        await pilot.click(".msg-customer")
        assert app.is_running


async def test_hostile_names_in_the_supervisor_view(db_path: Path) -> None:
    with Store(db_path) as s:
        cid = lifecycle.open_conversation(s, "[@click=app.quit]Eve[/] \x1b]0;x\x07")
        lifecycle.add_customer_message(s, cid, "help")
        lifecycle.escalate(s, cid, reasons=["human_request"])
    app = TandemApp(db_path, "lead", supervisor=True, interval=0.05)
    async with app.run_test(size=(140, 30)) as pilot:
        await wait_until(pilot, lambda: cid in app.rows, what="the row")
        await pilot.press("s")
        # The name column keeps 28 cells, the last an ellipsis when the name is longer.
        await wait_until(
            pilot, lambda: "[@click=app.quit]Eve[/] ␛]0…" in _plain(app), what="the row drawn"
        )
        _assert_inert(_frame(app))
        await pilot.click("#queue-table", offset=(20, 1))
        assert app.is_running
