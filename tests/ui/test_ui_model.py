"""Ordering, filters and safe text of the wall, without an app."""

from __future__ import annotations

from console.ui.model import matches, next_in_queue, reason_words, safe_text, sort_key


def _row(cid: int, state: str = "bot", level: str = "calm", **kw: object) -> dict[str, object]:
    row: dict[str, object] = {
        "id": cid,
        "state": state,
        "level": level,
        "owner": None,
        "reasons": [],
        "customer_name": f"c{cid}",
        "subject": "",
        "turns": [],
        "waiting_since": None,
        "last_customer_at": float(cid),
        "updated_at": float(cid),
    }
    row.update(kw)
    return row


def test_order_is_urgent_then_empathy_then_longest_wait() -> None:
    rows = [
        _row(1),
        _row(2, "waiting", "watch", waiting_since=50.0),
        _row(3, "waiting", "watch", waiting_since=10.0),
        _row(4, "bot", "empathy"),
        _row(5, "waiting", "urgent", waiting_since=90.0),
    ]
    assert [r["id"] for r in sorted(rows, key=sort_key)] == [5, 4, 3, 2, 1]


def test_next_in_queue_is_only_waiting_conversations_most_in_need_first() -> None:
    rows = [
        _row(1, "bot", "urgent"),  # the bot still has it: not in the queue
        _row(2, "waiting", "empathy", waiting_since=10.0),
        _row(3, "waiting", "urgent", waiting_since=50.0),
        _row(4, "human", "urgent", owner="ana", waiting_since=None),
        _row(5, "waiting", "empathy", waiting_since=5.0),
        _row(6, "waiting", "watch", waiting_since=1.0),
    ]
    assert next_in_queue(rows) == [3, 5, 2, 6]
    assert next_in_queue([]) == []


def test_the_wall_shows_waiting_conversations_in_the_queue_order() -> None:
    rows = [
        _row(1, "waiting", "calm", waiting_since=5.0),
        _row(2, "waiting", "watch", waiting_since=50.0),
        _row(3, "bot", "watch"),
        _row(4, "waiting", "empathy", waiting_since=60.0),
        _row(5, "bot", "empathy"),
    ]
    # Watch before calm in the queue (level first), even though calm has waited longer.
    assert next_in_queue(rows) == [4, 2, 1]
    assert [r["id"] for r in sorted(rows, key=sort_key)] == [4, 5, 2, 1, 3]


def test_anyone_waiting_comes_before_watched_bot_conversations() -> None:
    rows = [
        _row(1, "bot", "watch"),
        _row(2, "waiting", "calm", waiting_since=5.0),
        _row(3, "bot", "calm"),
    ]
    assert [r["id"] for r in sorted(rows, key=sort_key)] == [2, 1, 3]


def test_a_customer_typing_does_not_move_a_calm_tile() -> None:
    a, b = _row(1, created_at=1.0), _row(2, created_at=2.0)
    before = sorted([a, b], key=sort_key)
    b_new = {**b, "last_customer_at": 99.0, "updated_at": 99.0}
    assert [r["id"] for r in sorted([a, b_new], key=sort_key)] == [r["id"] for r in before]


def test_filters() -> None:
    waiting = _row(1, "waiting", "watch", waiting_since=1.0)
    flagged = _row(2, "bot", "empathy")
    mine = _row(3, "human", owner="me")
    theirs = _row(4, "human", owner="ana")
    calm = _row(5)
    rows = [waiting, flagged, mine, theirs, calm]
    assert [r["id"] for r in rows if matches(r, "needs", "me")] == [1, 2]
    assert [r["id"] for r in rows if matches(r, "waiting", "me")] == [1]
    assert [r["id"] for r in rows if matches(r, "mine", "me")] == [3]
    assert len([r for r in rows if matches(r, "all", "me")]) == 5
    assert not matches(_row(6, "resolved"), "all", "me")


def test_search_matches_names_words_and_turns() -> None:
    row = _row(
        7,
        reasons=["bereavement"],
        customer_name="Maya",
        turns=[{"text": "my card is blocked", "role": "customer"}],
    )
    assert matches(row, "all", "me", "maya")
    assert matches(row, "all", "me", "BEREAVEMENT")
    assert matches(row, "all", "me", "blocked")
    assert not matches(row, "all", "me", "refund")


def test_reasons_are_words() -> None:
    assert reason_words(["human_request", "fraud", "brand_new_code"]) == [
        "asked for a person",
        "fraud",
        "brand new code",
    ]


def test_safe_text_keeps_two_combining_marks_on_a_letter() -> None:
    import unicodedata

    zalgo = "Z" + "\u0336\u0321\u031b\u0301\u0308" * 6 + "algo"  # 30 marks on the Z
    assert safe_text(zalgo) == "Z\u0336\u0321algo"
    # Languages keep theirs: Vietnamese decomposed stacks two, Hindi's signs are others.
    for text in ("Việt Nam người dùng", "मेरा कार्ड", "Ça coûte très cher"):
        nfd = unicodedata.normalize("NFD", text)
        assert safe_text(nfd) == nfd


def test_safe_text_neutralises_controls_and_keeps_the_rest() -> None:
    hostile = "a\x1b[31mred\x07\x9b2J\u202eevil\u2066 [bold]x[/] שלום 👍"
    out = safe_text(hostile)
    assert "\x1b" not in out and "\x07" not in out and "\x9b" not in out
    assert "\u202e" not in out and "\u2066" not in out
    assert "␛[31mred" in out  # visible, not interpreted
    assert "[bold]x[/] שלום 👍" in out
    assert safe_text("two\nlines\r\n", one_line=True) == "two lines"
