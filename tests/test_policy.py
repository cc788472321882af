"""The escalation policy as a pure function, and its settings file."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from console.policy import (
    PolicySettings,
    Settled,
    decide,
    handoff_message,
    load_settings,
    queue_ahead,
    queue_order,
    wait_estimate_minutes,
)

P = PolicySettings()


def test_calm_conversation_stays_with_the_bot() -> None:
    d = decide(P, level="calm", reasons=[], fallbacks=0)
    assert not d.escalate and d.rule == "bot"


def test_watch_is_not_enough_but_empathy_is() -> None:
    assert not decide(P, level="watch", reasons=["negative_sentiment"]).escalate
    d = decide(P, level="empathy", reasons=["bereavement", "vulnerability"])
    assert d.escalate and d.reasons == ("bereavement", "vulnerability") and d.level == "empathy"


def test_human_request_escalates_even_when_calm() -> None:
    d = decide(P, level="calm", reasons=["human_request"], message_reasons=["human_request"])
    assert d.escalate and d.reasons[0] == "human_request" and d.rule == "human_request"
    assert d.level == "empathy"


def test_bot_handoff_field_escalates_with_its_reason() -> None:
    d = decide(P, level="calm", reasons=[], handoff=True, handoff_reason="complaint_threat")
    assert d.escalate and d.reasons == ("complaint_threat",) and d.rule == "handoff"
    d = decide(P, level="calm", reasons=[], handoff=True)
    assert d.reasons == ("human_request",)


@pytest.mark.parametrize("reason", ["fraud", "safety"])
def test_fraud_and_safety_are_urgent_at_once(reason: str) -> None:
    d = decide(P, level="watch", reasons=["negative_sentiment", reason])
    assert d.escalate and d.urgent and d.reasons[0] == reason


def test_fallbacks_escalate_at_the_configured_count() -> None:
    assert not decide(P, level="calm", reasons=[], fallbacks=1).escalate
    d = decide(P, level="calm", reasons=[], fallbacks=2)
    assert d.escalate and d.reasons == ("bot_fallback",) and d.rule == "fallbacks"
    three = P.with_overrides(max_fallbacks=3)
    assert not decide(three, level="calm", reasons=[], fallbacks=2).escalate


def test_prompt_injection_alone_is_flagged_not_escalated() -> None:
    d = decide(
        P, level="empathy", reasons=["prompt_injection"], message_reasons=["prompt_injection"]
    )
    assert not d.escalate
    # With real distress next to it, the distress counts.
    d = decide(P, level="empathy", reasons=["prompt_injection", "frustration"])
    assert d.escalate and d.reasons[0] == "frustration"


def test_after_hand_back_old_reasons_do_not_re_escalate() -> None:
    settled = Settled(frozenset({"bereavement", "vulnerability"}), "empathy")
    d = decide(P, level="empathy", reasons=["bereavement", "vulnerability"], settled=settled)
    assert not d.escalate
    # New evidence does.
    d = decide(
        P, level="empathy", reasons=["bereavement", "vulnerability", "frustration"], settled=settled
    )
    assert d.escalate and d.reasons[0] == "frustration"
    # An explicit new request for a person always does, even if one was made before.
    settled = Settled(frozenset({"human_request"}), "empathy")
    d = decide(
        P,
        level="empathy",
        reasons=["human_request"],
        message_reasons=["human_request"],
        settled=settled,
    )
    assert d.escalate and d.rule == "human_request"
    d = decide(P, level="empathy", reasons=["human_request"], message_reasons=[], settled=settled)
    assert not d.escalate


def test_escalate_level_setting() -> None:
    watch = P.with_overrides(escalate_level="watch")
    assert decide(watch, level="watch", reasons=["negative_sentiment"]).escalate
    urgent_only = P.with_overrides(escalate_level="urgent")
    assert not decide(urgent_only, level="empathy", reasons=["bereavement"]).escalate


def test_wait_estimate_and_message_are_honest() -> None:
    assert wait_estimate_minutes(P, 0, 0) is None
    assert wait_estimate_minutes(P, 0, 2) == 2
    assert wait_estimate_minutes(P, 5, 2) == 12
    d = decide(P, level="empathy", reasons=["bereavement"])
    text = handoff_message(d, queue_ahead=3, wait_minutes=12)
    assert "person" in text and "3 people ahead" in text and "12 minutes" in text
    nobody = handoff_message(d, queue_ahead=0, wait_minutes=None)
    assert "Nobody from the team is online" in nobody and "minutes" not in nobody
    fraud = handoff_message(
        decide(P, level="urgent", reasons=["fraud"]), queue_ahead=0, wait_minutes=1
    )
    assert "urgent" in fraud and "freeze the card" in fraud and "next in the queue" in fraud


def test_settings_file(tmp_path: Path) -> None:
    f = tmp_path / "policy.toml"
    f.write_text(
        '[policy]\nescalate_level = "watch"\nmax_fallbacks = 3\nurgent_reasons = ["fraud"]\n'
    )
    s = load_settings(f)
    assert s.escalate_level == "watch" and s.max_fallbacks == 3 and s.urgent_reasons == ("fraud",)
    assert s.minutes_per_customer == P.minutes_per_customer
    f.write_text("max_fallback = 3\n")
    with pytest.raises(ValueError, match="unknown setting"):
        load_settings(f)
    f.write_text('escalate_level = "panic"\n')
    with pytest.raises(ValueError, match="escalate_level"):
        load_settings(f)
    f.write_text("max_fallbacks = [\n")
    with pytest.raises(ValueError, match="not valid TOML"):
        load_settings(f)
    with pytest.raises(ValueError, match="cannot read"):
        load_settings(tmp_path / "missing.toml")


def test_an_injections_imperative_tone_does_not_escalate_it() -> None:
    d = decide(
        P,
        level="empathy",
        reasons=["prompt_injection", "negative_sentiment"],
        message_reasons=["prompt_injection", "negative_sentiment"],
    )
    assert not d.escalate
    # Without an injection in the message, the same tone at the same level does.
    d = decide(
        P, level="empathy", reasons=["negative_sentiment"], message_reasons=["negative_sentiment"]
    )
    assert d.escalate


def test_wait_estimate_prefers_the_measured_handling_time() -> None:
    assert wait_estimate_minutes(P, 1, 1, measured_minutes=10.0) == 20
    assert wait_estimate_minutes(P, 1, 1, measured_minutes=None) == 8
    assert wait_estimate_minutes(P, 0, 0, measured_minutes=10.0) is None


def test_after_hand_back_a_mention_of_settled_fraud_is_not_new_but_safety_is() -> None:
    settled = Settled(frozenset({"fraud"}), "urgent")
    d = decide(P, level="urgent", reasons=["fraud"], message_reasons=["fraud"], settled=settled)
    assert not d.escalate
    settled = Settled(frozenset({"safety"}), "urgent")
    d = decide(P, level="urgent", reasons=["safety"], message_reasons=["safety"], settled=settled)
    assert d.escalate and d.urgent


def _waiting(cid: int, level: str | None, since: float | None, state: str = "waiting") -> dict:
    return {"id": cid, "state": state, "level": level, "waiting_since": since}


def test_queue_order_is_level_first_then_the_longest_wait() -> None:
    rows = [
        _waiting(1, "calm", 10.0),  # the longest wait, the least need
        _waiting(2, "watch", 50.0),
        _waiting(3, "empathy", 40.0),
        _waiting(4, "urgent", 90.0),
        _waiting(5, "empathy", 20.0),
        _waiting(6, "urgent", 5.0, state="human"),  # claimed: not in the queue
        _waiting(7, "empathy", 20.0),  # the same moment as 5: the id decides
        _waiting(8, None, None),  # no level, no time: calm, and waiting the longest
    ]
    assert [r["id"] for r in queue_order(rows)] == [4, 5, 7, 3, 2, 8, 1]
    assert queue_order([]) == []


def test_queue_ahead_counts_those_before_an_entry_whether_queued_or_joining() -> None:
    rows = [_waiting(1, "calm", 10.0), _waiting(2, "empathy", 40.0), _waiting(3, "urgent", 90.0)]
    rows.append(_waiting(9, "urgent", 1.0, state="human"))  # claimed: never counted
    assert queue_ahead(rows, {"id": 4, "level": "urgent", "waiting_since": 100.0}) == 1
    assert queue_ahead(rows, {"id": 4, "level": "empathy", "waiting_since": 100.0}) == 2
    assert queue_ahead(rows, {"id": 4, "level": "calm", "waiting_since": 100.0}) == 3
    # An entry already in the queue does not count itself.
    for i, row in enumerate(queue_order(rows)):
        assert queue_ahead(rows, row) == i
    assert queue_ahead([], {"id": 1, "level": "calm", "waiting_since": 0.0}) == 0


def test_the_pure_layers_read_the_levels_without_loading_sqlite_utils() -> None:
    # The levels live in store.levels; importing them must not pull in the database layer,
    # or `tandem triage` would pay for sqlite-utils it never uses.
    code = (
        "import sys, console.triage, console.policy;"
        "print('sqlite_utils' in sys.modules, 'store.db' in sys.modules)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.split() == ["False", "False"]


def test_the_stores_queue_count_agrees_with_the_policys_order(tmp_path: Path) -> None:
    """store.views.waiting_ahead counts in SQL what policy.queue_ahead counts in Python."""
    import random

    from console.policy import LEVELS, queue_ahead
    from store import Store
    from store import lifecycle as lc
    from store.views import waiting_ahead, waiting_queue

    rng = random.Random(3)
    with Store(tmp_path / "q.db") as store:
        base = 1_000_000.0
        for i in range(60):
            cid = lc.open_conversation(store, f"c{i}")
            lc.add_customer_message(store, cid, "help", idempotency_key=f"k{i}")
            # Ties on purpose: a few distinct times and every level.
            at = base + rng.choice([0.0, 5.0, 5.0, 10.0])
            lc.escalate(store, cid, reasons=["human_request"], level=rng.choice(LEVELS), at=at)
        rows = waiting_queue(store)
        for level in LEVELS:
            for since in (base - 1, base, base + 5.0, base + 7.0, base + 20.0):
                for cid in (rows[0]["id"], rows[17]["id"], 10_000):
                    entry = {"id": cid, "level": level, "waiting_since": since}
                    assert waiting_ahead(
                        store, conversation_id=cid, level=level, waiting_since=since
                    ) == queue_ahead(rows, entry), entry


def test_a_misspelt_reason_is_refused_not_ignored(tmp_path: Path) -> None:
    # It would never match a verdict's reason: the policy would quietly not do what it says.
    bad = tmp_path / "p.toml"
    bad.write_text('[policy]\nurgent_reasons = ["fraud", "vulnerabilty"]\n')
    with pytest.raises(ValueError, match="urgent_reasons: unknown reason 'vulnerabilty'"):
        load_settings(bad)
    for name in ("raised_again", "human_request_reasons", "flag_only_reasons", "soft_reasons"):
        with pytest.raises(ValueError, match=f"{name}: unknown reason 'nope'"):
            PolicySettings(**{name: ("nope",)})


def test_the_shipped_example_policies_load_and_each_changes_something() -> None:
    from console.policy import EXAMPLES

    examples = sorted(EXAMPLES.glob("*.toml"))
    assert [p.name for p in examples] == ["people-first.toml", "thin-shift.toml"]
    for path in examples:
        assert load_settings(path) != PolicySettings(), path.name
