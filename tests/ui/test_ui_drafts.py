"""The composer with drafts, in Pilot tests: a draft streams in with buffered writes, keys work
while it streams, stale drafts are flagged, a slow LLM falls back with a visible notice, and
what the agent sends is logged as accepted or edited."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import pytest
from fake_openai import FakeOpenAI
from remote_support import Consoles
from textual.app import App, ComposeResult
from textual.widgets import TextArea
from textual.widgets.text_area import Selection
from waiting import DEADLINE, wait_until_async

from console.backend import LocalBackend
from console.config import LLMConfig
from console.llm import LLM
from console.ui.widgets.composer import Composer
from store import Store, drafts, lifecycle

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from test_assist_helpers import refund_conversation  # noqa: E402


class ComposerApp(App[None]):
    """The composer alone; the screen's part of sending (the reply's write) done right here."""

    def __init__(self, db_path: Path, cid: int, llm: Any = None) -> None:
        super().__init__()
        self.db_path, self.cid, self.llm = db_path, cid, llm
        self.store = Store(db_path)
        self.backend = LocalBackend(db_path, "ana")

    def compose(self) -> ComposeResult:
        yield Composer(self.backend, self.cid, llm=self.llm, id="composer")

    def on_composer_sent(self, event: Composer.Sent) -> None:
        replied = self.backend.reply(self.cid, event.text, event.draft_id)
        self.query_one(Composer).sent(replied.message_id, replied.draft_outcome)

    def on_unmount(self) -> None:
        self.backend.close()
        self.store.close()


def _llm(fake: FakeOpenAI, timeout: float = 30.0) -> LLM:
    return LLM(LLMConfig(base_url=fake.base_url, api_key="k", model="fake-model", timeout=timeout))


async def _wait(pilot: Any, predicate: Any, timeout: float = DEADLINE) -> None:
    await wait_until_async(predicate, timeout=timeout, pause=pilot.pause)


def _status(composer: Composer) -> str:
    return str(composer.query_one(".composer--status").content)


async def test_llm_draft_streams_in_with_buffered_writes(
    db_path: Path, fake_openai: FakeOpenAI
) -> None:
    cid = refund_conversation(db_path)
    words = [f"word{i}" for i in range(40)]
    fake_openai.reply = "Hi Maya, " + " ".join(words) + ".\nSources: KB-T01"
    fake_openai.chunk_delay = 0.01
    # Half-way the server waits for the test: the draft is still being written when looked at
    # (at 10 ms a chunk, a stall of a third of a second could let the whole reply in first).
    fake_openai.pause_after = 20
    changes: list[str] = []

    def hook(message: Any) -> None:
        if isinstance(message, TextArea.Changed):
            changes.append(message.text_area.text)

    app = ComposerApp(db_path, cid, _llm(fake_openai))
    async with app.run_test(message_hook=hook) as pilot:
        composer = app.query_one(Composer)
        composer.focus_editor()
        composer.on_takeover()
        await _wait(pilot, lambda: "word10" in composer.text)
        assert composer.streaming  # visible while the model is still writing
        fake_openai.resume()
        await _wait(pilot, lambda: composer.draft is not None and not composer.draft.streaming)
        text = composer.text
        assert (
            text == "Hi Maya, " + " ".join(words) + "."
        )  # the sources line never reaches the editor
        # Buffered: far fewer editor writes than the 43 chunks the server sent, each a prefix.
        # (A Changed message is seen once per node it bubbles through, hence the set.)
        writes = {c for c in changes if c}
        assert 2 <= len(writes) < 25, len(writes)
        assert all(text.startswith(c) for c in writes)
        status = _status(composer)
        assert "llm fake-model" in status and "sources KB-T01 Refunds: when they arrive" in status
        row = drafts.get_draft(app.store, composer.draft_id or 0)
        assert row["engine"] == "llm" and row["text"] == text


async def test_keys_work_while_streaming(db_path: Path, fake_openai: FakeOpenAI) -> None:
    cid = refund_conversation(db_path)
    fake_openai.reply = " ".join(f"w{i}" for i in range(200))
    fake_openai.chunk_delay = 0.02
    app = ComposerApp(db_path, cid, _llm(fake_openai))
    async with app.run_test() as pilot:
        composer = app.query_one(Composer)
        composer.focus_editor()
        composer.on_takeover()
        await _wait(pilot, lambda: "w5 " in composer.text)
        draft_id = composer.draft_id
        # The agent moves the cursor to the start while text keeps arriving: it stays there.
        await pilot.press("home")
        await _wait(pilot, lambda: "w15 " in composer.text)
        assert composer.editor.cursor_location == (0, 0)
        # Send while streaming stops the draft first (nothing half-written goes out). The
        # composer's binding runs once the key has come back up from the editor to the app.
        await pilot.press("ctrl+s")
        await _wait(pilot, lambda: "draft stopped" in _status(composer))
        assert not composer.streaming
        frozen = composer.text
        # The draft's record is closed once its stream has ended: from then on nothing can
        # arrive, and what the editor holds is all the stream gave.
        await _wait(pilot, lambda: drafts.get_draft(app.store, draft_id or 0)["total_ms"])
        assert drafts.get_draft(app.store, draft_id or 0)["text"] == frozen
        assert composer.text == frozen and "w199" not in frozen
        assert app.store.one("SELECT count(*) FROM messages WHERE role = 'agent'")[0] == 0
        # Discard empties the editor and logs it.
        await pilot.press("f8")
        await _wait(pilot, lambda: composer.draft_id is None)
        assert composer.text == ""
        await _wait(
            pilot, lambda: drafts.get_draft(app.store, draft_id or 0)["outcome"] == "discarded"
        )


async def test_send_logs_accepted_and_edited(db_path: Path) -> None:
    cid = refund_conversation(db_path)
    app = ComposerApp(db_path, cid)
    async with app.run_test() as pilot:
        composer = app.query_one(Composer)
        composer.focus_editor()
        composer.on_takeover()
        await _wait(pilot, lambda: composer.draft is not None and not composer.draft.streaming)
        first = composer.draft_id
        assert composer.text.startswith(("Hi Maya", "Hello Maya"))
        assert "embedded" in _status(composer) and "first text" in _status(composer)
        await pilot.press("ctrl+s")
        await _wait(pilot, lambda: "draft accepted" in _status(composer))
        assert drafts.get_draft(app.store, first or 0)["outcome"] == "accepted"
        assert composer.text == ""
        # The next draft, edited before sending.
        await pilot.press("f5")
        await _wait(pilot, lambda: composer.draft is not None and not composer.draft.streaming)
        second = composer.draft_id
        composer.editor.move_cursor(composer.editor.document.end)
        await pilot.press("!", "!")
        await pilot.press("ctrl+s")
        await _wait(pilot, lambda: drafts.get_draft(app.store, second or 0)["outcome"] != "pending")
        row = drafts.get_draft(app.store, second or 0)
        assert row["outcome"] == "edited" and row["edit_distance"] == 2
        reply = app.store.one("SELECT meta FROM messages WHERE role = 'agent' ORDER BY id DESC")
        assert f'"draft_id": {second}' in reply[0]


async def test_stale_draft_is_flagged_or_replaced(db_path: Path) -> None:
    cid = refund_conversation(db_path)
    app = ComposerApp(db_path, cid)
    async with app.run_test() as pilot:
        composer = app.query_one(Composer)
        composer.focus_editor()
        composer.on_takeover()
        await _wait(pilot, lambda: composer.draft is not None and not composer.draft.streaming)
        first = composer.draft_id
        # Untouched: a new customer message simply brings a new draft.
        mid = lifecycle.add_customer_message(app.store, cid, "hello?").message_id
        composer.on_customer_message(mid)
        await _wait(
            pilot, lambda: composer.draft_id not in (None, first) and not composer.streaming
        )
        assert drafts.get_draft(app.store, first or 0)["outcome"] in ("stale", "discarded")
        second = composer.draft_id
        # Edited by the agent: the draft is kept and marked stale, the agent decides.
        composer.editor.move_cursor(composer.editor.document.end)
        await pilot.press("space", "o", "k")
        mid = lifecycle.add_customer_message(app.store, cid, "are you there?").message_id
        composer.on_customer_message(mid)
        await _wait(pilot, lambda: "stale: the customer wrote again" in _status(composer))
        assert composer.draft_id == second and composer.text.endswith(" ok")
        assert drafts.get_draft(app.store, second or 0)["outcome"] == "stale"


async def test_timeout_falls_back_with_visible_notice(
    db_path: Path, fake_openai: FakeOpenAI
) -> None:
    cid = refund_conversation(db_path)
    fake_openai.delay = 2.0
    app = ComposerApp(db_path, cid, _llm(fake_openai, timeout=0.3))
    async with app.run_test() as pilot:
        composer = app.query_one(Composer)
        composer.on_takeover()
        await _wait(pilot, lambda: composer.draft is not None and not composer.draft.streaming)
        status = _status(composer)
        assert "⚠" in status and "0.3s" in status and "offline" in status and "embedded" in status
        assert composer.text.startswith(("Hi Maya", "Hello Maya"))


async def test_regenerate_with_instruction(db_path: Path) -> None:
    cid = refund_conversation(db_path)
    app = ComposerApp(db_path, cid)
    async with app.run_test() as pilot:
        composer = app.query_one(Composer)
        composer.focus_editor()
        composer.on_takeover()
        await _wait(pilot, lambda: composer.draft is not None and not composer.draft.streaming)
        first_id, first_text = composer.draft_id, composer.text
        await pilot.press("f9")
        await pilot.press(*"shorter", "enter")
        await _wait(
            pilot,
            lambda: (
                composer.draft_id != first_id
                and composer.draft is not None
                and not composer.draft.streaming
            ),
        )
        assert len(composer.text) < len(first_text)
        assert drafts.get_draft(app.store, composer.draft_id or 0)["instruction"] == "shorter"
        assert drafts.get_draft(app.store, first_id or 0)["outcome"] == "discarded"


@pytest.mark.parametrize("typed", ["already typing"])
async def test_takeover_keeps_what_the_agent_typed(db_path: Path, typed: str) -> None:
    cid = refund_conversation(db_path)
    app = ComposerApp(db_path, cid)
    async with app.run_test() as pilot:
        composer = app.query_one(Composer)
        composer.focus_editor()
        await pilot.press(*typed)
        composer.on_takeover()
        # A draft would have started right here (its worker exists from the call on).
        assert not composer.streaming and "you own this conversation" in _status(composer)
        assert composer.text == typed and composer.draft_id is None


async def test_metrics_panel_shows_acceptance_and_timing(db_path: Path) -> None:
    from console.ui.widgets.draft_metrics import DraftMetricsScreen

    cid = refund_conversation(db_path)
    app = ComposerApp(db_path, cid)
    async with app.run_test() as pilot:
        composer = app.query_one(Composer)
        composer.focus_editor()
        composer.on_takeover()
        await _wait(pilot, lambda: composer.draft is not None and not composer.draft.streaming)
        await pilot.press("ctrl+s")
        await _wait(pilot, lambda: "draft accepted" in _status(composer))
        await pilot.press("f4")  # from the composer
        await _wait(pilot, lambda: isinstance(app.screen, DraftMetricsScreen))

        def shown() -> str:
            return str(app.screen.query_one("DraftMetricsPanel").content)

        await _wait(pilot, lambda: "written" in shown())
        text = shown()
        assert "1 written" in text and "accepted 1" in text and "sent from a draft 100%" in text
        assert "first text, embedded: p50" in text
        await pilot.press("escape")
        assert not isinstance(app.screen, DraftMetricsScreen)


async def test_in_the_console_takeover_drafts_and_send_logs(
    db_path: Path, consoles: Consoles
) -> None:
    """Through the real console: take over from the wall, a draft arrives, the customer writes
    again (a new draft replaces the untouched one), the agent sends it, the log says accepted."""
    from console.ui.screens.conversation import ConversationScreen

    cid = refund_conversation(db_path)
    with Store(db_path) as s:
        lifecycle.hand_back(s, cid, by="ana")  # back to the bot: the console's agent takes over
    app = consoles.app("ana")
    async with app.run_test(size=(160, 48)) as pilot:
        await _wait(pilot, lambda: cid in app.rows)
        app.open_conversation(cid)
        await _wait(pilot, lambda: isinstance(app.screen, ConversationScreen) and app.screen.loaded)
        await pilot.press("ctrl+t")
        composer = app.screen.query_one(Composer)
        await _wait(pilot, lambda: composer.draft is not None and not composer.draft.streaming)
        first = composer.draft_id
        assert composer.text.startswith(("Hi Maya", "Hello Maya"))
        with Store(db_path) as s:
            lifecycle.add_customer_message(s, cid, "are you still there?")
        await _wait(
            pilot,
            lambda: (
                composer.draft_id not in (None, first)
                and composer.draft is not None
                and not composer.draft.streaming
            ),
            timeout=8,
        )
        second = composer.draft_id
        await pilot.press("ctrl+s")
        await _wait(pilot, lambda: "draft accepted" in _status(composer))
        with Store(db_path) as s:
            assert drafts.get_draft(s, second or 0)["outcome"] == "accepted"
            assert drafts.get_draft(s, first or 0)["outcome"] in ("stale", "discarded")


async def test_leaving_with_a_draft_streaming_logs_it_as_discarded(
    db_path: Path, fake_openai: FakeOpenAI
) -> None:
    cid = refund_conversation(db_path)
    fake_openai.reply = " ".join(f"w{i}" for i in range(100))
    fake_openai.chunk_delay = 0.02
    app = ComposerApp(db_path, cid, _llm(fake_openai))
    async with app.run_test() as pilot:
        composer = app.query_one(Composer)
        composer.on_takeover()
        await _wait(pilot, lambda: "w3 " in composer.text)
        draft_id = composer.draft_id
        await composer.remove()
        await _wait(
            pilot, lambda: drafts.get_draft(app.store, draft_id or 0)["outcome"] == "discarded"
        )
        row = drafts.get_draft(app.store, draft_id or 0)
        assert row["total_ms"] is not None and row["text"].startswith("w0 w1 w2")


# Six lines of seven words, one word every 0.12 s: a line break arrives about every second.
STREAMED = "\n".join(" ".join(f"l{line}w{word}" for word in range(7)) for line in range(6))


def _with(text: str, row: int, column: int, typed: str) -> str:
    lines = text.split("\n")
    lines[row] = lines[row][:column] + typed + lines[row][column:]
    return "\n".join(lines)


async def test_keys_pressed_mid_stream_land_at_the_cursor(
    db_path: Path, fake_openai: FakeOpenAI
) -> None:
    cid = refund_conversation(db_path)
    fake_openai.reply = STREAMED
    fake_openai.chunk_delay = 0.12
    app = ComposerApp(db_path, cid, _llm(fake_openai))
    async with app.run_test() as pilot:
        composer = app.query_one(Composer)
        editor = composer.editor
        composer.focus_editor()
        composer.on_takeover()
        await _wait(pilot, lambda: "l0w3" in composer.text)
        # The agent puts the cursor on the line the stream is still writing, after "l0w1"...
        row = composer.text.count("\n")
        editor.move_cursor((row, 4))
        lines = editor.document.line_count
        # ...and the stream breaks that line and goes on below: the cursor stays put.
        await _wait(pilot, lambda: editor.document.line_count > lines + 1)
        assert composer.streaming and editor.cursor_location == (row, 4)
        await pilot.press("X", "Y")
        assert editor.cursor_location == (row, 6)
        # A selection stays as the agent made it while more text arrives, and typing replaces it.
        editor.selection = Selection((row, 0), (row, 2))
        lines = editor.document.line_count
        await _wait(pilot, lambda: editor.document.line_count > lines)
        assert editor.selection == Selection((row, 0), (row, 2))
        await pilot.press("Z")
        await _wait(pilot, lambda: composer.draft is not None and not composer.draft.streaming)
        expected = _with(STREAMED, row, 4, "XY")
        expected = "\n".join(
            ("Z" + line[2:]) if i == row else line for i, line in enumerate(expected.split("\n"))
        )
        assert composer.text == expected


async def test_an_incomplete_draft_is_marked_and_redraft_is_one_key_away(
    db_path: Path, fake_openai: FakeOpenAI
) -> None:
    cid = refund_conversation(db_path)
    fake_openai.reply = "Hi Maya, your refund usually takes 3 to 5 working days"
    fake_openai.finish_reason = "length"
    app = ComposerApp(db_path, cid, _llm(fake_openai))
    async with app.run_test() as pilot:
        composer = app.query_one(Composer)
        composer.focus_editor()
        composer.on_takeover()
        await _wait(pilot, lambda: composer.draft is not None and not composer.draft.streaming)
        # The text that came is there, marked: frame, status line, and the key to redraft.
        assert composer.text == fake_openai.reply
        assert composer.editor.has_class("-incomplete")
        status = _status(composer)
        assert "⚠ incomplete draft: the LLM stopped at its token limit" in status
        assert "f5 redrafts" in status
        draft_id = composer.draft_id
        assert drafts.get_draft(app.store, draft_id or 0)["incomplete"]
        # Sending it as it is takes a second, deliberate ctrl+s.
        await pilot.press("ctrl+s")
        await _wait(pilot, lambda: "ctrl+s again sends it as it is" in _status(composer))
        assert app.store.one("SELECT count(*) FROM messages WHERE role = 'agent'")[0] == 0
        # f5: a new draft; this one finishes properly and is not marked.
        fake_openai.finish_reason = "stop"
        fake_openai.reply = "Hi Maya, refunds take 3 to 5 working days."
        await pilot.press("f5")
        await _wait(
            pilot,
            lambda: (
                composer.draft is not None
                and composer.draft_id != draft_id
                and not composer.draft.streaming
            ),
        )
        assert composer.text == fake_openai.reply
        assert not composer.editor.has_class("-incomplete")
        assert "incomplete" not in _status(composer)
