"""Store functions behind the hub, the channel API and the benches (what a second backend implements).

Each test writes through the lifecycle on a real file and reads back through the function,
so a backend that gets a filter, an order or a window edge wrong fails here.
"""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from store import NotFound, Store, Taken, bulk, hub_state, presence, queries, queue, sla
from store import drafts as draft_log
from store import lifecycle as lc
from store.feed import Follower, events_with_messages, read_events
from store.kb import KbArticle, article_ids, upsert_articles

T0 = 1_700_000_000.0


def _events(store: Store, cid: int) -> list[tuple[str, int | None]]:
    return [(e.kind, e.message_id) for e in read_events(store) if e.conversation_id == cid]


def _message_level(store: Store, mid: int) -> str | None:
    return next(
        m["level"]
        for m in queries.transcript(store, _conversation_of(store, mid))
        if m["id"] == mid
    )


def _conversation_of(store: Store, mid: int) -> int:
    msg = queries.message(store, mid)
    assert msg is not None
    return int(msg["conversation_id"])


def test_escalate_stores_the_verdict_on_the_message_in_the_same_transaction(store: Store) -> None:
    cid = lc.open_conversation(store, "Maya")
    mid = lc.add_customer_message(store, cid, "I want a person").message_id
    mark = lc.TriageMark("empathy", 0.7, ["human_request"], '{"upto": 2}')
    notice = lc.escalate(
        store,
        cid,
        reasons=["human_request"],
        level="empathy",
        triage=mark,
        message_id=mid,
        message="A person will join you.",
        at=T0,
    )
    feed = [e for e in read_events(store) if e.conversation_id == cid]
    assert [(e.kind, e.message_id) for e in feed[-3:]] == [
        ("triaged", mid),
        ("escalated", None),
        ("message", notice),
    ]
    assert {e.at for e in feed[-3:]} == {T0}  # one write: one time for all three rows
    assert feed[-3].data == {"level": "empathy", "score": 0.7, "reasons": ["human_request"]}
    assert _message_level(store, mid) == "empathy"
    conv = queries.get_conversation(store, cid)
    assert (conv["state"], conv["level"], conv["reasons"]) == (
        "waiting",
        "empathy",
        ["human_request"],
    )

    # A refused escalation leaves the verdict unwritten too: nothing is half done.
    other = lc.open_conversation(store, "Ola")
    mid = lc.add_customer_message(store, other, "hello?").message_id
    lc.claim(store, other, "ana")
    before = _events(store, other)
    with pytest.raises(Taken):
        lc.escalate(store, other, reasons=["human_request"], triage=mark, message_id=mid)
    assert _events(store, other) == before
    assert _message_level(store, mid) is None
    assert queries.get_conversation(store, other)["level"] == "calm"


def test_what_the_hub_reads_about_one_conversation(store: Store) -> None:
    assert hub_state.conversation(store, 999) is None
    cid = lc.open_conversation(store, "Maya")
    assert hub_state.last_turn(store, cid) is None
    first = lc.add_customer_message(store, cid, "Where is my card?", at=T0).message_id
    reply = lc.bot_reply(store, cid, "It ships in 3 days.", reply_to=first, meta={"fallback": True})
    lc.add_note(store, cid, "ana", "internal")
    conv = hub_state.conversation(store, cid)
    assert conv == hub_state.HubConversation("bot", 0, None, "Maya", 0)
    turns = hub_state.turns_after(store, cid, 0)
    assert [(t.id, t.role) for t in turns] == [(first, "customer"), (reply, "bot")]
    assert turns[0].created_at == T0 and '"fallback": true' in (turns[1].meta or "")
    assert hub_state.turns_after(store, cid, reply) == []
    assert hub_state.last_turn(store, cid) == hub_state.LastTurn(reply, "bot", turns[1].created_at)
    assert not hub_state.customer_wrote_after(store, cid, first)
    again = lc.add_customer_message(store, cid, "Still nothing").message_id
    assert hub_state.customer_wrote_after(store, cid, first)
    assert hub_state.last_turn(store, cid).id == again  # type: ignore[union-attr]

    assert hub_state.waiting_escalation(store, cid) is None  # with the bot
    assert hub_state.settled_findings(store, cid) is None  # nobody settled anything yet
    lc.record_triage(store, cid, lc.TriageMark("watch", 0.4, ["repeat_question"]), message_id=again)
    lc.escalate(store, cid, reasons=["repeat_question"], level="watch", note="rule x")
    assert hub_state.waiting_escalation(store, cid) == {
        "reasons": ["repeat_question"],
        "level": "watch",
        "note": "rule x",
    }
    lc.claim(store, cid, "ana")
    assert hub_state.waiting_escalation(store, cid) is None  # no longer waiting
    lc.hand_back(store, cid, by="ana")
    lc.record_triage(store, cid, lc.TriageMark("urgent", 0.9, ["fraud"]))  # after: not settled
    settled = hub_state.settled_findings(store, cid)
    assert settled is not None
    assert [(d.get("level"), d["reasons"]) for d in settled] == [
        ("watch", ["repeat_question"]),
        ("watch", ["repeat_question"]),
    ]
    assert hub_state.conversation(store, cid).version > 0  # type: ignore[union-attr]


def test_queue_counts_and_order(store: Store) -> None:
    ids = []
    for n, level in enumerate(["empathy", "urgent", "watch"]):
        cid = lc.open_conversation(store, f"c{n}")
        lc.add_customer_message(store, cid, "help")
        lc.escalate(store, cid, reasons=["human_request"], level=level, at=T0 + 10 - n)
        ids.append(cid)
    lc.open_conversation(store, "with the bot")
    assert [w.id for w in queue.waiting_longest_first(store)] == ids[::-1]
    assert [w.id for w in queue.waiting_longest_first(store, limit=1)] == [ids[2]]
    # The SLA timers' read: the same order, each with its latest escalation's data.
    again = lc.open_conversation(store, "twice")
    lc.add_customer_message(store, again, "help")
    lc.escalate(store, again, reasons=["human_request"], level="watch", at=T0)
    lc.claim(store, again, "ana", at=T0 + 1)
    lc.hand_back(store, again, by="ana", at=T0 + 2)
    lc.escalate(store, again, reasons=["fraud"], level="urgent", note="again", at=T0 + 11)
    timers = hub_state.waiting_longest_first(store)
    assert [(w.id, w.waiting_since) for w in timers] == [
        (w.id, w.waiting_since) for w in queue.waiting_longest_first(store)
    ]
    assert [w.id for w in timers] == [*ids[::-1], again]
    assert [hub_state.escalation_data(w.escalated) for w in timers] == [
        hub_state.waiting_escalation(store, cid) for cid in [*ids[::-1], again]
    ]
    latest = hub_state.escalation_data(timers[-1].escalated)
    assert latest is not None and latest["reasons"] == ["fraud"]
    assert [w.id for w in hub_state.waiting_longest_first(store, limit=1)] == [ids[2]]
    lc.resolve(store, again, by="hub")
    assert queue.oldest_waiting_since(store) == T0 + 8
    lc.claim(store, ids[0], "ana", at=T0 + 20)
    lc.register_agent(store, "bo")
    # ana holds a conversation; bo was just seen; nobody else exists.
    assert presence.agents_online(store, since=T0 + 10**9) == 1
    assert presence.agents_online(store, since=0) == 2
    for cid in ids[1:]:
        lc.resolve(store, cid, by="hub")
    assert queue.oldest_waiting_since(store) is None and queue.waiting_longest_first(store) == []
    assert hub_state.waiting_longest_first(store) == []


def test_the_place_in_the_queue_is_counted_in_the_policys_order(store: Store) -> None:
    """views.waiting_ahead on this backend agrees with policy.queue_ahead, ties included."""
    from console.policy import LEVELS, queue_ahead
    from store.views import waiting_ahead, waiting_queue

    for n, (level, since) in enumerate(
        [("urgent", 5.0), ("empathy", 0.0), ("empathy", 5.0), ("empathy", 5.0), ("calm", 0.0)]
    ):
        cid = lc.open_conversation(store, f"q{n}")
        lc.add_customer_message(store, cid, "help")
        lc.escalate(store, cid, reasons=["human_request"], level=level, at=T0 + since)
    rows = waiting_queue(store)
    tied = sorted(r["id"] for r in rows if r["level"] == "empathy")[1]
    for level in LEVELS:
        for since in (T0 - 1, T0, T0 + 5.0, T0 + 9.0):
            for cid in (tied, 10_000):
                entry = {"id": cid, "level": level, "waiting_since": since}
                assert waiting_ahead(
                    store, conversation_id=cid, level=level, waiting_since=since
                ) == queue_ahead(rows, entry), entry


def test_a_triage_mark_stores_the_messages_abusive_flag_with_its_verdict(store: Store) -> None:
    cid = lc.open_conversation(store, "Rex")
    rude = lc.add_customer_message(store, cid, "you useless clowns").message_id
    calm = lc.add_customer_message(store, cid, "ok where is my card").message_id
    lc.record_triage(
        store, cid, lc.TriageMark("watch", 0.5, ["abuse"], abusive=True), message_id=rude
    )
    lc.record_triage(
        store, cid, lc.TriageMark("watch", 0.4, ["abuse"], abusive=False), message_id=calm
    )
    for mid, abusive in ((rude, True), (calm, False)):
        msg = queries.message(store, mid)
        assert msg is not None and msg["meta"] == {"abusive": abusive}, msg
        assert _message_level(store, mid) == "watch"
    # A message with a document already: the flag joins (or replaces) its keys.
    noted = lc.post_system(store, cid, "Welcome back.", meta={"reopened": 7})
    for abusive in (True, False):
        lc.record_triage(
            store, cid, lc.TriageMark("calm", 0.1, [], abusive=abusive), message_id=noted
        )
        msg = queries.message(store, noted)
        assert msg is not None and msg["meta"] == {"reopened": 7, "abusive": abusive}, msg


def test_sla_windows(store: Store) -> None:
    assert sla.handling_time(store, since=0) == sla.Handling(0, None)
    for n in range(3):
        cid = lc.open_conversation(store, f"c{n}", at=T0)
        lc.add_customer_message(store, cid, "help", at=T0)
        lc.escalate(store, cid, reasons=["human_request"], at=T0 + 100 * n)
        lc.claim(store, cid, "ana", at=T0 + 100 * n + 30)
        lc.agent_reply(store, cid, "ana", "Hi", at=T0 + 100 * n + 40)
        if n < 2:  # the last one is still with ana
            lc.resolve(store, cid, by="ana", at=T0 + 100 * n + 90)
    assert sla.handling_time(store, since=T0) == sla.Handling(2, 60.0)
    assert sla.handling_time(store, since=T0 + 100) == sla.Handling(1, 60.0)
    # Closing a conversation forgets when it joined the queue: only the open one has a wait.
    assert sla.claim_waits(store, since=T0) == [30.0]
    assert sla.claim_waits(store, since=T0 + 231) == []
    assert sla.first_reply_waits(store, since=T0) == [10.0, 10.0, 10.0]

    quiet = lc.open_conversation(store, "quiet", at=T0)
    answered = lc.open_conversation(store, "answered", at=T0)
    mid = lc.add_customer_message(store, answered, "hi", at=T0)
    lc.bot_reply(store, answered, "Hello!", reply_to=mid.message_id, at=T0 + 1)
    owed = lc.open_conversation(store, "owed", at=T0)
    lc.add_customer_message(store, owed, "anyone?", at=T0)
    assert sorted(sla.quiet_bot_conversations(store, before=T0 + 60)) == [quiet, answered]
    assert sla.quiet_bot_conversations(store, before=T0 - 1) == []
    assert len(sla.quiet_bot_conversations(store, before=T0 + 60, limit=1)) == 1


def test_messages_tokens_drafts_and_articles(store: Store) -> None:
    cid = lc.open_conversation(store, "Maya", token_hash="abc")
    bare = lc.open_conversation(store, "Ola")
    mid = lc.add_customer_message(store, cid, "hi").message_id
    bot = lc.bot_reply(store, cid, "Hello", reply_to=mid, meta={"intent": "clarify"})
    msg = queries.message(store, bot)
    assert msg is not None
    assert (msg["conversation_id"], msg["role"], msg["text"], msg["reply_to"]) == (
        cid,
        "bot",
        "Hello",
        mid,
    )
    assert msg["meta"] == {"intent": "clarify"} and queries.message(store, mid)["meta"] == {}  # type: ignore[index]
    assert queries.message(store, 10**6) is None
    assert queries.customer_token_hash(store, cid) == "abc"
    assert queries.customer_token_hash(store, bare) is None
    with pytest.raises(NotFound):
        queries.customer_token_hash(store, 10**6)

    assert draft_log.draft_count(store, cid) == 0
    draft_log.start(store, cid, engine="embedded")
    draft_log.start(store, cid, engine="embedded")
    assert draft_log.draft_count(store, cid) == 2 and draft_log.draft_count(store, bare) == 0

    assert article_ids(store) == set()
    upsert_articles(
        store, [KbArticle("KB-1", "Cards", "About cards"), KbArticle("KB-2", "Fees", "Fees")]
    )
    assert article_ids(store) == {"KB-1", "KB-2"}


def test_events_with_messages_and_bulk_rows(store: Store) -> None:
    first = lc.open_conversation(store, "a")
    mid = lc.add_customer_message(store, first, "hi").message_id
    lc.escalate(store, first, reasons=["human_request"])
    outside = lc.open_conversation(store, "b")
    lc.add_customer_message(store, outside, "hi")
    rows = events_with_messages(store, first=first, last=first, kinds=("message", "escalated"))
    assert [(r.kind, r.message_id, r.role) for r in rows] == [
        ("message", mid, "customer"),
        ("escalated", None, None),
    ]
    assert events_with_messages(store, first=first, last=outside, kinds=()) == []

    bulk.insert_rows(
        store, "customers", ("id", "name", "created_at"), [(100, "x", T0), (101, "y", T0)]
    )
    assert store.one("SELECT count(*) FROM customers WHERE id >= 100")[0] == 2  # type: ignore[index]
    with pytest.raises(ValueError, match="not supported"):
        bulk.insert_rows(store, "cursors", ("name",), [("x",)])
    with pytest.raises(ValueError, match="unknown columns"):
        bulk.insert_rows(store, "customers", ("id", "name; DROP TABLE customers"), [(1, "x")])
    # All or none: a bad row rolls back the good ones before it.
    with pytest.raises(Exception):  # noqa: B017 - sqlite3.IntegrityError, whatever the backend says
        bulk.insert_rows(
            store, "customers", ("id", "name", "created_at"), [(200, "ok", T0), (100, "dup", T0)]
        )
    assert store.one("SELECT count(*) FROM customers WHERE id = 200")[0] == 0  # type: ignore[index]
    bulk.analyze(store)


def test_a_follower_of_some_shards_reads_their_events_and_the_whole_feed_s_end(
    db_path: Path,
) -> None:
    # Hub workers read only their shards' events; the cursor still passes the others'.
    store = Store(db_path)
    ids = [lc.open_conversation(store, f"c{n}") for n in range(6)]
    mine = {c for c in ids if c % 3 == 1}
    follower = Follower(db_path, after=0, batch=100)
    follower.shards, follower.of = frozenset({1}), 3
    assert {e.conversation_id for e in follower.poll()} == mine
    end = read_events(store)[-1].id
    assert follower.cursor == end
    other = next(c for c in ids if c not in mine)
    lc.add_customer_message(store, other, "not ours")
    deadline = time.monotonic() + 30  # PostgreSQL: the commit's notification comes when it comes
    while follower.cursor != end + 1:
        assert follower.poll() == [] and time.monotonic() < deadline
        time.sleep(0.01)
    follower.batch = 1  # a full batch: the cursor stops at its last event
    lc.add_customer_message(store, min(mine), "ours")
    lc.add_customer_message(store, max(mine), "ours too")
    assert [e.conversation_id for e in follower.wait(timeout=30)] == [min(mine)]
    assert follower.cursor == end + 2
    assert [e.conversation_id for e in follower.wait(timeout=30)] == [max(mine)]
    follower.close()
    store.close()


def test_a_follower_is_not_woken_by_its_own_writes_and_still_reads_them(
    db_path: Path, backend: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A hub's own replies are no news to its feed (PostgreSQL: their notifications carry the
    # hub's server process); they are read with the next commit of anyone else.
    monkeypatch.setattr("store.pg.FEED_RESCAN_S", 3600.0)  # no periodic rescan in this test
    mine, theirs = Store(db_path), Store(db_path)
    follower = Follower(db_path, after=None)
    follower.own_writes = mine
    assert follower.poll() == []  # listening from the end of the feed
    cid = lc.open_conversation(mine, "Maya")
    own = lc.add_customer_message(mine, cid, "from the hub's own connection").message_id
    if backend == "postgresql":
        time.sleep(0.2)  # the notification has come by now (or comes later: still no news)
        assert follower.poll() == []
    other = lc.add_customer_message(theirs, cid, "from another connection").message_id
    seen: list[int | None] = []
    deadline = time.monotonic() + 30
    while other not in seen:
        assert time.monotonic() < deadline
        seen += [e.message_id for e in follower.wait(timeout=1)]
    assert own in seen and seen.index(own) < seen.index(other)
    follower.close()
    mine.close()
    theirs.close()
