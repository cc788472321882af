"""The hand-over summary a transfer carries: stored with it, read by the new owner only."""

from __future__ import annotations

from pathlib import Path

import pytest

from console.assist.summary import HandoverSummary, as_meta, from_meta
from console.cli import main
from store import Store
from store import lifecycle as lc
from store.errors import InvalidInput
from store.feed import read_events
from store.handover import for_owner

SUMMARY = HandoverSummary("“stop a payment”", "1 answer", "worried (urgent)", ("fraud",))


def test_the_summary_belongs_to_the_owner_it_came_to(store: Store) -> None:
    lc.register_agent(store, "sup", role="supervisor")
    cid = lc.open_conversation(store, "Maya")
    lc.add_customer_message(store, cid, "someone took money from my card")
    lc.claim(store, cid, "ana", at=100.0)
    assert for_owner(store, cid) is None  # a claim brings none

    lc.transfer(
        store,
        cid,
        "bo",
        by="sup",
        at=200.0,
        summary=SUMMARY.as_text(),
        summary_meta=as_meta(SUMMARY),
    )
    note = for_owner(store, cid)
    assert note is not None and note["author"] == "sup" and note["text"] == SUMMARY.as_text()
    assert from_meta(note["summary"]) == SUMMARY
    event = [e for e in read_events(store) if e.kind == "transferred"][-1]
    assert event.data["note"] == note["id"] and event.data["owner"] == "bo"

    lc.transfer(store, cid, "cy", by="sup", at=300.0)  # a transfer without one
    assert for_owner(store, cid) is None  # bo's summary is not cy's
    lc.transfer(store, cid, "bo", by="sup", at=400.0, summary="Wants: x", summary_meta={})
    assert for_owner(store, cid) is not None
    lc.hand_back(store, cid, by="sup", at=500.0)
    assert for_owner(store, cid) is None  # with the bot: nobody to brief


def test_a_bad_summary_refuses_the_whole_transfer(store: Store) -> None:
    lc.register_agent(store, "sup", role="supervisor")
    cid = lc.open_conversation(store, "Maya")
    lc.claim(store, cid, "ana")
    with pytest.raises(InvalidInput):
        lc.transfer(store, cid, "bo", by="sup", summary="   ")
    row = store.one("SELECT owner FROM conversations WHERE id = ?", (cid,))
    assert row is not None and row[0] == "ana"


def test_from_meta_reads_only_a_summary() -> None:
    assert from_meta({}) is None
    assert from_meta({"wants": 3, "tried": "x", "feeling": "y"}) is None
    odd = from_meta({"wants": "a\x1b[31m", "tried": "b", "feeling": "c", "engine": "<b>"})
    assert odd is not None and "\x1b" not in odd.wants and odd.engine == "embedded"


def test_tandem_conv_transfer_carries_the_embedded_summary(
    store: Store, db_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    lc.register_agent(store, "sup", role="supervisor")
    cid = lc.open_conversation(store, "Maya")
    lc.add_customer_message(store, cid, "Can you tell me why my card was declined at the shop?")
    lc.claim(store, cid, "ana")
    args = ["conv", "transfer", str(cid), "--db", str(db_path), "--agent", "bo", "--by", "sup"]
    assert main(args) == 0
    assert "with the hand-over summary" in capsys.readouterr().out
    note = for_owner(store, cid)
    assert note is not None and "why my card was declined" in note["summary"]["wants"]
