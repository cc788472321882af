"""`tandem report` against a hand-built history whose every figure is known."""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path

import pytest

from console.cli import main
from console.policy import PolicySettings
from store import Store
from store import lifecycle as lc
from store.db import now
from store.report import support_report
from store.stats import percentile

SLA = dict(PolicySettings().sla_s)  # urgent 60 s, empathy 180 s, watch/calm 600 s


def _bot_turn(store: Store, cid: int, text: str, at: float) -> None:
    posted = lc.add_customer_message(store, cid, text, idempotency_key=f"k{cid}-{at}", at=at)
    lc.bot_reply(store, cid, "Here is how that works.", reply_to=posted.message_id, at=at + 1)


def build_history(store: Store, t0: float) -> None:
    """Six conversations in the window and one before it (see the expected figures below)."""
    lc.register_agent(store, "sam", role="supervisor")
    # Before the window: never counted.
    old = lc.open_conversation(store, "Old", external_id="old", at=t0 - 100_000)
    _bot_turn(store, old, "hello from last week", t0 - 99_990)

    # c1: the bot answers and the chat is resolved, but the customer is back within a day (c5).
    c1 = lc.open_conversation(store, "Ann", external_id="ann", at=t0)
    _bot_turn(store, c1, "how do I freeze my card?", t0 + 1)
    lc.resolve(store, c1, by="hub", at=t0 + 100)

    # c2: urgent fraud: queued at +20, claimed by ana at +50 (30 s to a person), first reply
    # at +70 (50 s from the queue: within urgent's 60 s), the customer writes at +80 and ana
    # answers at +200 (a next response of 120 s, calm: within 600 s).
    c2 = lc.open_conversation(store, "Ben", external_id="ben", at=t0 + 10)
    _bot_turn(store, c2, "someone used my card", t0 + 11)
    lc.escalate(store, c2, reasons=["fraud"], level="urgent", at=t0 + 20)
    lc.claim(store, c2, "ana", at=t0 + 50)
    lc.agent_reply(store, c2, "ana", "I have frozen the card.", at=t0 + 70)
    lc.add_customer_message(store, c2, "thank you, what now?", idempotency_key="c2b", at=t0 + 80)
    lc.agent_reply(store, c2, "ana", "A new card is on its way.", at=t0 + 200)
    lc.resolve(store, c2, by="ana", at=t0 + 210)

    # c3: asked for a person, queued at +40, left the queue at +400.
    c3 = lc.open_conversation(store, "Cat", external_id="cat", at=t0 + 30)
    _bot_turn(store, c3, "this is useless", t0 + 31)
    lc.escalate(store, c3, reasons=["human_request", "frustration"], level="empathy", at=t0 + 40)
    lc.abandon(store, c3, by="hub", at=t0 + 400)

    # c4: no bot turn; queued at +55, assigned to bob at +300 (245 s), first reply at +400:
    # 345 s from the queue, over empathy's 180 s.
    c4 = lc.open_conversation(store, "Dan", external_id="dan", at=t0 + 50)
    lc.add_customer_message(store, c4, "I want a person", idempotency_key="c4", at=t0 + 51)
    lc.escalate(store, c4, reasons=["human_request"], level="empathy", at=t0 + 55)
    lc.register_agent(store, "bob")
    lc.assign(store, c4, "bob", by="sam", at=t0 + 300)
    lc.agent_reply(store, c4, "bob", "Hello, I am Bob.", at=t0 + 400)

    # c5: Ann again, 900 s after c1 was resolved; the bot is still talking to her.
    c5 = lc.open_conversation(store, "Ann", external_id="ann", at=t0 + 1000)
    _bot_turn(store, c5, "the freeze did not work", t0 + 1001)

    # c6: the bot resolves it alone, and Eve does not come back.
    c6 = lc.open_conversation(store, "Eve", external_id="eve", at=t0 + 2000)
    _bot_turn(store, c6, "what are your fees?", t0 + 2001)
    lc.resolve(store, c6, by="hub", at=t0 + 2100)


@pytest.fixture
def history(store: Store) -> tuple[Store, float]:
    t0 = now() - 3 * 3600
    build_history(store, t0)
    return store, t0


def test_report_figures_match_the_hand_built_history(history: tuple[Store, float]) -> None:
    store, t0 = history
    r = support_report(store, since=t0 - 10, until=t0 + 5000, sla_s=SLA)

    assert r["conversations"] == 6
    assert r["bot"]["involved"] == 5  # all but c4
    assert r["bot"]["resolved_alone"] == 1  # c6 only: c1's customer came back
    assert r["bot"]["resolution"] == pytest.approx(1 / 5)
    assert r["bot"]["automation_rate"] == pytest.approx(1 / 6)

    assert r["escalations"]["total"] == 3
    assert r["escalations"]["by_reason"] == {"human_request": 2, "fraud": 1, "frustration": 1}

    assert r["time_to_person"] == {"n": 2, "p50_s": pytest.approx(30), "p90_s": pytest.approx(245)}

    first = r["first_response"]
    assert (first["n"], first["met"]) == (2, 1)
    assert first["by_level"]["urgent"]["met"] == 1
    assert first["by_level"]["urgent"]["p50_s"] == pytest.approx(50)
    assert first["by_level"]["empathy"]["met"] == 0
    assert first["by_level"]["empathy"]["p50_s"] == pytest.approx(345)
    assert first["by_agent"]["ana"]["met_share"] == 1.0
    assert first["by_agent"]["bob"]["met_share"] == 0.0

    nxt = r["next_response"]
    assert (nxt["n"], nxt["met"]) == (1, 1)
    assert nxt["p50_s"] == pytest.approx(120)
    assert list(nxt["by_agent"]) == ["ana"]

    assert r["abandonment"] == {"abandoned": 1, "escalations": 3, "rate": pytest.approx(1 / 3)}
    assert r["repeat_contacts"]["within_24h"] == 1  # c1, followed by c5
    assert r["repeat_contacts"]["reopened"] == 0


def test_a_tighter_sla_is_breached_and_an_empty_window_reports_nothing(
    history: tuple[Store, float],
) -> None:
    store, t0 = history
    tight = {**SLA, "urgent": 30.0}
    r = support_report(store, since=t0 - 10, until=t0 + 5000, sla_s=tight)
    assert r["first_response"]["by_level"]["urgent"]["met"] == 0

    empty = support_report(store, since=t0 + 10_000, until=t0 + 20_000, sla_s=SLA)
    assert empty["conversations"] == 0
    assert empty["bot"]["involvement"] is None
    assert empty["time_to_person"]["p50_s"] is None
    assert empty["abandonment"]["rate"] is None


def test_a_reopened_conversation_counts_as_a_repeat_contact(store: Store) -> None:
    t0 = now() - 3600
    cid = lc.open_conversation(store, "Fay", external_id="fay", at=t0)
    _bot_turn(store, cid, "where is my refund", t0 + 1)
    lc.resolve(store, cid, by="hub", at=t0 + 50)
    lc.add_customer_message(store, cid, "it still is not here", idempotency_key="again", at=t0 + 60)
    r = support_report(store, since=t0 - 1, until=t0 + 100, sla_s=SLA)
    assert r["repeat_contacts"]["reopened"] == 1


def test_percentile_is_nearest_rank() -> None:
    assert percentile([], 0.5) is None
    assert percentile([5.0], 0.99) == 5.0
    assert percentile([1, 2, 3, 4], 0.5) == 2
    assert percentile([4, 3, 2, 1], 0.9) == 4
    assert percentile(range(1, 101), 0.9) == 90


def test_cli_json_csv_and_text(
    history: tuple[Store, float], db_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["report", "--db", str(db_path), "--since", "1d", "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["conversations"] == 6
    assert data["abandonment"]["abandoned"] == 1

    assert main(["report", "--db", str(db_path), "--csv"]) == 0
    rows = dict(csv.reader(io.StringIO(capsys.readouterr().out)))
    assert rows["conversations"] == "6"
    assert rows["first_response.by_level.urgent.met"] == "1"

    assert main(["report", "--db", str(db_path)]) == 0
    text = capsys.readouterr().out
    assert "automation rate" in text and "abandoned in queue     1" in text


@pytest.mark.parametrize("since", ["bogus", "10y", "-5h", "2026-13-45"])
def test_cli_refuses_a_bad_window_in_one_line(
    since: str, db_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["report", "--db", str(db_path), f"--since={since}"]) == 1
    err = capsys.readouterr().err
    assert err.startswith("tandem: --since") and err.count("\n") == 1


def test_cli_reads_sla_targets_from_the_policy_file(
    history: tuple[Store, float],
    db_path: Path,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    policy = tmp_path / "policy.toml"
    policy.write_text("[policy.sla_s]\nurgent = 30\n")
    assert main(["report", "--db", str(db_path), "--json", "--policy", str(policy)]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["sla_s"]["urgent"] == 30
    assert data["first_response"]["by_level"]["urgent"]["met"] == 0

    policy.write_text("[policy.sla_s]\nurgent = -1\n")
    assert main(["report", "--db", str(db_path), "--policy", str(policy)]) == 1
    assert "sla_s.urgent must be a positive number" in capsys.readouterr().err


def test_bench_report_seeds_a_history_db_check_finds_sound(tmp_path: Path) -> None:
    # The bench's scratch store is a history the lifecycle could have written: message
    # counts, the feed and every move pass the same check a real store does.
    from console.bench.report import FALLBACK_TEXTS, seed
    from store.check import check

    path = tmp_path / "report.db"
    assert seed(path, 2_000, list(FALLBACK_TEXTS)) == 200
    store = Store(path)
    assert store.one("SELECT count(*) FROM events WHERE kind = 'claimed'")[0] > 0
    assert check(store) == []
