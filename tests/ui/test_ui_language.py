"""The customer's language and the LLM judge's reasons on the wall's tiles (issue 12)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from textual.widgets import Static
from ui_support import wait_until

from console.ui.app import TandemApp
from console.ui.model import language_code, language_name
from console.ui.screens.conversation import ConversationScreen
from console.ui.widgets.tile import tile_text
from store import Store, lifecycle
from store.lifecycle import TriageMark


def _row(**kw: object) -> dict[str, object]:
    row: dict[str, object] = {
        "id": 7,
        "customer_name": "Astrid",
        "state": "bot",
        "owner": None,
        "level": "empathy",
        "reasons": ["human_request", "vulnerability"],
        "turns": [{"role": "customer", "text": "Jag vill prata med en människa"}],
    }
    row.update(kw)
    return row


def test_the_tile_shows_the_language_and_marks_the_models_reasons() -> None:
    text = tile_text(_row(lang="sv", model_reasons=["vulnerability"]), "ann", 80).plain
    badge = text.splitlines()[1]
    assert " sv " in badge
    assert "AI: vulnerable" in badge and badge.index("AI: ") > badge.index("asked for a person")
    # Without the judge, no AI mark; without a language, no code.
    plain = tile_text(_row(), "ann", 80).plain.splitlines()[1]
    assert "AI:" not in plain and " sv " not in plain


def test_a_stored_language_code_is_shown_only_when_it_is_one() -> None:
    assert language_code({"lang": "SV"}) == "sv"
    assert language_code({"lang": "\x1b[31mxx"}) == ""
    assert language_code({}) == ""
    assert language_name({"lang": "fi"}) == "Finnish (fi)"
    assert language_name({"lang": "ru"}) == "ru"


async def test_the_side_panel_names_the_language_or_says_it_is_not_known_yet(
    db_path: Path,
) -> None:
    with Store(db_path) as s:
        known = lifecycle.open_conversation(s, "Astrid")
        mid = lifecycle.add_customer_message(s, known, "hjälp").message_id
        lifecycle.record_triage(s, known, TriageMark("calm", 0.1, lang="sv"), message_id=mid)
        unknown = lifecycle.open_conversation(s, "Hana")
        lifecycle.add_customer_message(s, unknown, "hello?")  # too short to tell
    app = TandemApp(db_path, "ana", interval=0.05)
    async with app.run_test(size=(160, 48)) as pilot:
        await wait_until(pilot, lambda: {known, unknown} <= set(app.rows), what="tiles")
        for cid, expected, absent in (
            (known, "writes in Swedish (sv)", "not known"),
            (unknown, "language not known yet", "writes in"),
        ):
            app.push_screen(ConversationScreen(cid))
            screen = app.screen
            await wait_until(pilot, lambda s=screen: _side(s) != "", what="side panel")
            await wait_until(pilot, lambda s=screen, e=expected: e in _side(s), what=expected)
            assert absent not in _side(screen)
            app.pop_screen()


def _side(screen: Any) -> str:
    found = screen.query("#side-context")
    return str(found.first(Static).render()) if found else ""
