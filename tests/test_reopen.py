"""A closed conversation the customer writes into again: back to the person who closed it if
they are online, else to the queue with a note, never to an assistant starting from nothing.
The policy decides (pure), the store moves it in the message's own transaction, the hub tells
the customer where they are, over a real store file and a real channel API."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import aiohttp
import pytest
from aiohttp.test_utils import TestServer

from console.channels.api import ApiLimits, ChannelApi
from console.channels.reopening import reopen_router
from console.hub import Hub, make_hub
from console.policy import PolicySettings, load_settings, reopen_message, reopen_route
from store import Store, accounts
from store import lifecycle as lc
from store.check import check
from store.history import Closing, Reopening
from store.queries import get_conversation, transcript

HOUR = 3600.0


def _closing(from_state: str, agent: str | None = "ana") -> Closing:
    return Closing(7, "resolved", from_state, agent or "hub", agent, 0.0)


@pytest.mark.parametrize(
    ("closing", "online", "reopen_to", "expected"),
    [
        (None, False, "last_agent", Reopening("bot")),
        (_closing("bot", None), False, "last_agent", Reopening("bot")),
        (_closing("human"), True, "last_agent", Reopening("human", agent="ana")),
        (_closing("human"), False, "last_agent", Reopening("waiting")),
        (_closing("human"), True, "queue", Reopening("waiting")),
        (_closing("human"), True, "bot", Reopening("bot")),
        (_closing("waiting", None), True, "last_agent", Reopening("waiting")),
    ],
)
def test_the_policy_routes_a_reopening(
    closing: Closing | None, online: bool, reopen_to: str, expected: Reopening
) -> None:
    settings = PolicySettings(reopen_to=reopen_to)
    route = reopen_route(settings, closing, agent_online=online)
    assert (route.state, route.agent) == (expected.state, expected.agent)
    if route.state == "waiting":
        # Agents picking it from the queue are told why it is there, and who had it.
        assert route.note and "Reopened by the customer" in route.note
        if closing is not None and closing.agent:
            assert closing.agent in route.note


def test_reopen_to_is_a_policy_file_setting(tmp_path: Path) -> None:
    path = tmp_path / "policy.toml"
    path.write_text('reopen_to = "queue"\n')
    assert load_settings(path).reopen_to == "queue"
    path.write_text('reopen_to = "nowhere"\n')
    with pytest.raises(ValueError, match="reopen_to must be one of last_agent, queue, bot"):
        load_settings(path)


def test_what_the_customer_is_told() -> None:
    assert reopen_message("human", agent="ana.lopez") == (
        "Welcome back. Ana, who helped you before, has your conversation again and will reply here."
    )
    assert reopen_message("human", agent="root").startswith(
        "Welcome back. The person who helped you before"
    )
    queued = reopen_message("waiting", agent=None, queue_ahead=1, wait_minutes=4)
    assert queued and "1 person ahead of you" in queued and "about 4 minutes" in queued
    assert reopen_message("bot", agent=None) is None


def _closed_by(store: Store, agent: str, *, seen_ago: float) -> int:
    cid = lc.open_conversation(store, "Maya")
    lc.add_customer_message(store, cid, "my card was charged twice")
    lc.claim(store, cid, agent)
    lc.agent_reply(store, cid, agent, "I've refunded the second charge.")
    lc.resolve(store, cid, by=agent)
    store.conn.execute(
        "UPDATE agents SET last_seen_at = ? WHERE name = ?", (time.time() - seen_ago, agent)
    )
    return cid


def _notes(store: Store, cid: int) -> list[str]:
    return [m["text"] for m in transcript(store, cid) if m["role"] == "note"]


def test_back_to_the_person_who_closed_it_while_they_are_online(store: Store) -> None:
    cid = _closed_by(store, "ana", seen_ago=60)
    route = reopen_router(store, PolicySettings())
    posted = lc.add_customer_message(store, cid, "it's back on my statement", reopen=route)
    assert posted.reopened and posted.state == "human"
    conv = get_conversation(store, cid)
    assert (conv["state"], conv["owner"], conv["resolved_at"]) == ("human", "ana", None)
    assert _notes(store, cid) == ["Reopened by the customer: back to ana, who closed it."]
    assert check(store) == []


def test_to_the_queue_with_a_note_when_they_are_offline(store: Store) -> None:
    cid = _closed_by(store, "ana", seen_ago=2 * HOUR)
    route = reopen_router(store, PolicySettings())
    posted = lc.add_customer_message(store, cid, "it's back on my statement", reopen=route)
    assert posted.state == "waiting"
    conv = get_conversation(store, cid)
    assert conv["state"] == "waiting" and conv["owner"] is None and conv["waiting_since"]
    assert _notes(store, cid) == [
        "Reopened by the customer after it was closed; ana had it and is not online."
    ]
    # The whole history comes along: the agent who picks it up sees what was said.
    texts = [m["text"] for m in transcript(store, cid, include_notes=False)]
    assert texts[:2] == ["my card was charged twice", "I've refunded the second charge."]
    assert check(store) == []


def test_a_disabled_account_sends_it_to_the_queue(store: Store) -> None:
    accounts.add(store, "ana", "agent")
    cid = _closed_by(store, "ana", seen_ago=10)
    accounts.set_disabled(store, "ana")
    route = reopen_router(store, PolicySettings())
    assert lc.add_customer_message(store, cid, "hello again", reopen=route).state == "waiting"


def test_without_a_policy_the_store_keeps_its_old_default(store: Store) -> None:
    cid = _closed_by(store, "ana", seen_ago=10)
    assert lc.add_customer_message(store, cid, "hello again").state == "bot"
    assert check(store) == []


@pytest.fixture
def hub(db_path: Path) -> Iterator[Hub]:
    h = make_hub(db_path)
    yield h
    h.close()


def _system(store: Store, cid: int) -> list[str]:
    return [m["text"] for m in transcript(store, cid) if m["role"] == "system"]


async def test_the_hub_tells_the_customer_who_has_it_once_and_the_bot_stays_out(
    hub: Hub, store: Store
) -> None:
    back = _closed_by(store, "ana.lopez", seen_ago=30)
    queued = _closed_by(store, "bob", seen_ago=3 * HOUR)
    await hub.drain()
    route = reopen_router(store, hub.settings)
    lc.add_customer_message(store, back, "the refund vanished again", reopen=route)
    lc.add_customer_message(store, queued, "the refund vanished again", reopen=route)
    await hub.drain()
    assert _system(store, back) == [
        "Welcome back. Ana, who helped you before, has your conversation again and will reply here."
    ]
    (told,) = _system(store, queued)
    assert told.startswith("Welcome back. I've passed your conversation to a person on our team")
    for cid in (back, queued):
        assert "bot" not in [m["role"] for m in transcript(store, cid)]
    # A hub restarted from an older cursor replays the reopening: the customer is told once.
    store.conn.execute("UPDATE cursors SET event_id = 0 WHERE name = 'hub'")
    fresh = make_hub(store.path)
    try:
        await fresh.drain()
    finally:
        fresh.close()
    assert len(_system(store, back)) == 1 and len(_system(store, queued)) == 1
    assert check(store) == []


async def test_through_the_channel_api_the_customer_is_back_with_ana(db_path: Path) -> None:
    api = ChannelApi(
        db_path, token="t0ken", limits=ApiLimits(rate_per_s=1000, burst=1000), poll_interval=0.01
    )
    server = TestServer(api.app, host="127.0.0.1")
    await server.start_server()
    try:
        async with aiohttp.ClientSession(base_url=str(server.make_url(""))) as s:
            opened = await (await s.post("/web/conversations", json={"name": "Maya"})).json()
            cid, auth = opened["id"], {"Authorization": f"Bearer {opened['customer_token']}"}
            store = Store(db_path)
            lc.claim(store, int(cid), "ana")
            lc.resolve(store, int(cid), by="ana")
            r = await s.post(
                f"/v1/conversations/{cid}/messages", json={"text": "one more thing"}, headers=auth
            )
            assert r.status == 201
            conv = await (await s.get(f"/v1/conversations/{cid}", headers=auth)).json()
            assert conv["state"] == "human" and conv["handled_by"] == {
                "kind": "agent",
                "name": "Ana",
            }
            store.close()
    finally:
        await server.close()
