"""Live oversight in the store: whisper, barge in, who is viewing (issue 16, point 7).

Real SQLite files; the customer's side is read through the channel layer's own filter, the
audit through the feed and ``tandem db check``.
"""

from __future__ import annotations

import subprocess
import sys

import pytest

from console.channels.events import public_event
from store import Forbidden, InvalidTransition, NotFound, Store, Taken, oversight
from store import lifecycle as lc
from store.accounts import add as add_account
from store.accounts import set_disabled
from store.check import check
from store.feed import read_events
from store.queries import get_conversation, transcript
from store.views import earlier_messages, wall_rows

T0 = 1_700_000_000.0


def _held(store: Store, agent: str = "ana") -> int:
    lc.register_agent(store, "sam", role="supervisor")
    lc.register_agent(store, agent)
    cid = lc.open_conversation(store, "Maya")
    lc.add_customer_message(store, cid, "my card was stolen")
    lc.claim(store, cid, agent)
    return cid


def test_a_whisper_is_a_note_to_the_owner_that_the_customer_never_sees(store: Store) -> None:
    cid = _held(store)
    mid = oversight.whisper(store, cid, "ask for the last four digits", by="sam")

    note = next(m for m in transcript(store, cid) if m["id"] == mid)
    assert (note["role"], note["author"]) == ("note", "sam")
    assert note["meta"] == {"whisper": True, "to": "ana"}
    event = next(e for e in read_events(store) if e.message_id == mid)
    assert (event.kind, event.actor) == ("message", "sam")
    assert event.data == {"role": "note", "whisper": True, "to": "ana"}
    # The channel stream and the webhooks report nothing of it.
    assert public_event(store, event) is None
    assert mid not in {m["id"] for m in transcript(store, cid, include_notes=False)}
    # Not a turn of the conversation: the customer's message count is untouched.
    assert get_conversation(store, cid)["message_count"] == 1
    assert check(store) == []


def test_a_whisper_is_read_only_by_its_addressee_its_author_and_supervisors(
    store: Store,
) -> None:
    cid = _held(store)
    lc.register_agent(store, "bob")
    lc.register_agent(store, "kim", role="supervisor")
    mid = oversight.whisper(store, cid, "ask for the last four digits", by="sam")
    lc.add_note(store, cid, "bob", "a plain note is for everyone")
    for reader, sees in (("ana", True), ("sam", True), ("bob", False), (None, True)):
        windows = [
            transcript(store, cid, reader=reader),
            transcript(store, cid, last=1, reader=reader),
            earlier_messages(store, cid, 10**9, reader=reader),
        ]
        assert (mid in {m["id"] for m in windows[0]}) is sees, reader
        assert (mid in {m["id"] for m in windows[2]}) is sees, reader
        assert windows[1][0]["text"] == "a plain note is for everyone"
        assert len(windows[0]) == (3 if sees else 2)
    # Supervisors read every whisper; any other agent only those to or from them.
    assert oversight.reader_in(store, "kim") is None
    assert oversight.reader_in(store, "bob") == "bob"
    event = next(e for e in read_events(store) if e.message_id == mid)
    assert oversight.readable(event.data, event.actor, "ana")
    assert not oversight.readable(event.data, event.actor, "bob")
    assert oversight.readable({"role": "note"}, "bob", "ana")


def test_a_whisper_needs_a_supervisor_and_an_agent_holding_it(store: Store) -> None:
    cid = _held(store)
    lc.register_agent(store, "bob")
    with pytest.raises(Forbidden, match="only a supervisor can whisper"):
        oversight.whisper(store, cid, "psst", by="bob")
    bot = lc.open_conversation(store, "Lee")
    with pytest.raises(
        InvalidTransition,
        match="cannot whisper in conversation .*: no agent holds it .*with the bot",
    ):
        oversight.whisper(store, bot, "psst", by="sam")
    oversight.barge(store, cid, by="sam")
    with pytest.raises(InvalidTransition, match="is yours"):
        oversight.whisper(store, cid, "psst", by="sam")
    with pytest.raises(NotFound):
        oversight.whisper(store, 999, "psst", by="sam")


def test_barge_moves_the_conversation_to_the_supervisor_and_the_feed_names_both(
    store: Store,
) -> None:
    cid = _held(store)
    assert oversight.barge(store, cid, by="sam", at=T0) == "ana"

    conv = get_conversation(store, cid)
    assert (conv["state"], conv["owner"]) == ("human", "sam")
    moves = [e for e in read_events(store) if e.conversation_id == cid and e.to_state]
    last = moves[-1]
    assert (last.kind, last.actor, last.from_state, last.to_state, last.at) == (
        "transferred",
        "sam",
        "human",
        "human",
        T0,
    )
    assert last.data == {"from": "ana", "owner": "sam", "reason": "barge"}
    # The displaced agent's reply is refused from then on; the supervisor's goes through.
    with pytest.raises(Taken, match="taken by sam"):
        lc.agent_reply(store, cid, "ana", "one moment please")
    lc.agent_reply(store, cid, "sam", "I am Sam, the team lead; I will help you now.")
    assert check(store) == []  # the checker replays it as a legal move


def test_barge_is_refused_where_nobody_else_holds_it(store: Store) -> None:
    cid = _held(store)
    lc.register_agent(store, "bob")
    with pytest.raises(Forbidden, match="only a supervisor can transfer"):
        oversight.barge(store, cid, by="bob")
    waiting = lc.open_conversation(store, "Lee")
    lc.escalate(store, waiting, reasons=["human_request"], by="hub")
    with pytest.raises(
        InvalidTransition, match="cannot barge in on .*no agent holds it .*waiting in the queue"
    ):
        oversight.barge(store, waiting, by="sam")
    oversight.barge(store, cid, by="sam")
    with pytest.raises(InvalidTransition, match="already sam's"):
        oversight.barge(store, cid, by="sam")
    assert get_conversation(store, waiting)["state"] == "waiting"


def test_viewers_are_recorded_renewed_and_run_out(store: Store) -> None:
    cid = _held(store)
    other = lc.open_conversation(store, "Lee")
    until = oversight.view(store, cid, "sam", ttl=60, at=T0)
    oversight.view(store, cid, "ana", ttl=60, at=T0 + 5)
    oversight.view(store, other, "ana", ttl=60, at=T0 + 5)
    assert until == T0 + 60

    now = oversight.viewers(store, at=T0 + 10)
    assert [v["agent"] for v in now[cid]] == ["sam", "ana"]  # earliest first
    assert oversight.viewers(store, ids=[other], at=T0 + 10) == {
        other: [{"agent": "ana", "since": T0 + 5, "until": T0 + 65}]
    }
    # A renewal keeps the start and moves the end.
    oversight.view(store, cid, "sam", ttl=60, at=T0 + 50)
    assert [(v["agent"], v["since"]) for v in oversight.viewers(store, at=T0 + 66)[cid]] == [
        ("sam", T0)
    ]
    # Nobody renews: nobody is there, whatever the table still holds.
    assert oversight.viewers(store, at=T0 + 111) == {}
    # Closing the screen removes the record at once.
    oversight.view(store, cid, "sam", at=T0 + 200)
    assert oversight.leave(store, cid, "sam", at=T0 + 201) is True
    assert oversight.leave(store, cid, "sam", at=T0 + 202) is False
    assert oversight.viewers(store, at=T0 + 203) == {}

    kinds = [(e.kind, e.actor) for e in read_events(store) if e.kind.startswith("viewing")]
    assert kinds[-2:] == [("viewing", "sam"), ("viewing_ended", "sam")]
    assert check(store) == []


def test_wall_rows_carry_the_viewers(store: Store) -> None:
    cid = _held(store)
    quiet = lc.open_conversation(store, "Lee")
    oversight.view(store, cid, "sam")
    rows = {r["id"]: r for r in wall_rows(store)}
    assert [v["agent"] for v in rows[cid]["viewers"]] == ["sam"]
    assert rows[quiet]["viewers"] == []
    assert [v["agent"] for v in wall_rows(store, ids=[cid])[0]["viewers"]] == ["sam"]


def test_a_disabled_account_cannot_view_whisper_or_barge(store: Store) -> None:
    cid = _held(store)
    add_account(store, "kim", "supervisor")
    set_disabled(store, "kim")
    for act in (
        lambda: oversight.view(store, cid, "kim"),
        lambda: oversight.whisper(store, cid, "psst", by="kim"),
        lambda: oversight.barge(store, cid, by="kim"),
    ):
        with pytest.raises(Forbidden):
            act()
    assert get_conversation(store, cid)["owner"] == "ana"
    assert oversight.viewers(store) == {}


@pytest.mark.sqlite_only
def test_conv_show_names_the_barge_and_the_whisper(store: Store) -> None:
    cid = _held(store)
    oversight.whisper(store, cid, "freeze the card first", by="sam")
    oversight.barge(store, cid, by="sam")
    shown = subprocess.run(
        [sys.executable, "-m", "console.cli", "conv", "show", "--db", str(store.path), str(cid)],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    ).stdout
    assert "sam>ana: freeze the card first" in shown
    assert "transferred  by sam          human -> human (sam)  [barge from ana]" in shown
