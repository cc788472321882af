"""Automatic assignment: the planner's choice, and the store's one-transaction route and take-next."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from console.hub.routing import plan
from console.policy import PolicySettings, RoutingSettings, load_settings, queue_order
from store import Store, accounts, presence
from store import lifecycle as lc
from store import routing as sr
from store.errors import InvalidInput
from store.routing import Candidate
from store.views import start_of_day

NOW = 1_800_000_000.0


def _row(cid: int, level: str = "empathy", since: float = NOW - 100, lang: str | None = None):
    return {"id": cid, "state": "waiting", "level": level, "waiting_since": since, "lang": lang}


def _plan(settings: RoutingSettings, waiting, agents, abusive: dict[int, int] | None = None):
    counts = abusive or {}
    return plan(settings, waiting, agents, lambda cid: counts.get(cid, 0), now=NOW)


def test_least_loaded_fills_the_emptiest_agent_in_queue_order() -> None:
    s = RoutingSettings(mode="least_loaded", capacity=2)
    waiting = [_row(1, "calm", NOW - 500), _row(2, "urgent", NOW - 10), _row(3, "empathy")]
    agents = [Candidate("ana", held=1), Candidate("bo", held=0)]
    got = _plan(s, waiting, agents).assignments
    # urgent first, to bo (fewest held); then empathy: both hold 1, bo was just given one;
    # then calm: ana is full (2), bo holds 1.
    assert got == [(2, "bo"), (3, "ana"), (1, "bo")]
    assert [cid for cid, _ in got] == [r["id"] for r in queue_order(waiting)]
    assert _plan(s, waiting, [Candidate("ana", held=1)]).assignments == [(2, "ana")]


def test_round_robin_takes_turns_from_the_oldest_last_assignment() -> None:
    s = RoutingSettings(mode="round_robin", capacity=5)
    waiting = [_row(i, since=NOW - 100 + i) for i in range(1, 6)]
    agents = [
        Candidate("ana", held=3, last_assigned_at=NOW - 5),
        Candidate("bo", held=0, last_assigned_at=NOW - 1),
        Candidate("cy", held=0),  # never assigned today: first
    ]
    got = _plan(s, waiting, agents).assignments
    assert [a for _, a in got] == ["cy", "ana", "bo", "cy", "ana"]


def test_capacity_and_per_agent_override_are_never_exceeded() -> None:
    s = RoutingSettings(mode="least_loaded", capacity=2, capacity_per_agent={"bo": 4})
    waiting = [_row(i, since=NOW - 100 + i) for i in range(1, 20)]
    agents = [Candidate("ana", held=1), Candidate("bo", held=1), Candidate("cy", held=2)]
    got = _plan(s, waiting, agents).assignments
    per: dict[str, int] = {}
    for _, a in got:
        per[a] = per.get(a, 0) + 1
    assert per == {"ana": 1, "bo": 3}
    assert [cid for cid, _ in got] == [1, 2, 3, 4]


def test_language_skills_match_and_an_unspoken_language_waits() -> None:
    s = RoutingSettings(mode="least_loaded", capacity=3)
    waiting = [_row(1, lang="fi"), _row(2, lang="fr", since=NOW - 50), _row(3, since=NOW - 40)]
    agents = [
        Candidate("ana", held=0, langs=("fr",)),
        Candidate("bo", held=2, langs=("en", "sv")),
    ]
    got = _plan(s, waiting, agents).assignments
    # Nobody takes Finnish: it stays; French to ana; no language detected: anyone (bo is fuller).
    assert got == [(2, "ana"), (3, "ana")]
    generalist = [Candidate("cy", held=0)]
    assert _plan(s, waiting, generalist).assignments == [(1, "cy"), (2, "cy"), (3, "cy")]


def test_abusive_conversations_go_to_whoever_saw_the_least_abuse_today() -> None:
    s = RoutingSettings(mode="least_loaded", capacity=5)
    waiting = [_row(1, since=NOW - 90), _row(2, since=NOW - 80), _row(3, since=NOW - 70)]
    agents = [
        Candidate("ana", held=0, abusive_today=4),
        Candidate("bo", held=3, abusive_today=0),
        Candidate("cy", held=3, abusive_today=1),
    ]
    got = _plan(s, waiting, agents, abusive={1: 2, 2: 2}).assignments
    # 1 (2 insults) -> bo (0 seen, though busier); 2 -> cy (1 < bo's 2 now); 3 is calm -> ana.
    assert got == [(1, "bo"), (2, "cy"), (3, "ana")]


def test_abuse_threshold_pauses_an_agent_and_the_pause_ends() -> None:
    s = RoutingSettings(
        mode="least_loaded", capacity=5, abuse_pause_after=3, abuse_pause_minutes=10
    )
    waiting = [_row(1), _row(2, since=NOW - 10)]
    ana = Candidate("ana", held=0, abusive_today=3)
    result = _plan(s, waiting, [ana, Candidate("bo", held=4)])
    assert result.pauses == [("ana", NOW + 600)]
    assert result.assignments == [(1, "bo")]  # ana is paused, bo has one place left
    during = Candidate("ana", held=0, abusive_today=3, pauses_today=1, paused_until=NOW + 60)
    assert _plan(s, waiting, [during]).assignments == []
    after = Candidate("ana", held=0, abusive_today=4, pauses_today=1, paused_until=NOW - 1)
    assert _plan(s, waiting, [after]).assignments == [(1, "ana"), (2, "ana")]
    again = Candidate("ana", held=0, abusive_today=6, pauses_today=1, paused_until=NOW - 1)
    assert _plan(s, waiting, [again]).pauses == [("ana", NOW + 600)]


def test_an_abusive_assignment_that_reaches_the_threshold_stops_further_ones_this_pass() -> None:
    s = RoutingSettings(mode="least_loaded", capacity=5, abuse_pause_after=3)
    waiting = [_row(1, since=NOW - 90), _row(2, since=NOW - 80)]
    got = _plan(s, waiting, [Candidate("ana", held=0, abusive_today=1)], abusive={1: 2})
    assert got.assignments == [(1, "ana")] and got.pauses == []


def test_routing_settings_from_the_policy_file(tmp_path: Path) -> None:
    f = tmp_path / "p.toml"
    f.write_text(
        '[policy]\nescalate_level = "watch"\n[routing]\nmode = "round_robin"\ncapacity = 2\n'
        "abuse_pause_after = 5\nabuse_pause_minutes = 20\n[routing.capacity_per_agent]\nana = 4\n"
    )
    s = load_settings(f)
    assert s.escalate_level == "watch" and s.routing.mode == "round_robin"
    assert (s.routing.capacity_of("ana"), s.routing.capacity_of("bo")) == (4, 2)
    assert s.routing.abuse_pause_after == 5 and s.routing.abuse_pause_minutes == 20
    assert PolicySettings().routing.enabled is False
    for body, words in (
        ('[routing]\nmode = "fastest"\n', "routing.mode must be one of"),
        ("[routing]\ncapacity = 0\n", "routing.capacity must be a positive whole number"),
        ("[routing]\ncapacity = 1.5\n", "routing.capacity must be a positive whole number"),
        ("[routing]\nspeed = 1\n", "unknown routing setting(s) speed"),
        ('[routing]\ncapacity_per_agent = "ana"\n', "capacity_per_agent must be a table"),
        ("[routing.capacity_per_agent]\nana = -1\n", "capacity_per_agent.ana must be a non-neg"),
        ('routing = "on"\n', "routing must be a table"),
    ):
        f.write_text(body)
        with pytest.raises(
            ValueError, match=r"p\.toml: .*" + words.replace("(", r"\(").replace(")", r"\)")
        ):
            load_settings(f)


# --- the store ------------------------------------------------------------------------------


def _waiting(store: Store, n: int, *, level: str = "empathy") -> list[int]:
    ids = []
    for i in range(n):
        cid = lc.open_conversation(store, f"customer {i}")
        lc.add_customer_message(store, cid, "I need a person")
        lc.escalate(store, cid, reasons=["human_request"], level=level, at=NOW - 100 + i)
        ids.append(cid)
    return ids


def _route(store: Store, settings: RoutingSettings, at: float = NOW) -> sr.Plan:
    return sr.route(
        store,
        lambda w, c, a: plan(settings, w, c, a, now=at),
        capacity_of=settings.capacity_of,
        fresh_since=at - settings.stale_after_s,
        day_start=start_of_day(at),
        at=at,
    )


def test_route_assigns_online_agents_only_and_records_the_router(store: Store) -> None:
    ids = _waiting(store, 5)
    presence.set_presence(store, "ana", "online", at=NOW - 10)
    presence.set_presence(store, "bo", "away", at=NOW - 10)
    presence.set_presence(store, "cy", "online", at=NOW - 500)  # stopped beating: gone
    lc.register_agent(store, "sup", role="supervisor")
    presence.set_presence(store, "sup", "online", at=NOW - 10)
    settings = RoutingSettings(mode="least_loaded", capacity=2)
    done = _route(store, settings)
    assert done.assignments == [(ids[0], "ana"), (ids[1], "ana")]
    rows = store.query(
        "SELECT conversation_id, actor, data FROM events WHERE kind = 'assigned' ORDER BY id"
    )
    assert [(r[0], r[1]) for r in rows] == [(ids[0], "router"), (ids[1], "router")]
    assert sr.held_by(store, "ana") == 2
    assert _route(store, settings).assignments == []  # ana is full; nobody else is online
    from store.check import check

    assert check(store) == []


def test_route_language_from_the_store(store: Store) -> None:
    ids = _waiting(store, 2)
    lc.record_triage(store, ids[0], lc.TriageMark("empathy", 0.6, ["human_request"], lang="fr"))
    presence.set_langs(store, "ana", "en")
    presence.set_presence(store, "ana", "online", at=NOW)
    assert _route(store, RoutingSettings(mode="round_robin")).assignments == [(ids[1], "ana")]


def test_take_next_respects_capacity_in_one_transaction(store: Store) -> None:
    ids = _waiting(store, 3)

    def order(rows: list[dict[str, Any]]) -> list[int]:
        return [r["id"] for r in queue_order(rows)]

    assert sr.claim_next(store, "ana", order, capacity=2) == ids[0]
    assert sr.claim_next(store, "ana", order, capacity=2) == ids[1]
    with pytest.raises(sr.AtCapacity, match="you hold 2 conversations"):
        sr.claim_next(store, "ana", order, capacity=2)
    assert sr.claim_next(store, "ana", order) == ids[2]  # routing off: no limit
    assert sr.claim_next(store, "ana", order) is None


def test_presence_and_skills(store: Store) -> None:
    presence.set_presence(store, "ana", "online", at=NOW)
    assert presence.presence_of(store, "ana") == "online"
    assert presence.set_langs(store, "ana", " EN, fr,en ") == ("en", "fr")
    assert presence.langs_of(store, "ana") == ("en", "fr")
    assert presence.set_langs(store, "ana", "") == ()
    with pytest.raises(InvalidInput, match="not a two-letter"):
        presence.set_langs(store, "ana", "english")
    with pytest.raises(InvalidInput, match="presence must be one of"):
        presence.set_presence(store, "ana", "busy")


def test_the_wait_estimate_counts_agents_online_and_taking_conversations(store: Store) -> None:
    since, fresh = NOW - 900, NOW - 90
    presence.set_presence(store, "ana", "online", at=NOW - 5)
    presence.set_presence(store, "bo", "away", at=NOW - 5)
    presence.set_presence(store, "cy", "offline", at=NOW - 5)
    presence.set_presence(store, "dee", "online", at=NOW - 300)  # killed: no heartbeat
    accounts.add(store, "sup", "supervisor")
    presence.set_presence(store, "sup", "online", at=NOW - 5)  # watches, takes nothing
    assert presence.agents_online(store, since=since, fresh_since=fresh) == 1
    assert presence.is_online(store, "sup", since=since, fresh_since=fresh)
    assert not presence.is_online(store, "bo", since=since, fresh_since=fresh)
    # A supervisor who holds a conversation is taking them (while they hold one).
    cid = lc.open_conversation(store, "Ola")
    lc.add_customer_message(store, cid, "a person please", at=NOW - 4)
    lc.escalate(store, cid, reasons=["human_request"], level="empathy", at=NOW - 4)
    lc.claim(store, cid, "sup", at=NOW - 3)
    assert presence.agents_online(store, since=since, fresh_since=fresh) == 2
    presence.set_presence(store, "sup", "away", at=NOW - 5)  # holding, but away: not taking
    assert presence.agents_online(store, since=since, fresh_since=fresh) == 1
    presence.set_presence(store, "sup", "online", at=NOW - 5)
    lc.resolve(store, cid, by="sup", at=NOW - 2)
    assert presence.agents_online(store, since=since, fresh_since=fresh) == 1
    accounts.add(store, "ana", "agent")
    accounts.set_disabled(store, "ana")
    assert presence.agents_online(store, since=since, fresh_since=fresh) == 0


def test_the_router_skips_passes_while_nothing_it_depends_on_changed(
    store: Store, db_path: Path
) -> None:
    from console.hub.routing import Router
    from console.hub.shared import Shared

    clock = [NOW]
    settings = PolicySettings(routing=RoutingSettings(mode="least_loaded"))
    router = Router(Shared(db_path, engine=None, settings=settings, clock=lambda: clock[0]))  # type: ignore[arg-type]
    (cid,) = _waiting(store, 1)
    lc.record_triage(store, cid, lc.TriageMark("empathy", 0.6, ["human_request"], lang="fi"))
    presence.set_langs(store, "ana", "en")
    presence.set_presence(store, "ana", "online", at=NOW)
    assert router.run().assignments == [] and router.skipped == 0
    clock[0] += 1
    assert router.run().assignments == [] and router.skipped == 1  # same stamp: skipped
    clock[0] += Router.RECHECK_S
    assert router.run().assignments == [] and router.skipped == 1  # time's up: a full pass
    presence.set_langs(store, "ana", "en,fi")  # the stamp changes: at once
    presence.set_presence(store, "ana", "online", at=clock[0])
    clock[0] += 0.5
    assert router.run().assignments == [(cid, "ana")]
