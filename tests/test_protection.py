"""Agent protection in the store: reveals recorded in the feed, counts per agent, final notice."""

from __future__ import annotations

from pathlib import Path

import pytest

from store import Forbidden, InvalidInput, InvalidTransition, NotFound, Store
from store import lifecycle as lc
from store import protection as pr
from store.check import check
from store.feed import read_events
from store.queries import get_conversation, transcript

ABUSE = lc.TriageMark(level="empathy", score=0.7, reasons=["abuse"])


def _abusive(store: Store, cid: int, text: str, *, at: float | None = None) -> int:
    mid = lc.add_customer_message(store, cid, text, at=at).message_id
    lc.record_triage(store, cid, ABUSE, message_id=mid, at=at)
    return mid


def test_reveal_appends_one_event_with_actor_and_message(store: Store) -> None:
    cid = lc.open_conversation(store, "Rex")
    mid = _abusive(store, cid, "you useless idiots")
    lc.register_agent(store, "ana")
    before = read_events(store)[-1].id
    eid = pr.reveal(store, mid, by="ana")
    again = pr.reveal(store, mid, by="ana")
    events = [e for e in read_events(store) if e.id > before]
    assert [(e.kind, e.actor, e.message_id, e.conversation_id) for e in events] == [
        ("revealed", "ana", mid, cid)
    ]
    assert again == eid == events[0].id
    assert pr.revealed_ids(store, cid, "ana") == {mid}
    assert pr.revealed_ids(store, cid, "ben") == set()
    assert check(store) == []


def test_reveal_refuses_what_is_not_masked(store: Store) -> None:
    cid = lc.open_conversation(store, "Rex")
    calm = lc.add_customer_message(store, cid, "where is my card?").message_id
    with pytest.raises(InvalidInput, match="not masked"):
        pr.reveal(store, calm, by="ana")
    with pytest.raises(NotFound):
        pr.reveal(store, 999_999, by="ana")


def test_abuse_shown_counts_held_and_revealed_messages_per_agent(store: Store) -> None:
    day = 1_800_000_000.0
    a = lc.open_conversation(store, "Rex", at=day - 10)
    old = _abusive(store, a, "idiots", at=day - 5)  # before the window, shown after the claim
    _abusive(store, a, "morons", at=day + 1)
    lc.add_customer_message(store, a, "fine, where is my card", at=day + 2)
    lc.claim(store, a, "ana", at=day + 3)
    b = lc.open_conversation(store, "Zed", at=day + 4)
    other = _abusive(store, b, "you clowns", at=day + 5)
    lc.register_agent(store, "ben")
    pr.reveal(store, other, by="ben", at=day + 6)  # ben watched it without holding it
    pr.reveal(store, old, by="ana", at=day + 7)  # revealed and held: counted once
    assert pr.abuse_shown(store, since=day) == {"ana": 2, "ben": 1}
    # Yesterday's claims of conversations no longer held do not count today.
    lc.hand_back(store, a, by="ana", at=day + 8)
    assert pr.abuse_shown(store, since=day + 10) == {}
    assert pr.abuse_shown(store, since=day) == {"ana": 2, "ben": 1}


def test_final_notice_posts_the_text_and_closes_as_the_supervisor(store: Store) -> None:
    lc.register_agent(store, "sam", role="supervisor")
    cid = lc.open_conversation(store, "Rex")
    _abusive(store, cid, "you morons")
    lc.claim(store, cid, "ana")
    before = read_events(store)[-1].id
    mid = pr.final_notice(store, cid, by="sam")
    conv = get_conversation(store, cid)
    assert conv["state"] == "resolved" and conv["owner"] is None
    last = transcript(store, cid)[-1]
    assert (last["id"], last["role"], last["text"]) == (mid, "system", pr.FINAL_NOTICE_TEXT)
    events = [e for e in read_events(store) if e.id > before]
    assert [(e.kind, e.actor) for e in events] == [("message", "tandem"), ("resolved", "sam")]
    assert check(store) == []
    with pytest.raises(InvalidTransition, match="resolved"):
        pr.final_notice(store, cid, by="sam")


def test_final_notice_needs_a_supervisor_and_abuse_on_record(store: Store) -> None:
    lc.register_agent(store, "sam", role="supervisor")
    lc.register_agent(store, "ana")
    cid = lc.open_conversation(store, "Maya")
    lc.add_customer_message(store, cid, "my card is blocked")
    with pytest.raises(InvalidTransition, match="no abusive message"):
        pr.final_notice(store, cid, by="sam")
    _abusive(store, cid, "idiots")
    with pytest.raises(Forbidden):
        pr.final_notice(store, cid, by="ana")
    assert get_conversation(store, cid)["state"] == "bot"


def test_an_abusive_first_message_is_not_kept_as_the_subject(store: Store) -> None:
    cid = lc.open_conversation(store, "Rex")
    _abusive(store, cid, "you   useless idiots")
    assert get_conversation(store, cid)["subject"] == ""
    # The next message names the conversation; triaged clean, it keeps the name.
    clean = lc.add_customer_message(store, cid, "where is my card").message_id
    assert get_conversation(store, cid)["subject"] == "where is my card"
    lc.record_triage(store, cid, lc.TriageMark("calm", 0.1), message_id=clean)
    assert get_conversation(store, cid)["subject"] == "where is my card"
    # A later abusive message never touches a subject taken from another message.
    _abusive(store, cid, "idiots")
    assert get_conversation(store, cid)["subject"] == "where is my card"


def test_the_hub_marks_the_abusive_message_not_the_calm_ones_after_it(db_path: Path) -> None:
    import asyncio

    from console.hub import make_hub

    hub = make_hub(db_path)
    with Store(db_path) as store:
        cid = lc.open_conversation(store, "Rex", channel="sim")
        rude = lc.add_customer_message(store, cid, "you useless idiots").message_id
    asyncio.run(hub.drain())
    with Store(db_path) as store:
        calm = lc.add_customer_message(store, cid, "ok, where is my card").message_id
    asyncio.run(hub.drain())
    hub.close()
    with Store(db_path) as store:
        rows = {m["id"]: m for m in transcript(store, cid)}
        # The conversation still carries `abuse`; only the insult itself is masked.
        assert "abuse" in rows[calm]["reasons"]
        assert pr.is_abusive(rows[rude]) and not pr.is_abusive(rows[calm])
        lc.register_agent(store, "ana")
        lc.claim(store, cid, "ana")
        assert pr.abuse_shown(store, since=0) == {"ana": 1}
        with pytest.raises(InvalidInput):
            pr.reveal(store, calm, by="ana")


def test_the_console_masks_by_the_messages_own_mark() -> None:
    from console.ui.model import masked

    after = {"role": "customer", "level": "watch", "reasons": ["abuse"]}
    assert masked(after)  # no mark (an older store, a test): the reasons decide
    assert not masked({**after, "meta": {"abusive": False}})
    assert masked({**after, "reasons": [], "meta": {"abusive": True}})
    # Not triaged yet, in a conversation flagged abusive: masked until triage says.
    assert masked({"role": "customer", "level": None, "reasons": []}, ["abuse"])
    assert not masked({"role": "bot", "reasons": ["abuse"]})
