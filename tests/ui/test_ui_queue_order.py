"""One queue order: take-next, the supervisor's list and the place a customer is told agree.

The queue mixes levels and waits, and holds one conversation an agent already claimed. The
hub tells two new customers their place; the console then takes the queue with ``n`` and
lists it on the supervisor screen, and all three follow ``console.policy.queue_key``.
"""

from __future__ import annotations

import re
import time
from pathlib import Path

from textual.widgets import DataTable
from ui_support import screen_up, wait_until

from console.hub import make_hub
from console.ui.app import TandemApp
from console.ui.screens.conversation import ConversationScreen
from console.ui.screens.supervisor import SupervisorScreen
from console.ui.screens.wall import WallScreen
from store import Store, lifecycle
from store.queries import get_conversation, transcript


def _waiting(s: Store, name: str, level: str, waited: float, at: float) -> int:
    cid = lifecycle.open_conversation(s, name, at=at - waited)
    lifecycle.add_customer_message(s, cid, f"{name} needs help", at=at - waited)
    lifecycle.escalate(s, cid, reasons=["frustration"], level=level, score=0.5, at=at - waited)
    return cid


def _told_ahead(s: Store, cid: int) -> int:
    """The number of people ahead that the hub told the customer (0 when "next")."""
    (told,) = [m["text"] for m in transcript(s, cid) if m["role"] == "system"]
    if "You're next in the queue" in told:
        return 0
    found = re.search(r"There (?:is|are) (\d+) (?:person|people) ahead of you", told)
    assert found, told
    return int(found.group(1))


async def test_take_next_the_supervisor_list_and_the_customers_place_agree(
    db_path: Path,
) -> None:
    at = time.time()
    # Waits under two minutes: the SLA's long_wait (which raises levels) stays out of it.
    with Store(db_path) as s:
        lifecycle.register_agent(s, "ana")  # someone online, so the hub states a place
        calm_oldest = _waiting(s, "Cleo", "calm", 110, at)
        watch = _waiting(s, "Wim", "watch", 90, at)
        empathy_old = _waiting(s, "Eda", "empathy", 80, at)
        empathy_new = _waiting(s, "Enzo", "empathy", 20, at)
        urgent = _waiting(s, "Uma", "urgent", 10, at)
        claimed = _waiting(s, "Cai", "urgent", 100, at)
        lifecycle.claim(s, claimed, "bob")  # out of the queue, with bob
    hub = make_hub(db_path)
    try:
        with Store(db_path) as s:
            asks = lifecycle.open_conversation(s, "Hana")
            lifecycle.add_customer_message(s, asks, "Can I please talk to a real person?")
            await hub.drain()
            fraud = lifecycle.open_conversation(s, "Fred")
            lifecycle.add_customer_message(
                s, fraud, "there are payments on my card I didn't make, I've been scammed"
            )
            await hub.drain()
            assert get_conversation(s, asks)["level"] == "empathy"
            assert get_conversation(s, fraud)["level"] == "urgent"
            told = {asks: _told_ahead(s, asks), fraud: _told_ahead(s, fraud)}
    finally:
        hub.close()
    # The rule, spelled out: level first, then the longest wait.
    expected = [urgent, fraud, empathy_old, empathy_new, asks, watch, calm_oldest]
    # Each was told its place when it joined: Hana's among those waiting then (Fred came later).
    assert told == {asks: 3, fraud: 1}
    assert [c for c in expected if c != fraud].index(asks) == told[asks]
    assert expected.index(fraud) == told[fraud]

    app = TandemApp(db_path, "me", supervisor=True, interval=0.05)
    async with app.run_test(size=(160, 48), notifications=True) as pilot:
        await wait_until(pilot, lambda: len(app.rows) == 8, what="every conversation")
        await pilot.press("s")
        sup = await screen_up(pilot, SupervisorScreen)
        table = sup.query_one("#queue-table", DataTable)
        await wait_until(pilot, lambda: table.row_count == 8, what="the supervisor's table")
        listed = [int(table.coordinate_to_cell_key((i, 0))[0].value) for i in range(8)]
        assert listed == [*expected, claimed]  # the queue in order, then what agents hold
        await pilot.press("escape")
        await wait_until(pilot, lambda: isinstance(app.screen, WallScreen), what="the wall")

        taken = []
        for _ in expected:
            await pilot.press("n")
            await wait_until(
                pilot, lambda: isinstance(app.screen, ConversationScreen), what="take-next"
            )
            screen = app.screen
            assert isinstance(screen, ConversationScreen)
            taken.append(screen.conversation_id)
            await pilot.press("escape")
            await wait_until(pilot, lambda: isinstance(app.screen, WallScreen), what="the wall")
        assert taken == expected
    with Store(db_path) as s:
        assert all(get_conversation(s, c)["owner"] == "me" for c in expected)
        assert get_conversation(s, claimed)["owner"] == "bob"
