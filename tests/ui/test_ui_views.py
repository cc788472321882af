"""store/views.py: the reads behind the wall, the side panel and the supervisor view."""

from __future__ import annotations

import json

from store import Store, lifecycle
from store.lifecycle import TriageMark
from store.views import (
    conversation_context,
    supervisor_metrics,
    supervisor_series,
    wall_rows,
)


def test_wall_rows_carry_the_last_turns_without_notes(store: Store) -> None:
    cid = lifecycle.open_conversation(store, "Maya", external_id="m")
    for i in range(5):
        mid = lifecycle.add_customer_message(store, cid, f"question {i}").message_id
        lifecycle.bot_reply(store, cid, f"answer {i}", reply_to=mid)
    lifecycle.add_note(store, cid, "ana", "internal only")
    other = lifecycle.open_conversation(store, "Omar")
    [row] = wall_rows(store, ids=[cid])
    assert [t["text"] for t in row["turns"]] == ["answer 3", "question 4", "answer 4"]
    rows = {r["id"]: r for r in wall_rows(store)}
    assert set(rows) == {cid, other} and rows[other]["turns"] == []
    lifecycle.resolve(store, other, by="hub")
    assert other not in {r["id"] for r in wall_rows(store)}  # only live ones by default
    assert wall_rows(store, ids=[other])[0]["state"] == "resolved"  # but asked by id: yes


def test_context_has_history_triage_and_kb_titles(store: Store) -> None:
    first = lifecycle.open_conversation(store, "Maya", external_id="m")
    lifecycle.add_customer_message(store, first, "old question")
    lifecycle.resolve(store, first, by="hub")
    cid = lifecycle.open_conversation(store, "Maya", external_id="m")
    mid = lifecycle.add_customer_message(store, cid, "my card is gone").message_id
    store.conn.execute(
        "INSERT INTO kb_articles (id, title, body, updated_at) VALUES ('KB-9', 'Lost cards', 'x', 0)"
    )
    lifecycle.bot_reply(
        store, cid, "freeze it in the app", reply_to=mid, meta={"kb": ["KB-9", "KB-missing"]}
    )
    lifecycle.record_triage(store, cid, TriageMark("empathy", 0.7, ["fraud"]), message_id=mid)
    lifecycle.escalate(store, cid, reasons=["fraud"])
    ctx = conversation_context(store, cid)
    assert [h["id"] for h in ctx["history"]] == [first]
    assert [(t["kind"], t["reasons"]) for t in ctx["triage"]] == [
        ("triaged", ["fraud"]),
        ("escalated", ["fraud"]),
    ]
    assert ctx["kb"] == [{"id": "KB-9", "title": "Lost cards"}, {"id": "KB-missing", "title": ""}]


def test_supervisor_metrics(store: Store) -> None:
    a = lifecycle.open_conversation(store, "A")
    b = lifecycle.open_conversation(store, "B")
    c = lifecycle.open_conversation(store, "C")
    lifecycle.escalate(store, a, reasons=["human_request"], at=1000.0)
    lifecycle.escalate(store, b, reasons=["human_request"], at=1100.0)
    lifecycle.claim(store, c, "ana")
    m = supervisor_metrics(store, sla_seconds=150, at=1200.0)
    assert m["queue"] == 2 and m["oldest_wait"] == 200.0 and m["breaching"] == 1
    assert m["states"] == {"bot": 0, "waiting": 2, "human": 1, "resolved": 0}
    assert [(x["name"], x["holding"]) for x in m["agents"]] == [("ana", [c])]
    json.dumps(m)  # plain data: it crosses a thread in a message


def test_supervisor_metrics_per_level_targets(store: Store) -> None:
    urgent = lifecycle.open_conversation(store, "U")
    watch = lifecycle.open_conversation(store, "W")
    lifecycle.escalate(store, urgent, reasons=["fraud"], level="urgent", at=1000.0)
    lifecycle.escalate(store, watch, reasons=["human_request"], level="watch", at=1000.0)
    m = supervisor_metrics(store, sla_s={"urgent": 60.0, "watch": 600.0}, at=1090.0)
    assert m["breaching"] == 1
    assert m["breaching_by_level"] == {"calm": 0, "watch": 0, "empathy": 0, "urgent": 1}
    assert [(w["id"], w["level"], w["wait"]) for w in m["waiting"]] == [
        (urgent, "urgent", 90.0),
        (watch, "watch", 90.0),
    ]
    # A level the targets leave out gets sla_seconds.
    assert m["sla_s"] == {"calm": 120.0, "watch": 600.0, "empathy": 120.0, "urgent": 60.0}


def test_supervisor_series_on_a_hand_built_history(store: Store) -> None:
    """Three 10-minute buckets from t=1000 to 2800; targets urgent 60 s, empathy 180, else 600."""
    sla = {"calm": 600.0, "watch": 600.0, "empathy": 180.0, "urgent": 60.0}
    d, a, b, c = (lifecycle.open_conversation(store, n) for n in "DABC")
    lifecycle.escalate(store, d, reasons=["fraud"], level="urgent", at=900.0)  # before the window
    lifecycle.abandon(store, d, at=1050.0)  # breached at 960: before the window, not counted
    lifecycle.escalate(store, a, reasons=["fraud"], level="urgent", at=1100.0)
    lifecycle.escalate(store, b, reasons=["frustration"], level="empathy", at=1150.0)
    lifecycle.claim(store, a, "ana", at=1200.0)  # waited 100 s: breached at 1160
    lifecycle.claim(store, b, "bob", at=1400.0)  # waited 250 s: breached at 1330
    lifecycle.escalate(store, c, reasons=["human_request"], level="watch", at=1700.0)
    # c still waits at 2800: it breached at 2300, in the last bucket.
    s = supervisor_series(store, since=1000.0, sla_s=sla, bucket_s=600.0, at=2800.0)
    assert s["escalations"] == [2, 1, 0]
    assert s["queue"] == [2, 1, 1]  # d waited at the start; a and b at once; then c
    assert s["breaches"] == [2, 0, 1]
