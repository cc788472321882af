"""The lifecycle API: every allowed move, every refusal and its words, the feed rows."""

from __future__ import annotations

import pytest

from store import InvalidInput, InvalidTransition, NotFound, NotOwner, Store, Taken
from store import lifecycle as lc
from store.check import check
from store.feed import read_events
from store.queries import get_conversation, status_counts, transcript


def _kinds(store: Store, cid: int) -> list[str]:
    return [e.kind for e in read_events(store) if e.conversation_id == cid]


def _waiting(store: Store, name: str = "Maya") -> int:
    cid = lc.open_conversation(store, name)
    lc.add_customer_message(store, cid, "I want to talk to a person")
    lc.escalate(store, cid, reasons=["human_request"], level="empathy")
    return cid


def test_full_path_appends_one_event_per_move(store: Store) -> None:
    cid = lc.open_conversation(store, "Maya", channel="sim")
    posted = lc.add_customer_message(store, cid, "Where is my refund?", idempotency_key="m1")
    lc.bot_reply(store, cid, "Refunds take 3-5 days.", reply_to=posted.message_id)
    lc.escalate(store, cid, reasons=["repeat_question"], message="A person will join shortly.")
    lc.claim(store, cid, "ana")
    lc.agent_reply(store, cid, "ana", "Hi Maya, Ana here.")
    lc.add_note(store, cid, "ana", "checked the ledger")
    lc.hand_back(store, cid, by="ana")
    lc.resolve(store, cid, by="bot")
    assert _kinds(store, cid) == [
        "opened",
        "message",
        "message",
        "escalated",
        "message",
        "claimed",
        "message",
        "message",
        "handed_back",
        "resolved",
    ]
    conv = get_conversation(store, cid)
    assert conv["state"] == "resolved" and conv["owner"] is None
    assert conv["message_count"] == 4  # the note is internal and not counted
    assert conv["first_human_reply_at"] is not None
    assert check(store) == []


def test_customer_message_reopens_a_resolved_conversation(store: Store) -> None:
    cid = lc.open_conversation(store, "Maya")
    lc.resolve(store, cid, by="bot")
    posted = lc.add_customer_message(store, cid, "one more thing")
    assert posted.reopened and posted.state == "bot"
    assert get_conversation(store, cid)["state"] == "bot"
    assert _kinds(store, cid)[-2:] == ["reopened", "message"]


def test_idempotency_key_stores_once(store: Store) -> None:
    cid = lc.open_conversation(store, "Maya")
    first = lc.add_customer_message(store, cid, "hello", idempotency_key="k")
    again = lc.add_customer_message(store, cid, "hello", idempotency_key="k")
    assert again.duplicate and again.message_id == first.message_id
    assert len(transcript(store, cid)) == 1
    other = lc.open_conversation(store, "Ben")
    assert not lc.add_customer_message(store, other, "hello", idempotency_key="k").duplicate


def test_claim_refusals_name_the_owner(store: Store) -> None:
    cid = _waiting(store)
    lc.claim(store, cid, "ana")
    lc.claim(store, cid, "ana")  # claiming what one owns is a no-op
    with pytest.raises(Taken, match="taken by ana"):
        lc.claim(store, cid, "bob")
    lc.resolve(store, cid, by="ana")
    with pytest.raises(InvalidTransition, match="is resolved"):
        lc.claim(store, cid, "bob")


def test_bot_cannot_post_unless_it_owns(store: Store) -> None:
    cid = _waiting(store)
    with pytest.raises(NotOwner, match="waiting"):
        lc.bot_reply(store, cid, "let me help")
    lc.claim(store, cid, "ana")
    with pytest.raises(NotOwner, match="taken by ana"):
        lc.bot_reply(store, cid, "let me help")
    assert [m["role"] for m in transcript(store, cid)] == ["customer"]


def test_bot_answers_a_message_once(store: Store) -> None:
    cid = lc.open_conversation(store, "Maya")
    mid = lc.add_customer_message(store, cid, "hi").message_id
    lc.bot_reply(store, cid, "Hello!", reply_to=mid)
    with pytest.raises(lc.AlreadyAnswered):
        lc.bot_reply(store, cid, "Hello again!", reply_to=mid)


def test_replies_posted_together_are_each_checked_alone(store: Store) -> None:
    # The hub posts a pass's replies in one transaction: a refused one is undone alone.
    ok, taken, answered, empty = (lc.open_conversation(store, n) for n in "ABCD")
    mids = {c: lc.add_customer_message(store, c, "hi").message_id for c in (ok, taken, answered)}
    lc.claim(store, taken, "ana")
    lc.bot_reply(store, answered, "Hello!", reply_to=mids[answered])
    before = {c: get_conversation(store, c) for c in (taken, answered, empty)}
    mark = lc.TriageMark("watch", 0.4, ["repeat_question"], '{"upto":1}', abusive=False)
    results = lc.bot_replies(
        store,
        [
            lc.BotReply(ok, "Hello!", reply_to=mids[ok], triage=mark, fallback=True),
            lc.BotReply(taken, "Hello!", reply_to=mids[taken], triage=mark),
            lc.BotReply(answered, "Hello again!", reply_to=mids[answered], triage=mark),
            lc.BotReply(empty, "  ", triage=mark),
        ],
    )
    assert isinstance(results[0], int)
    assert [type(r) for r in results[1:]] == [NotOwner, lc.AlreadyAnswered, InvalidInput]
    conv = get_conversation(store, ok)
    assert (conv["level"], conv["reasons"], conv["bot_fallbacks"]) == (
        "watch",
        ["repeat_question"],
        1,
    )
    assert transcript(store, ok)[-1]["text"] == "Hello!"
    assert {c: get_conversation(store, c) for c in before} == before
    assert [m["text"] for m in transcript(store, answered)] == ["hi", "Hello!"]
    assert _kinds(store, ok)[-1] == "message" and _kinds(store, taken)[-1] == "claimed"
    assert check(store) == []


def test_a_reply_refused_after_it_wrote_undoes_only_itself(store: Store) -> None:
    # Refusals are found before a reply writes, so a group needs no savepoints; one found
    # later (a reply to a message that does not exist) rolls the group back, and the group
    # is posted again with a savepoint per reply: the others are posted once.
    ok, bad = lc.open_conversation(store, "A"), lc.open_conversation(store, "B")
    mid = lc.add_customer_message(store, ok, "hi").message_id
    lc.add_customer_message(store, bad, "hi")
    before = get_conversation(store, bad)
    mark = lc.TriageMark("watch", 0.4, ["repeat_question"], '{"upto":1}', abusive=False)
    results = lc.bot_replies(
        store,
        [
            lc.BotReply(ok, "Hello!", reply_to=mid, triage=mark),
            lc.BotReply(bad, "Hello!", reply_to=10**9, triage=mark),
        ],
    )
    assert isinstance(results[0], int) and isinstance(results[1], lc.AlreadyAnswered)
    assert [m["text"] for m in transcript(store, ok)] == ["hi", "Hello!"]
    assert get_conversation(store, ok)["message_count"] == 2
    assert get_conversation(store, bad) == before
    assert _kinds(store, ok).count("message") == 2
    assert check(store) == []


def test_only_owner_replies_and_hands_back(store: Store) -> None:
    cid = _waiting(store)
    lc.claim(store, cid, "ana")
    with pytest.raises(Taken, match="taken by ana"):
        lc.agent_reply(store, cid, "bob", "hi")
    with pytest.raises(Taken):
        lc.hand_back(store, cid, by="bob")
    with pytest.raises(Taken):
        lc.resolve(store, cid, by="bob")
    other = lc.open_conversation(store, "Ben")
    with pytest.raises(NotOwner, match="does not own"):
        lc.agent_reply(store, other, "ana", "hi")


def test_supervisor_moves(store: Store) -> None:
    lc.register_agent(store, "sam", role="supervisor")
    cid = _waiting(store)
    with pytest.raises(NotOwner, match="only a supervisor"):
        lc.assign(store, cid, "ana", by="bob")
    lc.assign(store, cid, "ana", by="sam")
    lc.transfer(store, cid, "bob", by="sam")
    assert get_conversation(store, cid)["owner"] == "bob"
    with pytest.raises(InvalidTransition, match="already bob's"):
        lc.transfer(store, cid, "bob", by="sam")
    lc.hand_back(store, cid, by="sam")
    cid2 = _waiting(store, "Ben")
    lc.release(store, cid2, by="sam")
    assert get_conversation(store, cid2)["state"] == "bot"
    cid3 = _waiting(store, "Cy")
    lc.abandon(store, cid3)
    assert _kinds(store, cid3)[-1] == "abandoned"
    assert check(store) == []


@pytest.mark.parametrize(
    ("move", "state"),
    [
        (lambda s, c: lc.escalate(s, c, reasons=["x"]), "waiting"),
        (lambda s, c: lc.hand_back(s, c, by="ana"), "waiting"),
        (lambda s, c: lc.abandon(s, c), "bot"),
        (lambda s, c: lc.release(s, c, by="sam"), "bot"),
    ],
)
def test_invalid_transitions_change_nothing(store: Store, move, state: str) -> None:  # noqa: ANN001
    lc.register_agent(store, "sam", role="supervisor")
    cid = lc.open_conversation(store, "Maya")
    if state == "waiting":
        lc.escalate(store, cid, reasons=["human_request"])
    before = len(read_events(store))
    with pytest.raises(InvalidTransition):
        move(store, cid)
    assert len(read_events(store)) == before
    assert get_conversation(store, cid)["state"] == state


def test_bad_input(store: Store) -> None:
    cid = lc.open_conversation(store, "Maya")
    with pytest.raises(InvalidInput, match="empty"):
        lc.add_customer_message(store, cid, "   ")
    with pytest.raises(InvalidInput, match="too long"):
        lc.add_customer_message(store, cid, "x" * (lc.MAX_TEXT + 1))
    with pytest.raises(NotFound, match="conversation 999 not found"):
        lc.add_customer_message(store, 999, "hi")
    with pytest.raises(InvalidInput):
        lc.escalate(store, cid, reasons=[])
    with pytest.raises(InvalidInput, match="unknown triage level"):
        lc.record_triage(store, cid, lc.TriageMark("panic", 1.0, []))
    assert transcript(store, cid) == []


def test_triage_event_only_when_verdict_changes(store: Store) -> None:
    cid = lc.open_conversation(store, "Maya")
    mid = lc.add_customer_message(store, cid, "my card was stolen").message_id
    mark = lc.TriageMark("urgent", 0.95, ["fraud"], state='{"n": 1}')
    assert lc.record_triage(store, cid, mark, message_id=mid)
    assert not lc.record_triage(store, cid, mark, message_id=mid)
    assert _kinds(store, cid).count("triaged") == 1
    conv = get_conversation(store, cid)
    assert (conv["level"], conv["reasons"]) == ("urgent", ["fraud"])
    assert transcript(store, cid)[0]["reasons"] == ["fraud"]


def test_status_counts(store: Store) -> None:
    _waiting(store)
    lc.open_conversation(store, "Ben")
    assert status_counts(store) == {"bot": 1, "waiting": 1, "human": 0, "resolved": 0}
