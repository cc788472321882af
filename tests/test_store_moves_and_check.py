"""One table of legal moves for the lifecycle and the checker; a checker that scales linearly.

Real SQLite files throughout. The checker's cost is counted in SQLite virtual-machine steps
(a progress handler), which is deterministic: no timing is asserted.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable
from pathlib import Path

import psycopg
import pytest

from store import InvalidInput, InvalidTransition, Store
from store import lifecycle as lc
from store.check import check
from store.feed import read_events
from store.history import Reopening
from store.moves import MOVES, STATES
from store.queries import get_conversation
from store.synthetic import seed

# How each move is asked for; "reopened" has no function of its own (a customer writes).
_ASK: dict[str, Callable[[Store, int], object]] = {
    "escalated": lambda s, c: lc.escalate(s, c, reasons=["human_request"]),
    "claimed": lambda s, c: lc.claim(s, c, "bob"),
    "assigned": lambda s, c: lc.assign(s, c, "bob", by="sam"),
    "released": lambda s, c: lc.release(s, c, by="sam"),
    "handed_back": lambda s, c: lc.hand_back(s, c, by="sam"),
    "transferred": lambda s, c: lc.transfer(s, c, "bob", by="sam"),
    "resolved": lambda s, c: lc.resolve(s, c, by="sam"),
    "abandoned": lambda s, c: lc.abandon(s, c),
    "reopened": lambda s, c: lc.add_customer_message(s, c, "hello again"),
}


def _in_state(store: Store, state: str) -> int:
    cid = lc.open_conversation(store, "Maya")
    if state in ("waiting", "human"):
        lc.escalate(store, cid, reasons=["human_request"])
    if state == "human":
        lc.claim(store, cid, "ana")
    if state == "resolved":
        lc.resolve(store, cid, by="hub")
    assert get_conversation(store, cid)["state"] == state
    return cid


@pytest.mark.parametrize("kind", sorted(MOVES))
def test_the_lifecycle_allows_exactly_the_moves_of_the_table(store: Store, kind: str) -> None:
    move = MOVES[kind]
    assert set(_ASK) == set(MOVES)
    lc.register_agent(store, "sam", role="supervisor")
    for state in STATES:
        cid = _in_state(store, state)
        before = len(read_events(store))
        try:
            _ASK[kind](store, cid)
        except InvalidTransition:
            allowed = False
        else:
            allowed = any(e.kind == kind for e in read_events(store)[before:])
        assert allowed == (state in move.sources), (kind, state)
        if allowed:
            event = next(e for e in read_events(store)[before:] if e.kind == kind)
            assert (event.from_state, event.to_state) == (state, move.target)
            assert get_conversation(store, cid)["state"] == move.target
    assert check(store) == []  # the checker replays the same table and agrees


def test_a_reopening_ends_where_its_route_says_and_the_checker_follows(store: Store) -> None:
    assert MOVES["reopened"].targets == {"bot", "waiting", "human"}
    for route in (Reopening("waiting"), Reopening("human", agent="ana"), Reopening("bot")):
        cid = _in_state(store, "resolved")
        lc.add_customer_message(store, cid, "one more thing", reopen=lambda _c, r=route: r)
        assert get_conversation(store, cid)["state"] == route.state
        if route.agent:
            lc.agent_reply(store, cid, "ana", "I'm back")  # the owner again, as the feed says
    assert check(store) == []


def test_the_checker_refuses_what_the_table_refuses(store: Store) -> None:
    cid = _in_state(store, "bot")
    with store.write() as conn:  # a forged move: a bot conversation cannot be abandoned
        conn.execute(
            "INSERT INTO events (at, conversation_id, kind, actor, from_state, to_state)"
            " VALUES (0, ?, 'abandoned', 'x', 'bot', 'resolved')",
            (cid,),
        )
        conn.execute("UPDATE conversations SET state = 'resolved' WHERE id = ?", (cid,))
    problems = check(store)
    assert any(f"abandoned from bot in conversation {cid}" in p for p in problems), problems


def test_the_checker_sees_posts_by_who_does_not_own(store: Store) -> None:
    cid = _in_state(store, "human")  # ana owns it
    with store.write() as conn:
        for role, actor in (("bot", "bot"), ("agent", "bob")):
            mid = conn.execute(
                "INSERT INTO messages (conversation_id, role, author, text, created_at)"
                " VALUES (?, ?, ?, 'x', 0)",
                (cid, role, actor),
            ).lastrowid
            conn.execute(
                "INSERT INTO events (at, conversation_id, kind, actor, message_id, data)"
                " VALUES (0, ?, 'message', ?, ?, ?)",
                (cid, actor, mid, f'{{"role":"{role}"}}'),
            )
        conn.execute("UPDATE conversations SET message_count = 2 WHERE id = ?", (cid,))
    problems = check(store)
    assert any(f"bot posted in conversation {cid} while it was human" in p for p in problems)
    assert any(f"bob posted in conversation {cid} owned by ana" in p for p in problems)


def test_the_checker_sees_messages_missing_from_the_feed(store: Store) -> None:
    cid = _in_state(store, "bot")
    lc.add_customer_message(store, cid, "hi")
    with store.write() as conn:
        conn.execute("DELETE FROM events WHERE kind = 'message'")
    assert "1 messages have no feed event" in check(store)


def test_a_synthetic_store_is_sound(store: Store) -> None:
    seed(store, conversations=300, messages=3_000)
    assert check(store) == []


def _vm_steps(path: Path) -> int:
    steps = 0

    def count() -> int:
        nonlocal steps
        steps += 1
        return 0

    with Store(path) as store:
        store.conn.set_progress_handler(count, 1000)
        assert check(store) == []
    return steps


def test_db_check_grows_linearly(tmp_path: Path) -> None:
    # A lookup per message without an index made `db check` quadratic (12 s at 4,000
    # conversations, not done after 300 s at 20,000): doubling the store quadrupled the work.
    small, large = tmp_path / "small.db", tmp_path / "large.db"
    for path, n in ((small, 1_000), (large, 2_000)):
        with Store(path) as store:
            seed(store, conversations=n, messages=n * 10)
    ratio = _vm_steps(large) / _vm_steps(small)
    assert ratio < 2.6, f"twice the store cost {ratio:.2f} times the work"


def test_rows_are_stamped_inside_their_transaction(
    store: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A stamp taken before BEGIN IMMEDIATE can be older than a row another process committed
    # while this one waited for the lock (a bot reply dated before the claim that beat it).
    real_now = lc.now
    stamps: list[bool] = []

    def stamp() -> float:
        stamps.append(store.conn.in_transaction)
        return real_now()

    monkeypatch.setattr(lc, "now", stamp)
    lc.register_agent(store, "sam", role="supervisor")
    cid = lc.open_conversation(store, "Maya")
    mid = lc.add_customer_message(store, cid, "hi").message_id
    lc.bot_reply(store, cid, "hello", reply_to=mid)
    lc.record_triage(store, cid, lc.TriageMark("watch", 0.4, ["frustration"]))
    lc.escalate(store, cid, reasons=["frustration"], message="a person will join")
    lc.claim(store, cid, "ana")
    lc.agent_reply(store, cid, "ana", "I'm here")
    lc.add_note(store, cid, "ana", "note")
    lc.post_system(store, cid, "ana joined")
    lc.transfer(store, cid, "bob", by="sam")
    lc.hand_back(store, cid, by="bob")
    lc.resolve(store, cid, by="hub")
    lc.add_customer_message(store, cid, "one more thing")
    lc.escalate(store, cid, reasons=["human_request"])
    lc.release(store, cid, by="sam")
    lc.escalate(store, cid, reasons=["human_request"])
    lc.assign(store, cid, "ana", by="sam")
    lc.resolve(store, cid, by="ana")
    lc.add_customer_message(store, cid, "and again")
    lc.escalate(store, cid, reasons=["human_request"])
    lc.abandon(store, cid)
    assert len(stamps) >= 20 and all(stamps), stamps


@pytest.mark.parametrize(
    "call",
    [
        lambda s, c: lc.add_customer_message(s, c, "hi \ud800"),
        lambda s, c: lc.add_customer_message(s, c, "hi", idempotency_key="k\udfff"),
        lambda s, c: lc.open_conversation(s, "Maya\udcff"),
        lambda s, c: lc.open_conversation(s, "Maya", external_id="\ud800"),
        lambda s, c: lc.bot_reply(s, c, "\ud800"),
        lambda s, c: lc.add_note(s, c, "ana", "\udc80"),
        lambda s, c: lc.claim(s, c, "an\ud800a"),
        lambda s, c: lc.escalate(s, c, reasons=["x"], by="\ud800"),
        lambda s, c: lc.register_agent(s, "\udcff"),
    ],
)
def test_text_that_is_not_unicode_is_refused_in_words(store: Store, call) -> None:  # noqa: ANN001
    cid = lc.open_conversation(store, "Maya")
    before = len(read_events(store))
    with pytest.raises(InvalidInput, match="not valid (Unicode|UTF-8)|is not allowed"):
        call(store, cid)
    assert len(read_events(store)) == before


def test_any_text_sqlite_cannot_encode_is_invalid_input_not_a_crash(store: Store) -> None:
    # A path that skips the lifecycle's checks still gets a sentence, not UnicodeEncodeError.
    with pytest.raises(InvalidInput, match="not valid Unicode"):
        store.query("SELECT ?", ("\ud800",))
    with pytest.raises(InvalidInput, match="not valid Unicode"), store.write() as conn:
        conn.execute("INSERT INTO agents (name, created_at) VALUES (?, 0)", ("\ud800",))


def test_sqlite_errors_that_are_bugs_stay_loud(store: Store) -> None:
    # A bug in a statement is the driver's own error on either backend, never a sentence.
    with pytest.raises(
        (sqlite3.OperationalError, psycopg.errors.UndefinedTable),
        match="no such table|does not exist",
    ):
        store.query("SELECT * FROM nothing_here")
