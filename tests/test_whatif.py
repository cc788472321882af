"""`tandem whatif` on a hand-built history whose outcomes under each policy are known."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from console.cli import main
from console.policy import PolicySettings
from console.whatif import compare, simulate_queue
from store import Store
from store import lifecycle as lc
from store.db import now

SINCE, UNTIL = 0.0, 1e12


def _conversation(store: Store, name: str, turns: list[tuple[str, str | None]], t0: float) -> int:
    """A conversation of customer turns, each answered by the bot (``"fallback"``: it did not
    know) or not answered (``None``)."""
    cid = lc.open_conversation(store, name, external_id=name, at=t0)
    for i, (text, answer) in enumerate(turns):
        at = t0 + 10 * (i + 1)
        mid = lc.add_customer_message(store, cid, text, idempotency_key=f"{name}{i}", at=at)
        if answer is not None:
            fallback = answer == "fallback"
            lc.bot_reply(
                store,
                cid,
                "I'm not sure about that one." if fallback else "Here is how: Settings > Profile.",
                reply_to=mid.message_id,
                fallback=fallback,
                meta={"engine": "embedded", "fallback": True}
                if fallback
                else {"engine": "embedded"},
                at=at + 1,
            )
    return cid


@pytest.fixture
def history(store: Store) -> dict[str, int]:
    t0 = now() - 3600
    return {
        # Routine: never a person.
        "a": _conversation(store, "a", [("how do I change my address?", "ok")], t0),
        # Two "I don't know"s: a person after the second (turn 2) at max_fallbacks 2, turn 1 at 1.
        "b": _conversation(
            store,
            "b",
            [("what are the fees for transfers abroad?", "fallback"), ("hmm ok", "fallback")],
            t0 + 100,
        ),
        # Asked for a person: every policy here escalates at turn 1.
        "c": _conversation(store, "c", [("I want to speak to a human please", None)], t0 + 200),
        # Bereavement: empathy, escalated at empathy; urgent when added to the urgent reasons.
        "d": _conversation(store, "d", [("my mother passed away last week", None)], t0 + 300),
        # Fraud: urgent under every policy.
        "e": _conversation(store, "e", [("someone stole my card and took money", None)], t0 + 400),
        # Frustration on the second turn: empathy at turn 2.
        "f": _conversation(
            store,
            "f",
            [
                ("how do I change my address?", "ok"),
                ("this is really annoying, the app keeps crashing", None),
            ],
            t0 + 500,
        ),
    }


def _changed(result: dict[str, object], ids: dict[str, int]) -> dict[str, dict[str, object]]:
    names = {str(v): k for k, v in ids.items()}
    return {names[c["id"]]: c for c in result["changed"]}  # type: ignore[index,union-attr]


def test_the_same_policy_changes_nothing(store: Store, history: dict[str, int]) -> None:
    r = compare(store, PolicySettings(), PolicySettings(), since=SINCE, until=UNTIL)
    assert r["current"]["conversations"] == 6
    assert r["current"]["escalated"] == r["proposed"]["escalated"] == 5
    assert r["changed"] == []
    assert r["difference"]["escalated"] == 0


def test_a_looser_fallback_rule_escalates_earlier(store: Store, history: dict[str, int]) -> None:
    r = compare(store, PolicySettings(), PolicySettings(max_fallbacks=1), since=SINCE, until=UNTIL)
    assert (r["current"]["escalated"], r["proposed"]["escalated"]) == (5, 5)
    changed = _changed(r, history)
    assert set(changed) == {"b"}
    assert changed["b"]["current"]["turn"] == 2
    assert changed["b"]["proposed"]["turn"] == 1
    assert changed["b"]["first_differing_turn"] == 1
    assert r["difference"]["earlier"] == 1


def test_a_stricter_level_sends_fewer_to_a_person(store: Store, history: dict[str, int]) -> None:
    r = compare(
        store, PolicySettings(), PolicySettings(escalate_level="urgent"), since=SINCE, until=UNTIL
    )
    assert (r["current"]["escalated"], r["proposed"]["escalated"]) == (5, 3)  # b, c, e remain
    changed = _changed(r, history)
    assert set(changed) == {"d", "f"}
    assert changed["f"]["current"]["turn"] == 2 and not changed["f"]["proposed"]["escalated"]
    assert r["difference"]["no_longer_escalated"] == 2


def test_an_added_urgent_reason_raises_the_level(store: Store, history: dict[str, int]) -> None:
    proposed = PolicySettings(urgent_reasons=("fraud", "safety", "bereavement"))
    r = compare(store, PolicySettings(), proposed, since=SINCE, until=UNTIL)
    changed = _changed(r, history)
    assert set(changed) == {"d"}
    assert changed["d"]["current"]["level"] == "empathy"
    assert changed["d"]["proposed"]["level"] == "urgent"
    assert r["proposed"]["escalated"] == 5
    assert (r["difference"]["level_raised"], r["difference"]["level_lowered"]) == (1, 0)


def test_the_current_replay_matches_what_the_hub_really_did(store: Store) -> None:
    """A hub escalating on its second "I don't know" never stores that answer; the replay
    recovers it from the escalation, so the policy in force reproduces the real hand-off."""
    t0 = now() - 600
    cid = _conversation(store, "g", [("can I get a visa card?", "fallback")], t0)
    mid = lc.add_customer_message(store, cid, "sorry, I mean a visa card", idempotency_key="g2")
    lc.escalate(store, cid, reasons=["bot_fallback"], level="watch", note="rule fallbacks")
    assert mid.message_id
    r = compare(store, PolicySettings(), PolicySettings(), since=SINCE, until=UNTIL)
    assert r["current"]["escalated"] == r["current"]["actually_escalated"] == 1


def test_queue_model_serves_the_most_in_need_first_and_counts_breaches() -> None:
    settings = PolicySettings(minutes_per_customer=4.0)  # 240 s each
    hour = 3600.0 * 100
    arrivals = [(hour, 1, "urgent"), (hour, 2, "calm"), (hour + 10, 3, "empathy")]
    load = simulate_queue(arrivals, {int(hour): 1}, settings, until=hour + 3600)
    # One agent: urgent at once, then empathy (level first) after 230 s > 180 s: a breach;
    # calm at 480 s, within its 600 s.
    assert sorted(load.waits_s) == [0.0, 230.0, 480.0]
    assert load.breaches == 1 and load.breach_by_level == {"empathy": 1}
    assert load.by_hour[int(hour)] == {"escalations": 3, "agents": 1}

    nobody = simulate_queue(arrivals, {}, settings, until=hour + 3600)
    assert nobody.breaches == 3  # nobody at work: everyone waits out the window


def test_cli_json_is_deterministic_and_refuses_bad_files(
    store: Store,
    history: dict[str, int],
    db_path: Path,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    policy = tmp_path / "loose.toml"
    policy.write_text("max_fallbacks = 1\n")
    runs = []
    for _ in range(2):
        assert main(["whatif", "--db", str(db_path), "--policy", str(policy), "--json"]) == 0
        data = json.loads(capsys.readouterr().out)
        data.pop("window")
        runs.append(data)
    assert runs[0] == runs[1]
    assert runs[0]["current"]["conversations"] == 6
    assert runs[0]["proposed"]["escalated"] == 5
    assert [c["id"] for c in runs[0]["changed"]] == [str(history["b"])]

    assert main(["whatif", "--db", str(db_path), "--policy", str(policy)]) == 0
    assert "1 earlier" in capsys.readouterr().out

    policy.write_text("escalate_level = 'sometimes'\n")
    assert main(["whatif", "--db", str(db_path), "--policy", str(policy)]) == 1
    assert "escalate_level must be one of" in capsys.readouterr().err
    assert main(["whatif", "--db", str(db_path), "--policy", str(tmp_path / "nope.toml")]) == 1
    assert "cannot read" in capsys.readouterr().err


def test_processes_side_by_side_give_the_same_figures(
    store: Store, history: dict[str, int]
) -> None:
    # A big window is replayed by processes over ranges of conversation ids; forced here on
    # the small history, every figure (and the order of the sample) is the one-process one.
    proposed = PolicySettings(escalate_level="urgent", max_fallbacks=1)
    seen: list[tuple[int, int]] = []
    alone = compare(store, PolicySettings(), proposed, since=SINCE, until=UNTIL, workers=1)
    split = compare(
        store,
        PolicySettings(),
        proposed,
        since=SINCE,
        until=UNTIL,
        workers=2,
        progress=lambda done, total: seen.append((done, total)),
    )
    assert split == alone and alone["changed"]
    assert seen and seen[-1][0] == seen[-1][1] > 0  # the bar ends full


def test_a_progress_callback_that_raises_stops_the_processes(
    store: Store, history: dict[str, int]
) -> None:
    # The console's cancel button raises from the progress callback.
    import multiprocessing

    class Stop(Exception):
        pass

    def stop(done: int, total: int) -> None:
        raise Stop

    with pytest.raises(Stop):
        compare(
            store,
            PolicySettings(),
            PolicySettings(),
            since=SINCE,
            until=UNTIL,
            workers=2,
            progress=stop,
        )
    assert multiprocessing.active_children() == []


def test_policies_reach_the_processes_whole() -> None:
    from console.policy import RoutingSettings
    from console.whatif import _Portable

    policy = PolicySettings(
        escalate_level="watch",
        sla_s={"urgent": 30.0},
        routing=RoutingSettings(capacity_per_agent={"ana": 3}),
    )
    assert _Portable.of(policy).build() == policy
