"""store/drafts.py: the drafts log and its metrics, on a real SQLite file."""

from __future__ import annotations

import pytest

from store import InvalidTransition, NotFound, Store, drafts, lifecycle


def _conversation(store: Store) -> tuple[int, int]:
    cid = lifecycle.open_conversation(store, "Maya")
    mid = lifecycle.add_customer_message(store, cid, "Where is my refund?").message_id
    lifecycle.claim(store, cid, "ana")
    return cid, mid


def test_lifecycle_of_an_accepted_draft(store: Store) -> None:
    cid, mid = _conversation(store)
    did = drafts.start(store, cid, engine="embedded", agent="ana", based_on_message_id=mid)
    assert drafts.get_draft(store, did)["outcome"] == "pending"
    drafts.finish(
        store,
        did,
        text="Hi Maya, refunds take 3-5 days.",
        first_text_ms=2.5,
        total_ms=4.0,
        kb_ids=["KB-7"],
    )
    reply = lifecycle.agent_reply(
        store, cid, "ana", "Hi Maya, refunds take 3-5 days.\n", draft_id=did
    )
    assert (
        drafts.mark_sent(store, did, "Hi Maya, refunds take 3-5 days.\n", message_id=reply)
        == "accepted"
    )
    row = drafts.get_draft(store, did)
    assert (
        row["edit_distance"] == 0 and row["sent_message_id"] == reply and row["kb_ids"] == ["KB-7"]
    )
    with pytest.raises(InvalidTransition):
        drafts.mark_sent(store, did, "again")
    assert drafts.discard(store, did) is False


def test_edit_distance_is_recorded(store: Store) -> None:
    cid, mid = _conversation(store)
    did = drafts.start(store, cid, engine="llm", model="m", based_on_message_id=mid)
    drafts.finish(store, did, text="Hello Maya", first_text_ms=100.0, total_ms=300.0)
    assert drafts.mark_sent(store, did, "Hello Maya!") == "edited"
    assert drafts.get_draft(store, did)["edit_distance"] == 1


def test_stale_only_when_a_newer_customer_message_exists(store: Store) -> None:
    cid, mid = _conversation(store)
    did = drafts.start(store, cid, engine="embedded", based_on_message_id=mid)
    assert drafts.mark_stale(store, cid) == []
    lifecycle.add_customer_message(store, cid, "Hello?")
    assert drafts.mark_stale(store, cid) == [did]
    assert drafts.get_draft(store, did)["outcome"] == "stale"
    # Finishing a draft that went stale while streaming keeps the verdict.
    drafts.finish(store, did, text="x", first_text_ms=1.0, total_ms=2.0)
    assert drafts.get_draft(store, did)["outcome"] == "stale"
    # The agent may still send it.
    assert drafts.mark_sent(store, did, "x") == "accepted"


def test_fallback_changes_engine_and_model(store: Store) -> None:
    cid, mid = _conversation(store)
    did = drafts.start(store, cid, engine="llm", model="gpt", based_on_message_id=mid)
    drafts.finish(
        store,
        did,
        text="t",
        first_text_ms=1.0,
        total_ms=1.0,
        engine="embedded",
        model=None,
        notice="LLM timed out",
    )
    row = drafts.get_draft(store, did)
    assert (row["engine"], row["model"], row["notice"]) == ("embedded", None, "LLM timed out")


def test_unknown_ids(store: Store) -> None:
    with pytest.raises(NotFound):
        drafts.start(store, 999, engine="embedded")
    with pytest.raises(NotFound):
        drafts.discard(store, 999)
    with pytest.raises(NotFound):
        drafts.get_draft(store, 999)


def test_metrics(store: Store) -> None:
    cid, mid = _conversation(store)
    empty = drafts.draft_metrics(store)
    assert empty.total == 0 and empty.acceptance_rate is None and empty.mean_edit_distance is None
    outcomes = []
    for i, (engine, ms) in enumerate(
        [("embedded", 2.0), ("embedded", 4.0), ("llm", 400.0), ("llm", 800.0)]
    ):
        did = drafts.start(store, cid, engine=engine, based_on_message_id=mid)
        drafts.finish(store, did, text="abcd", first_text_ms=ms, total_ms=ms * 2)
        outcomes.append(did)
        if i == 0:
            drafts.mark_sent(store, did, "abcd")
        elif i == 1:
            drafts.mark_sent(store, did, "abcdef")
        elif i == 2:
            drafts.discard(store, did)
    m = drafts.draft_metrics(store)
    assert m.total == 4
    assert m.by_outcome["accepted"] == 1 and m.by_outcome["edited"] == 1
    assert m.by_outcome["discarded"] == 1 and m.by_outcome["pending"] == 1
    assert m.acceptance_rate == pytest.approx(2 / 3)
    assert m.unchanged_rate == pytest.approx(0.5)
    assert m.mean_edit_distance == pytest.approx(1.0)
    assert m.first_text_by_engine["embedded"].drafts == 2
    assert m.first_text_by_engine["llm"].mean_ms == pytest.approx(600.0)
    # Percentiles are store.stats' nearest rank, as in every bench: the p50 of two is the smaller.
    assert m.first_text_by_engine["llm"].p50_ms == 400.0
    assert m.first_text_by_engine["embedded"].p90_ms == 4.0
    later = drafts.draft_metrics(store, since=10**12)
    assert later.total == 0


def test_a_fallback_draft_keeps_the_llm_wait_apart(store: Store) -> None:
    # The LLM timed out after 8 s and the embedded engine wrote the draft in 2 ms: the engine's
    # own time to first text is 2 ms; the 8 s are the LLM's, not the embedded engine's.
    cid, mid = _conversation(store)
    lost = drafts.start(store, cid, engine="llm", model="m", based_on_message_id=mid)
    drafts.finish(
        store,
        lost,
        text="Hi Maya.",
        first_text_ms=2.0,
        total_ms=8003.0,
        engine="embedded",
        llm_lost_ms=8000.0,
    )
    cut = drafts.start(store, cid, engine="llm", model="m", based_on_message_id=mid)
    drafts.finish(
        store,
        cut,
        text="Hi Maya, refunds",
        first_text_ms=300.0,
        total_ms=900.0,
        incomplete="the connection was cut",
    )
    assert drafts.get_draft(store, lost)["llm_lost_ms"] == 8000.0
    assert drafts.get_draft(store, lost)["incomplete"] is None
    assert drafts.get_draft(store, cut)["incomplete"] == "the connection was cut"
    metrics = drafts.draft_metrics(store)
    assert metrics.first_text_by_engine["embedded"].p90_ms == 2.0
    assert metrics.first_text_by_engine["llm"].p90_ms == 300.0
    assert metrics.incomplete == 1
    assert metrics.llm_lost is not None and metrics.llm_lost.drafts == 1
    assert metrics.llm_lost.p90_ms == 8000.0


def test_llm_fallbacks_are_counted_per_conversation(store: Store) -> None:
    from store.queries import get_conversation, transcript

    cid = lifecycle.open_conversation(store, "Maya")
    first = lifecycle.add_customer_message(store, cid, "What are the fees?").message_id
    lifecycle.bot_reply(store, cid, "Standard is free.", reply_to=first, llm_fallback=True)
    second = lifecycle.add_customer_message(store, cid, "And limits?").message_id
    lifecycle.bot_reply(store, cid, "Up to £5,000 a day.", reply_to=second)
    assert get_conversation(store, cid)["llm_fallbacks"] == 1
    lifecycle.add_customer_message(store, cid, "ok")
    lifecycle.escalate(
        store,
        cid,
        reasons=["bot_fallback"],
        message="A person will be with you.",
        message_meta={"llm_fallback": "ungrounded"},
        llm_fallback=True,
    )
    assert get_conversation(store, cid)["llm_fallbacks"] == 2
    assert transcript(store, cid)[-1]["meta"] == {"llm_fallback": "ungrounded"}
