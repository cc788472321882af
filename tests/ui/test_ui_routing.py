"""Routing in the console (issue 16 point 5): presence set by the console, assignments announced.

The router is the hub's own (:class:`console.hub.routing.Router`) on the same file; the app
records its bell as in test_ui_alerts.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from ui_support import notes, wait_until

from console.hub.routing import Router
from console.hub.shared import Shared
from console.policy import PolicySettings, RoutingSettings
from console.ui.app import TandemApp
from store import Store, lifecycle, presence
from store.queries import get_conversation


class RecordingApp(TandemApp):
    def __init__(self, *args: Any, **kw: Any) -> None:
        super().__init__(*args, **kw)
        self.bells = 0

    def bell(self) -> None:
        self.bells += 1


def _waiting(db_path: Path, name: str) -> int:
    with Store(db_path) as s:
        cid = lifecycle.open_conversation(s, name)
        lifecycle.add_customer_message(s, cid, "can I talk to someone")
        # `watch`: entering the queue alerts nobody by itself; only the assignment does.
        lifecycle.escalate(s, cid, reasons=["human_request"], level="watch")
    return cid


def _presence(db_path: Path, agent: str) -> str | None:
    with Store(db_path) as s:
        return presence.presence_of(s, agent)


async def test_an_assignment_is_announced_and_capacity_stops_take_next(db_path: Path) -> None:
    settings = PolicySettings(routing=RoutingSettings(mode="least_loaded", capacity=1))
    router = Router(Shared(db_path, engine=None, settings=settings))  # type: ignore[arg-type]
    app = RecordingApp(db_path, "ana", interval=0.05, policy=settings)
    app.alert_gap = 0.0
    async with app.run_test(size=(140, 30), notifications=True) as pilot:
        await wait_until(pilot, lambda: _presence(db_path, "ana") == "online", what="online")
        cid = _waiting(db_path, "Bea")
        await wait_until(pilot, lambda: cid in app.rows, what="the queue in the console")
        assert router.run().assignments == [(cid, "ana")]
        await wait_until(
            pilot,
            lambda: any(f"Bea #{cid}" in n for n in notes(app)),
            what="the announcement",
        )
        assert app._notifications  # noqa: SLF001 - the title says who assigned it
        assert any(n.title == "Assigned to you by routing" for n in app._notifications)
        assert app.bells == 1
        assert app.rows[cid]["owner"] == "ana"
        # At capacity (1): take-next says so and claims nothing.
        other = _waiting(db_path, "Cal")
        await pilot.press("n")
        await wait_until(
            pilot, lambda: any("your capacity" in n for n in notes(app)), what="at capacity"
        )
        with Store(db_path) as s:
            assert get_conversation(s, other)["state"] == "waiting"


async def test_presence_toggles_goes_away_when_idle_and_offline_on_quit(db_path: Path) -> None:
    app = TandemApp(db_path, "ana", interval=0.05)
    async with app.run_test(size=(140, 30), notifications=True) as pilot:
        await wait_until(pilot, lambda: _presence(db_path, "ana") == "online", what="online")
        header = app.screen.query_one("#wall-header")
        await pilot.press("a")
        await wait_until(pilot, lambda: _presence(db_path, "ana") == "away", what="away")
        await wait_until(pilot, lambda: "ana (away)" in str(header.render()), what="the header")
        await pilot.press("a")
        await wait_until(pilot, lambda: _presence(db_path, "ana") == "online", what="back")
        # Idle: no key for the configured time turns the console away; any key brings it back.
        app.idle_away_s = 0.0
        app._check_idle()  # noqa: SLF001 - the 5 s interval's own call, without the wait
        await wait_until(pilot, lambda: _presence(db_path, "ana") == "away", what="idle away")
        app.idle_away_s = 3600.0
        await pilot.press("j")
        await wait_until(pilot, lambda: _presence(db_path, "ana") == "online", what="key: back")
        assert app.presence == "online"
    deadline = time.monotonic() + 10
    while _presence(db_path, "ana") != "offline" and time.monotonic() < deadline:
        time.sleep(0.05)
    assert _presence(db_path, "ana") == "offline"


def test_the_supervisor_sees_where_each_agent_is(db_path: Path) -> None:
    from console.ui.screens.supervisor import seen_words
    from store.views import supervisor_metrics

    now = time.time()
    with Store(db_path) as s:
        presence.set_presence(s, "ana", "away", at=now - 190)
        lifecycle.register_agent(s, "old")  # a console that never says where it is
        agents = {a["name"]: a for a in supervisor_metrics(s, at=now)["agents"]}
    ana = agents["ana"]
    assert seen_words(ana["presence"], ana["last_seen_at"], now) == "away 3m"
    old = agents["old"]
    assert old["presence"] is None
    assert seen_words(old["presence"], old["last_seen_at"], now) == "<1m"


async def test_an_abuse_pause_is_announced_to_its_agent(db_path: Path) -> None:
    from store import routing as sr
    from store.views import start_of_day

    app = TandemApp(db_path, "ana", interval=0.05)
    async with app.run_test(size=(140, 30), notifications=True) as pilot:
        await wait_until(pilot, lambda: _presence(db_path, "ana") == "online", what="online")
        _waiting(db_path, "Dee")  # the router records a pause only when there is work to give
        now = time.time()
        until = now + 900
        with Store(db_path) as s:
            done = sr.route(
                s,
                lambda w, c, a: sr.Plan([], [("ana", until)]),
                capacity_of=lambda _: 3,
                fresh_since=now - 90,
                day_start=start_of_day(now),
                at=now,
            )
        assert done.pauses == [("ana", until)]
        at = time.strftime("%H:%M", time.localtime(until))
        await wait_until(
            pilot,
            lambda: any(f"no new assignments until {at}" in n for n in notes(app)),
            what="the pause announced",
        )
