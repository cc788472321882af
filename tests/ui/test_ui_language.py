"""The customer's language and the LLM judge's reasons on the wall's tiles (issue 12)."""

from __future__ import annotations

from console.ui.model import language_code, language_name
from console.ui.widgets.tile import tile_text


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
