"""Simulated customers: asyncio tasks that write through the lifecycle API like a channel.

Each customer opens a conversation (channel ``sim``), types its opener at human speed and
reacts to what comes back, read from the change feed: it answers a clarifying question,
rephrases (and grows impatient) after a bot that did not know, thanks and leaves when
answered, waits in the queue when told a person is coming and leaves (``abandon``) when its
patience runs out. :class:`Simulator` keeps ``customers`` of them active, starting a new
one whenever one leaves.

Replay: when ``customer-messages.csv`` exists (``../shared/data`` next to the repository, or
a path given), a share of first messages is drawn from it; without it the personas' own
scripts are used.

All delays are divided by ``speed`` (tests use a large one); messages carry idempotency
keys, so a retried write is stored once.
"""

from __future__ import annotations

import asyncio
import csv
import itertools
import logging
import random
import sqlite3
import time
import uuid
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from console.channels.personas import BY_NAME, PERSONAS, SLOTS, Persona, fill, pick_persona, vary
from console.channels.reopening import reopen_router
from console.policy import PolicySettings
from store import Store, queries
from store import lifecycle as lc
from store.db import location
from store.errors import DatabaseUnavailable, InvalidInput, InvalidTransition, NotFound
from store.feed import Follower

log = logging.getLogger("tandem.sim")

REPLAY_FILE = "customer-messages.csv"
REPLAY_MAX_CHARS = 600
_FLAG_PERSONA = {"fraud": "scam", "human_request": "human", "bereavement": "grieving"}
_STATE_EVENTS = {
    "escalated": "waiting",
    "claimed": "human",
    "assigned": "human",
    "transferred": "human",
    "released": "bot",
    "handed_back": "bot",
    "reopened": "bot",
    "resolved": "resolved",
    "abandoned": "resolved",
}
_NAMES = (
    "Maya",
    "Tom",
    "Aisha",
    "Jonas",
    "Priya",
    "Liam",
    "Sofia",
    "Mateo",
    "Chloe",
    "Kwame",
    "Ines",
    "Oliver",
    "Hana",
    "Ravi",
    "Zoe",
    "Marek",
    "Lucia",
    "Ben",
    "Amara",
    "Theo",
    "Nadia",
    "Sam",
    "Elif",
    "Jack",
    "Mei",
    "Tariq",
    "Greta",
    "Owen",
    "Leila",
    "Finn",
)
_SURNAMES = (
    "Okafor",
    "Schmidt",
    "Patel",
    "Novak",
    "Garcia",
    "Brown",
    "Kim",
    "Rossi",
    "Haddad",
    "Jensen",
    "Silva",
    "Walsh",
    "Nakamura",
    "Ahmed",
    "Dubois",
)


def default_data_dir() -> Path:
    """``../shared/data`` relative to the repository holding this package."""
    return Path(__file__).resolve().parents[2].parent / "shared" / "data"


def load_replay(path: str | Path | None = None) -> dict[str, list[str]]:
    """First messages from ``customer-messages.csv``, grouped by the persona they suit.

    :param path: the CSV file or its directory; ``None`` looks in :func:`default_data_dir`
    :return: persona name -> texts; empty when the file is absent or unreadable
    """
    p = Path(path) if path is not None else default_data_dir()
    if p.is_dir():
        p = p / REPLAY_FILE
    pools: dict[str, list[str]] = {}
    try:
        with p.open(newline="", encoding="utf-8") as fh:
            for row in csv.DictReader(fh):
                text = " ".join((row.get("text") or "").split())
                if not text or len(text) > REPLAY_MAX_CHARS:
                    continue
                flags = [
                    f for f in (row.get("flags") or "").replace(";", ",").split(",") if f.strip()
                ]
                persona = "routine"
                for f in flags:
                    persona = _FLAG_PERSONA.get(f.strip(), persona)
                if flags and persona == "routine":
                    continue  # hardship/illness: no persona scripts its follow-ups
                pools.setdefault(persona, []).append(text)
    except (OSError, csv.Error, UnicodeDecodeError):
        return {}
    return pools


@dataclass(frozen=True, slots=True)
class Incoming:
    """Something the customer sees: a message, or a change of who is handling them."""

    kind: str  # "message" or "state"
    role: str | None = None
    text: str = ""
    fallback: bool = False
    clarify: bool = False  # the bot asked which thing the customer means
    state: str | None = None


@dataclass(slots=True)
class Outcome:
    """How one simulated customer's visit went."""

    persona: str
    conversation_id: int
    opener: str
    replayed: bool
    messages: int = 0
    states: list[str] = field(default_factory=list)  # states seen, in order
    left: str = "done"  # done | thanked | gave_up | no_reply | stopped

    @property
    def escalated(self) -> bool:
        return "waiting" in self.states or "human" in self.states

    @property
    def as_expected(self) -> bool:
        """Did it go the way the persona's ``expect`` says (a visit cut short counts as yes)?"""
        expect = BY_NAME[self.persona].expect
        if self.left == "stopped" or expect in ("any", "flagged"):
            return True
        return self.escalated if expect in ("escalate", "urgent") else not self.escalated


class Simulator:
    """Keeps ``customers`` simulated customers active on the store at ``path``.

    :param customers: how many at once
    :param speed: divides every human delay (typing, reading, patience)
    :param seed: for reproducible runs
    :param data: the replay CSV (or its directory); ``None`` looks next to the repository;
        ``False`` turns replay off
    :param replay_share: the share of first messages drawn from the replay file
    :param reply_timeout: real seconds a customer waits for the bot before leaving
    :param total: stop starting new customers after this many (``None``: run until stopped)
    :param personas: restrict to these persona names
    """

    def __init__(
        self,
        path: str | Path,
        *,
        customers: int = 10,
        speed: float = 1.0,
        seed: int | None = None,
        data: str | Path | bool | None = None,
        replay_share: float = 0.3,
        reply_timeout: float = 30.0,
        total: int | None = None,
        personas: list[str] | None = None,
        settings: PolicySettings | None = None,
    ) -> None:
        if speed <= 0:
            raise ValueError("speed must be positive")
        self.path = location(path)
        self.settings = settings or PolicySettings()
        self.customers = customers
        self.speed = speed
        self.rng = random.Random(seed)
        self.replay = {} if data is False else load_replay(None if data in (None, True) else data)  # type: ignore[arg-type]
        self.replay_share = replay_share
        self.reply_timeout = reply_timeout
        self.total = total
        self.personas = [BY_NAME[n] for n in personas] if personas else None
        self.outcomes: list[Outcome] = []
        self.started = 0
        self._queues: dict[int, asyncio.Queue[Incoming]] = {}
        self._store: Store | None = None
        self._follower: Follower | None = None
        self._seq = itertools.count(1)

    # --- running ---------------------------------------------------------------------------

    @property
    def store(self) -> Store:
        if self._store is None:
            self._store = Store(self.path)
        return self._store

    async def run(self, stop: asyncio.Event) -> None:
        """Keep customers arriving until ``stop`` is set (or ``total`` have come and gone)."""
        self._follower = Follower(self.path, after=None)
        self._follower.poll()  # start at the current end of the feed
        dispatcher = asyncio.create_task(self._dispatch(stop))
        active: set[asyncio.Task[Outcome]] = set()
        first = True
        try:
            while not stop.is_set():
                while len(active) < self.customers and (
                    self.total is None or self.started < self.total
                ):
                    # The first wave trickles in over a few seconds; later ones replace leavers.
                    delay = (
                        self.rng.uniform(0, min(8.0, 0.15 * self.customers))
                        if first
                        else self.rng.uniform(0.5, 4.0)
                    )
                    active.add(asyncio.create_task(self._visit(delay / self.speed, stop)))
                    self.started += 1
                first = False
                if not active:
                    break
                done, active = await asyncio.wait(
                    active, timeout=0.25, return_when=asyncio.FIRST_COMPLETED
                )
                for task in done:
                    if not task.cancelled() and task.exception() is None:
                        self.outcomes.append(task.result())
                    elif not task.cancelled():
                        log.error("simulated customer failed", exc_info=task.exception())
        finally:
            for task in active:
                task.cancel()
            await asyncio.gather(*active, return_exceptions=True)
            dispatcher.cancel()
            await asyncio.gather(dispatcher, return_exceptions=True)
            self.close()

    def close(self) -> None:
        if self._follower is not None:
            self._follower.close()
            self._follower = None
        if self._store is not None:
            self._store.close()
            self._store = None

    async def _dispatch(self, stop: asyncio.Event) -> None:
        """Route feed events to the customers they concern."""
        assert self._follower is not None
        while not stop.is_set():
            try:
                events = self._follower.poll()
            except (DatabaseUnavailable, sqlite3.OperationalError) as exc:
                # Locked by a long writer: customers just wait a little longer for replies.
                log.warning("simulator: %s; retrying", exc)
                await asyncio.sleep(0.5)
                continue
            for ev in events:
                q = self._queues.get(ev.conversation_id or -1)
                if q is None:
                    continue
                if ev.kind == "message":
                    data = ev.data or {}
                    role = data.get("role")
                    if role not in ("bot", "agent", "system"):
                        continue
                    msg = queries.message(self.store, ev.message_id or 0)
                    if msg is not None:
                        clarify = msg["meta"].get("intent") == "clarify"
                        q.put_nowait(
                            Incoming(
                                "message", role, msg["text"], bool(data.get("fallback")), clarify
                            )
                        )
                elif ev.kind in _STATE_EVENTS:
                    # A reopening goes where the policy sent it; the feed records where.
                    state = ev.to_state if ev.kind == "reopened" else None
                    q.put_nowait(Incoming("state", state=state or _STATE_EVENTS[ev.kind]))
            await asyncio.sleep(0.05 if not events else 0)

    # --- one customer ----------------------------------------------------------------------

    def _choose(self) -> tuple[Persona, str, bool]:
        persona = self.rng.choice(self.personas) if self.personas else pick_persona(self.rng)
        pool = self.replay.get(persona.name)
        if pool and not persona.quiet and self.rng.random() < self.replay_share:
            return persona, self.rng.choice(pool), True
        return persona, "", False

    async def _sleep(self, seconds: float, stop: asyncio.Event) -> None:
        if seconds > 0:
            await asyncio.sleep(seconds / self.speed)
        if stop.is_set():
            raise asyncio.CancelledError

    async def _visit(self, arrive_in: float, stop: asyncio.Event) -> Outcome:
        await asyncio.sleep(arrive_in)
        persona, opener, replayed = self._choose()
        return await self.visit(persona, stop, opener=opener or None, replayed=replayed)

    async def visit(
        self,
        persona: Persona,
        stop: asyncio.Event,
        *,
        opener: str | None = None,
        replayed: bool = False,
    ) -> Outcome:
        """One customer of ``persona`` from first message to leaving."""
        rng = random.Random(self.rng.random())
        slots = {k: rng.choice(v) for k, v in SLOTS.items()}
        first = opener or vary(fill(rng.choice(persona.openers), rng, slots), rng, greet=True)
        name = f"{rng.choice(_NAMES)} {rng.choice(_SURNAMES)}"
        cid = lc.open_conversation(
            self.store, name, external_id=f"sim-{uuid.uuid4().hex[:12]}", channel="sim"
        )
        queue: asyncio.Queue[Incoming] = asyncio.Queue()
        self._queues[cid] = queue
        out = Outcome(persona.name, cid, first, replayed)
        state = "bot"
        try:
            await self._sleep(_typing(first, rng), stop)
            self._say(cid, first, out)
            if persona.quiet:
                return out
            used: Counter[str] = Counter()
            nudged = False
            waiting_since: float | None = None
            patience = rng.uniform(*persona.patience_s) / self.speed
            while out.messages < persona.max_turns:
                timeout = self.reply_timeout
                if state == "waiting":
                    waiting_since = waiting_since or time.monotonic()
                    timeout = max(0.0, waiting_since + patience - time.monotonic())
                    if not nudged:
                        timeout /= 2
                elif state == "human":
                    # A person has it now: the customer waits as long as their patience lasts.
                    timeout = patience
                try:
                    inc = await asyncio.wait_for(queue.get(), timeout)
                except TimeoutError:
                    if state == "waiting" and not nudged and persona.in_queue:
                        nudged = True
                        self._say(cid, fill(rng.choice(persona.in_queue), rng, slots), out)
                        continue
                    if state == "waiting":
                        await self._leave_queue(cid, persona, rng, slots, out)
                    elif state == "human" and not used["agent"] and persona.give_up:
                        self._say(cid, fill(rng.choice(persona.give_up), rng, slots), out)
                        out.left = "gave_up"
                    elif state == "human":
                        out.left = "done"
                    else:
                        out.left = "no_reply"
                    return out
                if inc.kind == "state":
                    state = inc.state or state
                    out.states.append(state)
                    if state == "resolved":
                        return out
                    if state != "waiting":
                        waiting_since = None
                    continue
                line = self._react(persona, inc, state, rng, slots, first, used)
                if line is None:
                    continue
                if line == "":
                    # Satisfied: thank and go.
                    if persona.thanks:
                        await self._sleep(_reading(inc.text, rng) + _typing("thanks", rng), stop)
                        self._say(cid, fill(rng.choice(persona.thanks), rng, slots), out)
                    out.left = "thanked"
                    return out
                await self._sleep(_reading(inc.text, rng) + _typing(line, rng), stop)
                self._say(cid, line, out)
            out.left = "done"
            return out
        except asyncio.CancelledError:
            out.left = "stopped"
            return out
        finally:
            self._queues.pop(cid, None)

    def _react(
        self,
        persona: Persona,
        inc: Incoming,
        state: str,
        rng: random.Random,
        slots: dict[str, str],
        opener: str,
        used: Counter[str],
    ) -> str | None:
        """The customer's next line; ``""`` means thank and leave, ``None`` means say nothing."""
        if inc.role == "system":
            return None
        if inc.role == "agent":
            used["agent"] += 1
            if used["agent"] > 1 or not persona.to_agent:
                return ""
            return fill(rng.choice(persona.to_agent), rng, slots)
        if state != "bot":
            return None  # a late bot line while waiting for a person
        if inc.fallback and persona.after_fallback:
            line = _next(persona.after_fallback, used, "fallback")
            return vary(fill(line.replace("{opener}", opener), rng, slots), rng)
        if (inc.clarify or _is_clarifying(inc.text)) and persona.clarify and used["clarify"] < 2:
            used["clarify"] += 1
            return vary(fill(rng.choice(persona.clarify), rng, slots), rng)
        if not persona.after_answer:
            return ""
        line = _next(persona.after_answer, used, "answer")
        return "" if line is None else vary(fill(line, rng, slots), rng)

    async def _leave_queue(
        self, cid: int, persona: Persona, rng: random.Random, slots: dict[str, str], out: Outcome
    ) -> None:
        if persona.give_up:
            self._say(cid, fill(rng.choice(persona.give_up), rng, slots), out)
        try:
            lc.abandon(self.store, cid, by="customer")
        except (InvalidTransition, NotFound):
            pass  # claimed at the last moment, or already closed
        out.left = "gave_up"

    def _say(self, cid: int, text: str, out: Outcome) -> None:
        try:
            lc.add_customer_message(
                self.store,
                cid,
                text,
                idempotency_key=f"sim-{cid}-{next(self._seq)}",
                reopen=reopen_router(self.store, self.settings),
            )
        except InvalidInput:
            return
        out.messages += 1

    def summary(self) -> dict[str, Counter[str]]:
        """Per persona: how many customers left which way, and how many were escalated."""
        table: dict[str, Counter[str]] = {}
        for o in self.outcomes:
            c = table.setdefault(o.persona, Counter())
            c["customers"] += 1
            c[o.left] += 1
            c["escalated"] += int(o.escalated)
            c["unexpected"] += int(not o.as_expected)
        return table


def _next(options: tuple[Any, ...], used: Counter[str], key: str) -> Any:
    """Options in order (personas' lines escalate), repeating the last one."""
    i = used[key]
    used[key] += 1
    return options[min(i, len(options) - 1)]


def _is_clarifying(text: str) -> bool:
    """Does the bot ask which thing the customer means (rather than offer more help)?"""
    low = text.lower().strip()
    if not low.endswith("?"):
        return False
    return any(
        k in low
        for k in (
            "which",
            "do you mean",
            "could you tell me",
            "can you tell me",
            "is it about",
            "are you asking",
            "what kind",
            "more detail",
        )
    )


def _typing(text: str, rng: random.Random) -> float:
    """Seconds to type ``text``: 3.5-7 characters a second plus a moment to think."""
    return rng.uniform(0.8, 3.0) + len(text) / rng.uniform(3.5, 7.0)


def _reading(text: str, rng: random.Random) -> float:
    """Seconds to read a reply (about 25 characters a second)."""
    return rng.uniform(0.5, 1.5) + len(text) / 25.0


def persona_names() -> list[str]:
    """Every persona's name, in the order they are defined."""
    return [p.name for p in PERSONAS]


def iter_openers(persona: Persona, seed: int = 0) -> Iterator[str]:
    """Endless varied openers of ``persona`` (for benchmarks)."""
    rng = random.Random(seed)
    while True:
        yield vary(fill(rng.choice(persona.openers), rng), rng, greet=True)
