"""Words that only look like English cues: foreign words, split letters, anonymisation placeholders."""

from __future__ import annotations

import pytest

from console.triage import TriageEngine
from console.triage import text as T

ENGINE = TriageEngine()


def _verdict(text: str):  # noqa: ANN202 - console.triage.Verdict
    return ENGINE.observe(ENGINE.new_state(), "customer", text)


@pytest.mark.parametrize(
    "text",
    [
        "danke für die Info",
        "Vielen Dank für die schnelle Antwort",
        "f. y. i. the parcel came today",
    ],
)
def test_foreign_and_abbreviated_words_are_not_abuse(text: str) -> None:
    v = _verdict(text)
    assert "abuse" not in v.reasons and v.level == "calm"


def test_a_masked_swear_word_is_still_abuse() -> None:
    assert "abuse" in _verdict("what the f*ck is going on with my order").reasons


def test_accented_words_stay_whole() -> None:
    assert T.tokens("Grüße aus München") == ["grüße", "aus", "münchen"]


def test_placeholders_are_neither_words_nor_shouting() -> None:
    # A placeholder stands for a word the customer wrote: it counts as one, but not as "name".
    assert T.tokens("Hello #NAME#, call #PHONENUMBER#") == [
        "hello",
        "something",
        ",",
        "call",
        "something",
    ]
    assert _verdict("Hi #NAME#, #PRS_ORG# sent #EMAIL# to #ADDRESS#").level == "calm"


def test_marks_are_exactly_the_tokens_that_are_not_words() -> None:
    # The engine counts words as "not a mark" (a set test in C) instead of checking each
    # token's first character: every character up to U+2FFF, the emoji and emoticons.
    text = " ".join(chr(c) for c in range(0x20, 0x3000)) + " " + T.EMOJI + " :-( :) :/ :| :-\\"
    for fold in (True, False):
        toks = T.tokens(text, fold=fold)
        assert {t for t in toks if not t[0].isalnum()} <= T.MARKS
        assert not any(t in T.MARKS for t in toks if t[0].isalnum())
    assert all(T.tokens(f"x {mark} y") == ["x", mark, "y"] for mark in T.MARKS)
