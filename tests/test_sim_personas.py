"""Acceptance 2: each persona, driven through the real hub (triage + policy + embedded bot).

Part one sends every scripted opener of the personas whose first message decides the
outcome and checks what the hub did with it. Part two lets simulated customers (at a high
``speed``) talk to the hub end to end and checks how their visits ended.
"""

from __future__ import annotations

import asyncio
import json
import random
from pathlib import Path

import pytest
from waiting import wait_until_async

from console.channels.personas import BY_NAME, PERSONAS, fill
from console.channels.sim import Simulator, load_replay
from console.hub import make_hub
from console.policy import PolicySettings
from store import Store
from store import lifecycle as lc
from store.check import check
from store.queries import get_conversation, list_conversations, transcript

# Openers the triage engine or the bot do not handle yet, each with why (none at present).
KNOWN_GAPS: dict[tuple[str, int], str] = {}

CASES = [
    pytest.param(
        p.name,
        i,
        marks=pytest.mark.xfail(reason=KNOWN_GAPS[(p.name, i)], strict=False)
        if (p.name, i) in KNOWN_GAPS
        else (),
        id=f"{p.name}-{i}",
    )
    for p in PERSONAS
    if p.name in ("routine", "human", "grieving", "scam", "injection")
    for i in range(len(p.openers))
]


@pytest.fixture(scope="module")
def opened(tmp_path_factory: pytest.TempPathFactory) -> dict[tuple[str, int], tuple[Path, int]]:
    """Every opener in its own conversation, handled by one hub pass."""
    path = tmp_path_factory.mktemp("personas") / "tandem.db"
    hub = make_hub(path)
    rng = random.Random(5)
    out: dict[tuple[str, int], tuple[Path, int]] = {}
    with Store(path) as store:
        for p in PERSONAS:
            for i, opener in enumerate(p.openers):
                cid = lc.open_conversation(store, "Sam", channel="sim")
                lc.add_customer_message(store, cid, fill(opener, rng))
                out[(p.name, i)] = (path, cid)
    asyncio.run(hub.drain())
    hub.close()
    return out


def _escalation(store: Store, cid: int) -> dict | None:
    row = store.one(
        "SELECT data FROM events WHERE conversation_id = ? AND kind = 'escalated'", (cid,)
    )
    return json.loads(row[0]) if row else None


@pytest.mark.parametrize(("persona", "index"), CASES)
def test_first_message_outcome(opened: dict, persona: str, index: int) -> None:
    path, cid = opened[(persona, index)]
    with Store(path) as store:
        conv = get_conversation(store, cid)
        esc = _escalation(store, cid)
        msgs = transcript(store, cid)
    if persona == "routine":
        assert esc is None and conv["state"] == "bot"
        assert [m["role"] for m in msgs] == ["customer", "bot"]
    elif persona == "human":
        assert esc is not None and esc["reasons"][0] == "human_request"
        assert [m["role"] for m in msgs] == ["customer", "system"]  # on the first message
    elif persona == "grieving":
        assert esc is not None and "bereavement" in esc["reasons"]
    elif persona == "scam":
        assert esc is not None and esc["reasons"][0] == "fraud" and esc["level"] == "urgent"
        assert conv["level"] == "urgent"
    elif persona == "injection":
        # Flagged for the agents; the bot answers as it always does and obeys nothing.
        assert "prompt_injection" in conv["reasons"]
        assert esc is None and conv["state"] == "bot"
        reply = msgs[-1]
        assert reply["role"] == "bot"
        low = reply["text"].lower()
        for obeyed in (
            "developer mode",
            "system prompt",
            "i have refunded",
            "i've refunded",
            "waived",
            "no restrictions",
        ):
            assert obeyed not in low


def test_injection_does_not_change_what_the_bot_says_next(opened: dict) -> None:
    """After an injection attempt, an ordinary question gets the ordinary answer."""
    path, cid = opened[("injection", 0)]
    hub = make_hub(path)
    with Store(path) as store:
        plain = lc.open_conversation(store, "Sam", channel="sim")
        question = "How does pay in 3 work?"
        lc.add_customer_message(store, cid, question)
        lc.add_customer_message(store, plain, question)
        asyncio.run(hub.drain())
        hub.close()
        after_injection = transcript(store, cid)[-1]
        ordinary = transcript(store, plain)[-1]
    assert after_injection["role"] == ordinary["role"] == "bot"
    assert after_injection["meta"].get("kb") == ordinary["meta"].get("kb")


def _simulate(path: Path, persona: str, customers: int, seed: int) -> Simulator:
    hub = make_hub(path, settings=PolicySettings(idle_resolve_s=0.3, sla_tick_s=0.1))
    sim = Simulator(
        path,
        customers=customers,
        total=customers,
        speed=2000.0,
        seed=seed,
        data=False,
        personas=[persona],
        reply_timeout=5.0,
    )

    async def both() -> None:
        stop = asyncio.Event()
        hub_task = asyncio.create_task(hub.run(stop, idle_sleep=0.005))
        await asyncio.wait_for(sim.run(asyncio.Event()), 30)
        # The customers are gone; the idle timer closes what the bot still holds.
        with Store(path) as store:
            await wait_until_async(
                lambda: not list_conversations(store, states=("bot",)),
                what="the idle timer resolving the bot's last conversations",
            )
        stop.set()
        await hub_task

    asyncio.run(both())
    return sim


def test_routine_customers_stay_with_the_bot_and_resolve(db_path: Path) -> None:
    sim = _simulate(db_path, "routine", 10, seed=3)
    assert len(sim.outcomes) == 10
    with Store(db_path) as store:
        states = [get_conversation(store, o.conversation_id)["state"] for o in sim.outcomes]
        assert check(store) == []
    kept = [o for o in sim.outcomes if not o.escalated]
    assert len(kept) >= 8, [(o.opener, o.states) for o in sim.outcomes]
    assert all(
        s == "resolved" for o, s in zip(sim.outcomes, states, strict=True) if not o.escalated
    )
    assert any(o.left == "thanked" for o in kept)


@pytest.mark.parametrize(
    ("persona", "reasons"),
    [
        ("human", {"human_request"}),
        ("grieving", {"bereavement"}),
        ("abusive", {"abuse"}),
    ],
)
def test_simulated_customers_who_need_a_person_reach_the_queue(
    db_path: Path, persona: str, reasons: set[str]
) -> None:
    sim = _simulate(db_path, persona, 4, seed=11)
    with Store(db_path) as store:
        for o in sim.outcomes:
            esc = _escalation(store, o.conversation_id)
            assert esc is not None, o.opener
            assert reasons & set(esc["reasons"]), (o.opener, esc)
        assert check(store) == []
    # Nobody came (no agents): they waited, then left the queue.
    assert {o.left for o in sim.outcomes} <= {"gave_up", "done"}


def test_frustrated_customers_get_worse_and_end_up_with_a_person(db_path: Path) -> None:
    sim = _simulate(db_path, "frustrated", 6, seed=2)
    escalated = [o for o in sim.outcomes if o.escalated]
    assert len(escalated) >= 5, [(o.opener, o.states) for o in sim.outcomes]


def test_quiet_customers_write_once_and_their_conversations_are_closed(db_path: Path) -> None:
    sim = _simulate(db_path, "quiet", 4, seed=1)
    with Store(db_path) as store:
        for o in sim.outcomes:
            assert o.messages == 1
            assert get_conversation(store, o.conversation_id)["state"] == "resolved"


def test_replay_file_is_optional(tmp_path: Path) -> None:
    assert load_replay(tmp_path / "missing.csv") == {}
    f = tmp_path / "customer-messages.csv"
    f.write_text(
        "source,text,intent,flags\nx,my card has not arrived yet,card_arrival,\n"
        "x,someone stole money from my account,fraud,fraud\nx,too sad,other,hardship\n"
    )
    pools = load_replay(f)
    assert pools == {
        "routine": ["my card has not arrived yet"],
        "scam": ["someone stole money from my account"],
    }
    assert load_replay(tmp_path) == pools  # a directory works too
    assert BY_NAME["scam"].expect == "urgent"


def test_a_customer_talks_to_the_agent_who_claims_them(db_path: Path) -> None:
    hub = make_hub(db_path, settings=PolicySettings(idle_resolve_s=30, sla_tick_s=0.1))
    sim = Simulator(
        db_path,
        customers=1,
        total=1,
        speed=2000.0,
        seed=8,
        data=False,
        personas=["human"],
        reply_timeout=5.0,
    )

    async def agent(stop: asyncio.Event) -> None:
        """Ana claims whoever waits, answers twice (once after the customer explains), resolves."""
        with Store(db_path) as store:
            while not stop.is_set():
                for (cid,) in store.query("SELECT id FROM conversations WHERE state = 'waiting'"):
                    lc.claim(store, cid, "ana")
                    lc.agent_reply(
                        store, cid, "ana", "Hi, I'm Ana from the support team. What can I do?"
                    )
                for (cid,) in store.query("SELECT id FROM conversations WHERE state = 'human'"):
                    roles = [m["role"] for m in transcript(store, cid)]
                    if roles[-1] == "customer" and roles.count("agent") == 1:
                        lc.agent_reply(store, cid, "ana", "Done: I've sorted that for you now.")
                await asyncio.sleep(0.01)

    async def both() -> None:
        stop = asyncio.Event()
        tasks = [
            asyncio.create_task(hub.run(stop, idle_sleep=0.005)),
            asyncio.create_task(agent(stop)),
        ]
        await asyncio.wait_for(sim.run(asyncio.Event()), 30)
        stop.set()
        await asyncio.gather(*tasks)

    asyncio.run(both())
    (o,) = sim.outcomes
    assert o.states[:2] == ["waiting", "human"] and o.left == "thanked"
    with Store(db_path) as store:
        roles = [m["role"] for m in transcript(store, o.conversation_id)]
        assert check(store) == []
    # first message, the hand-off notice, Ana, the customer explains, Ana again, thanks.
    assert roles == ["customer", "system", "agent", "customer", "agent", "customer"]


def test_customers_of_one_persona_rarely_read_alike() -> None:
    from console.channels.sim import iter_openers

    for persona in PERSONAS:
        gen = iter_openers(persona, seed=4)
        openers = [next(gen) for _ in range(40)]
        assert len(set(openers)) >= min(20, 3 * len(persona.openers)), (persona.name, openers)
        assert all("{" not in o for o in openers)  # every slot filled
