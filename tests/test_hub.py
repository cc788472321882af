"""The hub over a real store with the real triage engine and embedded bot."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest
from waiting import wait_until_async

from console.hub import Hub, make_hub
from console.policy import PolicySettings
from store import Store
from store import lifecycle as lc
from store.check import check
from store.queries import get_conversation, transcript


@pytest.fixture
def hub(db_path: Path) -> Hub:
    h = make_hub(db_path)
    yield h
    h.close()


def _open(store: Store, text: str | None = None, name: str = "Maya") -> int:
    cid = lc.open_conversation(store, name, channel="sim")
    if text:
        lc.add_customer_message(store, cid, text)
    return cid


def _roles(store: Store, cid: int) -> list[str]:
    return [m["role"] for m in transcript(store, cid)]


def _escalations(store: Store, cid: int) -> list[dict]:
    return [
        json.loads(r[0])
        for r in store.query(
            "SELECT data FROM events WHERE conversation_id = ? AND kind = 'escalated' ORDER BY id",
            (cid,),
        )
    ]


async def test_routine_question_is_answered_once_with_its_triage(hub: Hub, store: Store) -> None:
    cid = _open(store, "How do I add my card to Apple Pay?")
    await hub.drain()
    msgs = transcript(store, cid)
    assert [m["role"] for m in msgs] == ["customer", "bot"]
    bot = msgs[1]
    assert bot["reply_to"] == msgs[0]["id"] and bot["meta"]["engine"] == "embedded"
    assert msgs[0]["level"] == "calm"  # the verdict is stored on the message it answers
    conv = get_conversation(store, cid)
    assert conv["state"] == "bot"
    saved = json.loads(store.one("SELECT triage_state FROM conversations WHERE id = ?", (cid,))[0])
    assert saved["upto"] == msgs[0]["id"] and saved["engine"]
    # Nothing new: a second pass changes nothing.
    await hub.drain()
    assert _roles(store, cid) == ["customer", "bot"]


async def test_several_messages_in_one_batch_get_one_answer_to_the_last(
    hub: Hub, store: Store
) -> None:
    cid = _open(store, "hi")
    lc.add_customer_message(store, cid, "how do I update my phone number")
    await hub.drain()
    msgs = transcript(store, cid)
    assert [m["role"] for m in msgs] == ["customer", "customer", "bot"]
    assert msgs[2]["reply_to"] == msgs[1]["id"]


async def test_human_request_escalates_with_reasons_and_an_honest_wait(
    hub: Hub, store: Store
) -> None:
    lc.register_agent(store, "ana")  # one agent online
    earlier = _open(store, "Can I speak to a real person please?", name="First")
    await hub.drain()
    cid = _open(store, "I want to talk to a human, not a bot")
    await hub.drain()
    assert get_conversation(store, cid)["state"] == "waiting"
    (esc,) = _escalations(store, cid)
    assert esc["reasons"][0] == "human_request" and esc["level"] in ("empathy", "urgent")
    system = [m for m in transcript(store, cid) if m["role"] == "system"]
    assert len(system) == 1
    assert "person" in system[0]["text"] and "1 people ahead" not in system[0]["text"]
    assert "ahead of you" in system[0]["text"] and "8 minutes" in system[0]["text"]
    assert get_conversation(store, earlier)["state"] == "waiting"
    # No bot reply to a conversation that went to the queue.
    assert "bot" not in _roles(store, cid)


async def test_fraud_is_urgent_and_tells_the_customer_what_to_do_now(
    hub: Hub, store: Store
) -> None:
    cid = _open(
        store,
        "there are payments on my card I didn't make, £900 to Harbor Grocers, I think I've been scammed",
    )
    await hub.drain()
    conv = get_conversation(store, cid)
    assert conv["state"] == "waiting" and conv["level"] == "urgent"
    (esc,) = _escalations(store, cid)
    assert esc["reasons"][0] == "fraud" and esc["level"] == "urgent"
    text = transcript(store, cid)[-1]["text"]
    assert "freeze the card" in text and "Nobody from the team is online" in text


async def test_while_waiting_or_with_a_person_only_triage_is_recorded(
    hub: Hub, store: Store
) -> None:
    cid = _open(store, "Can I speak to a real person please?")
    await hub.drain()
    lc.add_customer_message(store, cid, "hello?? this is useless, I've been waiting forever")
    await hub.drain()
    assert _roles(store, cid) == ["customer", "system", "customer"]
    last = transcript(store, cid)[-1]
    assert last["level"] is not None  # agents see the verdict on the new message
    lc.claim(store, cid, "ana")
    lc.add_customer_message(store, cid, "thanks for picking this up")
    await hub.drain()
    assert "bot" not in _roles(store, cid)


async def test_after_hand_back_old_reasons_do_not_re_escalate(hub: Hub, store: Store) -> None:
    cid = _open(
        store, "my dad passed away last month and I don't know what to do about his account"
    )
    await hub.drain()
    assert "bereavement" in _escalations(store, cid)[0]["reasons"]
    lc.claim(store, cid, "ana")
    lc.agent_reply(
        store, cid, "ana", "I'm so sorry. I've closed the account and stopped the payments."
    )
    lc.hand_back(store, cid, by="ana")
    lc.add_customer_message(store, cid, "thank you. how do I download his last statement?")
    await hub.drain()
    assert get_conversation(store, cid)["state"] == "bot"
    assert transcript(store, cid)[-1]["role"] == "bot"
    # New evidence (an explicit request) does escalate again.
    lc.add_customer_message(store, cid, "actually can I talk to a real person again please")
    await hub.drain()
    assert get_conversation(store, cid)["state"] == "waiting"
    assert _escalations(store, cid)[-1]["reasons"][0] == "human_request"


async def test_settled_reasons_survive_a_hub_restart(db_path: Path, store: Store) -> None:
    hub = make_hub(db_path)
    cid = _open(
        store, "my dad passed away last month and I don't know what to do about his account"
    )
    await hub.drain()
    lc.claim(store, cid, "ana")
    lc.hand_back(store, cid, by="ana")
    await hub.drain()
    hub.close()
    lc.add_customer_message(store, cid, "ok. where can I see the statements?")
    fresh = make_hub(db_path)  # empty cache: state and settled reasons come from the store
    await fresh.drain()
    fresh.close()
    assert get_conversation(store, cid)["state"] == "bot"
    assert transcript(store, cid)[-1]["role"] == "bot"


async def test_a_message_stored_while_the_hub_was_down_is_answered_once(
    db_path: Path, store: Store
) -> None:
    hub = make_hub(db_path)
    cid = _open(store, "How does pay in 3 work?")
    await hub.drain()
    hub.close()
    lc.add_customer_message(store, cid, "Can I pay off my pay in 3 plan early?")
    # Simulate a crash after answering but before the cursor was saved: rewind the cursor.
    store.conn.execute("UPDATE cursors SET event_id = 0 WHERE name = 'hub'")
    again = make_hub(db_path)
    await again.drain()
    again.close()
    assert _roles(store, cid) == ["customer", "bot", "customer", "bot"]
    assert check(store) == []


async def test_bot_fallbacks_escalate_at_the_configured_count(db_path: Path, store: Store) -> None:
    hub = make_hub(db_path, settings=PolicySettings(max_fallbacks=1))
    cid = _open(store, "qwertyuiop zxcvbnm asdfghjkl")
    await hub.drain()
    hub.close()
    conv = get_conversation(store, cid)
    assert conv["state"] == "waiting"
    (esc,) = _escalations(store, cid)
    assert esc["reasons"][0] == "bot_fallback"
    assert "can't answer that one reliably" in transcript(store, cid)[-1]["text"]
    # The fallback the notice replaced counts: the console shows "bot fallbacks 1".
    assert conv["bot_fallbacks"] == 1


async def test_the_fallback_a_handover_notice_replaces_is_counted(hub: Hub, store: Store) -> None:
    cid = _open(store, "qwertyuiop zxcvbnm asdfghjkl")
    await hub.drain()
    assert _roles(store, cid) == ["customer", "bot"]
    assert get_conversation(store, cid)["bot_fallbacks"] == 1
    lc.add_customer_message(store, cid, "poiuytrewq lkjhgfdsa mnbvcxz")
    await hub.drain()
    # The second "I don't know" (max_fallbacks 2) was not sent: a hand-over notice went
    # instead, and the conversation waits for a person. Both fallbacks count.
    assert _roles(store, cid) == ["customer", "bot", "customer", "system"]
    conv = get_conversation(store, cid)
    assert conv["state"] == "waiting"
    assert _escalations(store, cid)[-1]["reasons"][0] == "bot_fallback"
    assert conv["bot_fallbacks"] == 2


async def test_sla_tick_raises_long_wait_and_resolves_quiet_conversations(
    db_path: Path, store: Store
) -> None:
    later = [time.time()]
    hub = make_hub(db_path, settings=PolicySettings(idle_resolve_s=60), clock=lambda: later[0])
    waiting = _open(store, "Can I speak to a real person please?")
    quiet = _open(store, "How does pay in 3 work?")
    await hub.drain()
    level_before = get_conversation(store, waiting)["level"]
    later[0] += 3600  # an hour in the queue, and an hour since the bot answered
    await hub.tick()
    hub.close()
    conv = get_conversation(store, waiting)
    assert "long_wait" in conv["reasons"]
    assert ["calm", "watch", "empathy", "urgent"].index(conv["level"]) >= [
        "calm",
        "watch",
        "empathy",
        "urgent",
    ].index(level_before)
    assert get_conversation(store, quiet)["state"] == "resolved"
    assert (
        store.one(
            "SELECT actor FROM events WHERE conversation_id = ? AND kind = 'resolved'", (quiet,)
        )[0]
        == "hub"
    )
    assert get_conversation(store, waiting)["state"] == "waiting"  # never resolved while waiting


def test_the_sla_tick_reads_what_people_settled_in_one_query(db_path: Path, store: Store) -> None:
    # A hub that does not remember the waiting conversations (restarted, or shards taken
    # over) reads what people settled for all of them at once, not once per conversation.
    def waiting(n: int) -> list[int]:
        cids = []
        for _ in range(n):
            cid = _open(store, "hello")
            lc.escalate(store, cid, reasons=["agent_request"], level="watch")
            cids.append(cid)
        return cids

    def tick_statements() -> tuple[int, Hub]:
        hub = make_hub(db_path)
        statements: list[str] = []
        hub.store.conn.set_trace_callback(statements.append)
        hub.timers.tick()
        hub.store.conn.set_trace_callback(None)
        return len(statements), hub

    # One waiting conversation was handed back once: a person settled its reasons.
    settled = waiting(1)[0]
    lc.claim(store, settled, "ana")
    lc.hand_back(store, settled, by="ana")
    lc.escalate(store, settled, reasons=["long_wait"], level="watch")
    waiting(2)
    few, hub = tick_statements()
    remembered = hub.conversations.memory.get(settled)
    assert remembered is not None
    assert remembered.settled == hub.conversations.memory.settled(settled)
    assert "agent_request" in remembered.settled.reasons
    hub.close()
    waiting(6)
    many, hub = tick_statements()
    hub.close()
    assert many == few


async def test_a_customer_back_after_an_agent_closed_it_is_not_re_escalated_on_old_reasons(
    hub: Hub, store: Store
) -> None:
    cid = _open(
        store, "my mum died two weeks ago and there are still payments coming out of her card"
    )
    await hub.drain()
    assert get_conversation(store, cid)["state"] == "waiting"
    lc.claim(store, cid, "ana")
    lc.agent_reply(store, cid, "ana", "I'm so sorry for your loss. I've stopped the payments.")
    lc.resolve(store, cid, by="ana")
    await hub.drain()
    lc.add_customer_message(store, cid, "one more thing, where do I find the statements?")
    await hub.drain()
    conv = get_conversation(store, cid)
    assert conv["state"] == "bot", _escalations(store, cid)
    assert transcript(store, cid)[-1]["role"] == "bot"


async def test_status_line_reports_throughput_queue_and_sla(hub: Hub, store: Store) -> None:
    before = hub.stats.snapshot()
    cid = _open(store, "Can I speak to a real person please?")
    _open(store, "How does pay in 3 work?")
    await hub.drain()
    lc.claim(store, cid, "ana")
    lc.agent_reply(store, cid, "ana", "Hi, I'm Ana. How can I help?")
    line = hub.status_line(before, 60.0)
    assert "2 customer messages" in line and "1 bot replies" in line and "1 escalations" in line
    assert "queue wait p50" in line and "(1 claimed)" in line and "first human reply p50" in line
    assert "human 1" in line and "bot 1" in line


async def test_released_back_to_the_bot_the_customers_last_word_gets_an_answer(
    hub: Hub, store: Store
) -> None:
    lc.register_agent(store, "sam", role="supervisor")
    cid = _open(store, "Can I speak to a real person please?")
    await hub.drain()
    lc.add_customer_message(store, cid, "also, how do I add my card to Apple Pay?")
    await hub.drain()
    assert _roles(store, cid) == ["customer", "system", "customer"]
    lc.release(store, cid, by="sam")
    await hub.drain()
    assert _roles(store, cid) == ["customer", "system", "customer", "bot"]
    assert get_conversation(store, cid)["state"] == "bot"
    # A hand-back after the agent had the last word leaves nothing for the bot to say.
    lc.claim(store, cid, "ana")
    lc.agent_reply(store, cid, "ana", "Anything else I can help with?")
    lc.hand_back(store, cid, by="ana")
    await hub.drain()
    assert _roles(store, cid)[-1] == "agent"


async def test_a_database_locked_for_a_while_delays_the_hub_but_does_not_stop_it(
    db_path: Path, store: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    import asyncio

    monkeypatch.setenv("TANDEM_BUSY_TIMEOUT_MS", "50")
    hub = make_hub(db_path)
    cid = _open(store, "How does pay in 3 work?")
    stop = asyncio.Event()
    store.conn.execute("BEGIN IMMEDIATE")  # another writer holds the lock
    runner = asyncio.create_task(hub.run(stop, idle_sleep=0.01, retry_s=0.1))
    await wait_until_async(lambda: hub.stats.errors >= 1, what="the hub meeting the lock")
    store.conn.execute("COMMIT")
    await wait_until_async(lambda: _roles(store, cid)[-1] == "bot", what="the answer")
    stop.set()
    await runner
    assert _roles(store, cid) == ["customer", "bot"]
    assert not runner.exception()


async def test_a_crash_between_the_verdict_and_the_escalation_still_escalates(
    hub: Hub, store: Store
) -> None:
    cid = _open(store, "Can I speak to a real person please?")
    # What the hub stores first on the way to the queue: the verdict, with its triage state.
    state = hub.engine.new_state()
    verdict = hub.engine.observe(state, "customer", "Can I speak to a real person please?")
    mid = transcript(store, cid)[0]["id"]
    dump = json.dumps({"upto": mid, "engine": hub.engine.dump_state(state)})
    lc.record_triage(
        store,
        cid,
        lc.TriageMark(verdict.level, verdict.score, verdict.reasons, dump),
        message_id=mid,
    )
    # ...and then the process died. The restarted hub replays the feed from the start.
    await hub.drain()
    assert get_conversation(store, cid)["state"] == "waiting"
    assert _roles(store, cid) == ["customer", "system"]


async def test_the_wait_estimate_learns_from_how_long_agents_take(
    db_path: Path, store: Store
) -> None:
    clock = [time.time()]
    hub = make_hub(db_path, clock=lambda: clock[0])
    for i in range(5):  # five conversations, each took an agent 10 minutes
        cid = _open(store, f"question {i}")
        lc.claim(store, cid, "ana", at=clock[0] - 900)
        lc.resolve(store, cid, by="ana", at=clock[0] - 300)
    await hub.drain()
    cid = _open(store, "Can I speak to a real person please?")
    await hub.drain()
    hub.close()
    # Nobody else waits, Ana is online: about one conversation's time.
    assert "the wait is about 10 minutes" in transcript(store, cid)[-1]["text"]


async def test_a_post_through_the_api_wakes_an_idle_hub(db_path: Path) -> None:
    import asyncio

    import aiohttp
    from aiohttp.test_utils import TestServer

    from console.channels.api import ChannelApi

    # An idle sleep far longer than the test may take: only the API's wake-up gets an answer.
    hub = make_hub(db_path)
    empty_reads = 0
    step = hub.step

    async def counted_step() -> int:
        nonlocal empty_reads
        handled = await step()
        empty_reads += handled == 0
        return handled

    hub.step = counted_step  # type: ignore[method-assign]  # observed, not changed
    stop = asyncio.Event()
    running = asyncio.create_task(hub.run(stop, idle_sleep=300))
    api = ChannelApi(db_path, token="t", on_post=hub.wake)
    srv = TestServer(api.app, host="127.0.0.1")
    await srv.start_server()
    try:
        async with aiohttp.ClientSession(base_url=str(srv.make_url(""))) as s:
            # The hub read the feed and found nothing: from here it idles for 300 s.
            await wait_until_async(lambda: empty_reads >= 1, what="the hub idle")
            made = await (
                await s.post(
                    "/v1/conversations",
                    json={"customer": {"name": "Maya"}},
                    headers={"Authorization": "Bearer t"},
                )
            ).json()
            auth = {"Authorization": f"Bearer {made['customer_token']}"}
            r = await s.post(
                f"/v1/conversations/{made['id']}/messages",
                json={"text": "how do I freeze my card?"},
                headers=auth,
            )
            assert r.status == 201
            with Store(db_path) as store:
                cid = int(made["id"])
                await wait_until_async(lambda: "bot" in _roles(store, cid), what="the answer")
            got = await (
                await s.get(f"/v1/conversations/{made['id']}/messages", headers=auth)
            ).json()
            assert [m["role"] for m in got["messages"]] == ["customer", "bot"]
    finally:
        stop.set()
        await asyncio.wait_for(running, 10)
        await srv.close()
