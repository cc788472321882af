"""What-if: replay stored conversations through triage and two policies, and compare.

A supervisor who wants to escalate at ``watch`` instead of ``empathy``, after 3 fallbacks
instead of 2, or with one more urgent reason, can see the effect on past conversations before
customers feel it. For every conversation opened in the window, its customer turns are fed to
the offline triage engine in order, with the bot's stored replies standing as they were (their
fallbacks count; no LLM is called), and after each turn (and after each bot reply) both
policies are asked :func:`console.policy.decide`. The first turn at which a policy escalates is
where that conversation would have reached a person under it.

Both sides are replayed the same way, so the comparison is like with like, and deterministic:
the same store and policy files give the same figures.

What is not replayed: a hand-off the LLM bot asked for in its structured field (its replies
are not regenerated), and what happened after the first escalation (a person took over).

The queue a policy builds is weighed with a simple model: the agents at work in each hour (those
who claimed, wrote or resolved in it, from the store) each take a conversation for
``minutes_per_customer``, in the queue order of :func:`console.policy.queue_key`; a conversation
breaches when its wait exceeds the SLA of its level.
"""

from __future__ import annotations

import bisect
import heapq
import json
import multiprocessing
import os
import pickle
import queue
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, fields, is_dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any

from console.policy import Decision, PolicySettings, decide, queue_key
from console.triage import TriageEngine
from store import Store, StoreError
from store.levels import level_rank
from store.replay import (
    agents_at_work_by_hour,
    conversation_ids,
    count_messages,
    escalated_ids,
    iter_replay_messages,
    unsent_fallbacks,
)

SAMPLE = 25  # changed conversations listed


@dataclass(frozen=True, slots=True)
class Outcome:
    """Where one conversation would have reached a person under one policy (if at all)."""

    escalated: bool = False
    turn: int | None = None  # the customer turn (1-based) at or after which it escalated
    at: float | None = None
    level: str = "calm"
    reasons: tuple[str, ...] = ()
    rule: str = "bot"

    def same_as(self, other: Outcome) -> bool:
        """The same for the customer: reached a person at the same turn, level and reasons
        (which rule of the policy fired does not matter to them)."""
        return (self.escalated, self.turn, self.level, self.reasons) == (
            other.escalated,
            other.turn,
            other.level,
            other.reasons,
        )

    def as_dict(self) -> dict[str, Any]:
        return {
            "escalated": self.escalated,
            "turn": self.turn,
            "level": self.level,
            "reasons": list(self.reasons),
            "rule": self.rule,
        }


@dataclass(slots=True)
class _Conversation:
    cid: int
    state: Any
    turns: int = 0
    fallbacks: int = 0
    outcomes: list[Outcome | None] = field(default_factory=lambda: [None, None])


# A decision depends only on the policy and these: (level, reasons, latest reasons, fallbacks).
_DecisionKey = tuple[str, tuple[str, ...], tuple[str, ...], int]


class _Decider:
    """:func:`console.policy.decide` for both policies, remembered per distinct input.

    The same few inputs come back on most turns of a replay (calm, no reasons, no fallbacks),
    and the policy is a pure function of them.
    """

    def __init__(self, policies: tuple[PolicySettings, PolicySettings]) -> None:
        self.policies = policies
        self._memo: tuple[dict[_DecisionKey, Decision], dict[_DecisionKey, Decision]] = ({}, {})

    def first_escalation(self, conv: _Conversation, verdict: Any, at: float) -> None:
        key = (
            verdict.level,
            tuple(verdict.reasons),
            tuple(verdict.message_reasons),
            conv.fallbacks,
        )
        for side, settings in enumerate(self.policies):
            if conv.outcomes[side] is not None:
                continue
            memo = self._memo[side]
            d = memo.get(key)
            if d is None:
                d = memo[key] = decide(
                    settings,
                    level=verdict.level,
                    reasons=verdict.reasons,
                    message_reasons=verdict.message_reasons,
                    fallbacks=conv.fallbacks,
                )
            if d.escalate:
                conv.outcomes[side] = Outcome(
                    True, max(1, conv.turns), at, d.level, d.reasons, d.rule
                )


@lru_cache(maxsize=1024)
def _fallback(meta: str | None) -> bool:
    # Bot messages share a few meta strings ('{"engine":"embedded"}'): each is parsed once.
    if not meta:
        return False
    try:
        value = json.loads(meta)
    except ValueError:
        return False
    return isinstance(value, dict) and bool(value.get("fallback"))


# Below this many messages a second process costs more to start than it saves.
PARALLEL_FROM = 50_000
MAX_WORKERS = 2
PROGRESS_EVERY = 5000  # messages


def replay(
    store: Store,
    current: PolicySettings,
    proposed: PolicySettings,
    *,
    since: float,
    until: float,
    engine: TriageEngine | None = None,
    progress: Callable[[int, int], None] | None = None,
    workers: int | None = None,
) -> dict[int, tuple[Outcome, Outcome]]:
    """Each conversation opened in ``[since, until)``: its outcome under each policy.

    Conversations are independent (each has its own triage state), so a big window is split
    into ranges of conversation ids replayed by ``workers`` processes side by side (default:
    one per CPU, at most :data:`MAX_WORKERS`, from :data:`PARALLEL_FROM` messages in a store
    file) and put back together in id order: the same figures as one process.

    :param progress: called now and then with ``(messages done, messages in all)``, in the
        calling thread; an exception it raises stops the replay (and its processes)
    :param engine: a triage engine to use (the replay then stays in this process)
    """
    policies = (current, proposed)
    total = count_messages(store, since=since, until=until)
    ids = conversation_ids(store, since=since, until=until)
    # Conversations without a message yet are in the window too: neither policy escalates them.
    results: dict[int, tuple[Outcome, Outcome]] = {cid: (Outcome(), Outcome()) for cid in ids}
    n = _worker_count(workers, total, store, engine)
    if not ids:
        pass
    elif n <= 1 or len(ids) < n:

        def tick(done: int) -> None:
            if progress is not None:
                progress(done, total)

        # The window's conversations lie between its first and last id (ids grow with time).
        span = (ids[0], ids[-1])
        results.update(
            _replay_span(store, engine or TriageEngine(), policies, since, until, span, tick)
        )
    else:
        spans = _spans(ids, n)
        for part in _replay_parallel(store, policies, since, until, spans, progress, total):
            results.update(part)
    if progress is not None:
        progress(total, total)
    return results


def _worker_count(
    workers: int | None, total: int, store: Store, engine: TriageEngine | None
) -> int:
    if engine is not None or store.backend != "sqlite" or not Path(store.path).is_file():
        return 1
    if workers is not None:
        return max(1, workers)
    if total < PARALLEL_FROM:
        return 1
    return max(1, min(MAX_WORKERS, os.cpu_count() or 1))


def _spans(ids: list[int], n: int) -> list[tuple[int, int]]:
    """``n`` contiguous ranges of ``ids`` (sorted, at least ``n``) as (first, last) pairs."""
    bounds = [round(len(ids) * k / n) for k in range(n + 1)]
    return [(ids[bounds[k]], ids[bounds[k + 1] - 1]) for k in range(n)]


def _replay_span(
    store: Store,
    engine: TriageEngine,
    policies: tuple[PolicySettings, PolicySettings],
    since: float,
    until: float,
    span: tuple[int, int] | None,
    tick: Callable[[int], None],
) -> dict[int, tuple[Outcome, Outcome]]:
    """Replay the conversations of ``span`` (first and last id; None: all) that have messages."""
    first, last = span if span is not None else (None, None)
    decider = _Decider(policies)
    results: dict[int, tuple[Outcome, Outcome]] = {}
    unsent = unsent_fallbacks(store, since=since, until=until, first=first, last=last)
    conv: _Conversation | None = None

    def bot_turn(c: _Conversation, text: str, fell_back: bool, at: float) -> None:
        verdict = engine.observe(c.state, "bot", text, fallback=fell_back)
        if fell_back:
            c.fallbacks += 1
            decider.first_escalation(c, verdict, at)

    def catch_up(c: _Conversation, before: float) -> None:
        # Fallback answers the hub held back (it escalated instead of posting them) happened
        # between the customer's message and the next stored one.
        pending = unsent.get(c.cid)
        while pending and pending[0] < before:
            bot_turn(c, "", True, pending.pop(0))

    def close(c: _Conversation) -> None:
        catch_up(c, float("inf"))
        results[c.cid] = (c.outcomes[0] or Outcome(), c.outcomes[1] or Outcome())

    done = 0
    for m in iter_replay_messages(store, since=since, until=until, first=first, last=last):
        done += 1
        if done % PROGRESS_EVERY == 0:
            tick(done)
        if conv is None or conv.cid != m["conversation_id"]:
            if conv is not None:
                close(conv)
            conv = _Conversation(m["conversation_id"], engine.new_state())
        if conv.outcomes[0] is not None and conv.outcomes[1] is not None:
            continue  # both policies already handed it to a person: nothing left to decide
        catch_up(conv, m["created_at"])
        if m["role"] == "customer":
            conv.turns += 1
            verdict = engine.observe(conv.state, "customer", m["text"], at=m["created_at"])
            decider.first_escalation(conv, verdict, m["created_at"])
        else:
            bot_turn(conv, m["text"], _fallback(m["meta"]), m["created_at"])
    if conv is not None:
        close(conv)
    tick(done)
    return results


def _replay_worker(
    path: str,
    portable: tuple[_Portable, _Portable],
    since: float,
    until: float,
    span: tuple[int, int],
    counters: Any,
    index: int,
    out: Any,
) -> None:
    """One process's part of a parallel replay: its results (or its error) go to ``out``."""
    try:

        def tick(done: int) -> None:
            counters[index] = done

        policies = (portable[0].build(), portable[1].build())
        engine = TriageEngine()
        with Store(path, readonly=True) as store:
            part = _replay_span(store, engine, policies, since, until, span, tick)
        out.put((index, part))
    except BaseException as exc:  # reported to the parent, which raises it there
        out.put((index, _picklable(exc)))


@dataclass(frozen=True, slots=True)
class _Portable:
    """A settings dataclass as plain values, for another process (read-only mappings do not
    pickle); :meth:`build` makes it again through its own checks."""

    cls: type
    values: dict[str, Any]

    @classmethod
    def of(cls, settings: Any) -> _Portable:
        return cls(
            type(settings), {f.name: _plain(getattr(settings, f.name)) for f in fields(settings)}
        )

    def build(self) -> Any:
        values = {k: v.build() if isinstance(v, _Portable) else v for k, v in self.values.items()}
        return self.cls(**values)


def _plain(value: Any) -> Any:
    if is_dataclass(value) and not isinstance(value, type):
        return _Portable.of(value)
    if isinstance(value, Mapping):
        return dict(value)
    return value


def _picklable(exc: BaseException) -> BaseException:
    try:
        pickle.dumps(exc)
    except Exception:
        return StoreError(f"the what-if replay failed: {exc}")
    return exc


def _replay_parallel(
    store: Store,
    policies: tuple[PolicySettings, PolicySettings],
    since: float,
    until: float,
    spans: list[tuple[int, int]],
    progress: Callable[[int, int], None] | None,
    total: int,
) -> list[dict[int, tuple[Outcome, Outcome]]]:
    """Replay ``spans`` in processes of their own; their results in span order."""
    # "spawn": the console calls this from a worker thread of a running app, where a fork
    # would copy locks held by other threads.
    ctx = multiprocessing.get_context("spawn")
    portable = (_Portable.of(policies[0]), _Portable.of(policies[1]))
    counters = ctx.Array("q", len(spans), lock=False)
    out = ctx.Queue()
    procs = [
        ctx.Process(
            target=_replay_worker,
            args=(str(store.path), portable, since, until, span, counters, i, out),
            daemon=True,
        )
        for i, span in enumerate(spans)
    ]
    parts: dict[int, dict[int, tuple[Outcome, Outcome]]] = {}
    try:
        for p in procs:
            p.start()
        while len(parts) < len(procs):
            try:
                index, part = out.get(timeout=0.2)
            except queue.Empty:
                for i, p in enumerate(procs):
                    # A worker that returned put its result first; one that ended otherwise
                    # (killed, out of memory) never will.
                    if i not in parts and p.exitcode not in (None, 0):
                        raise StoreError(
                            "the what-if replay stopped: a worker process ended with code "
                            f"{p.exitcode}"
                        ) from None
            else:
                if isinstance(part, BaseException):
                    raise part
                parts[index] = part
            if progress is not None:
                progress(min(sum(counters), total), total)
    finally:
        for p in procs:
            if p.is_alive():
                p.terminate()
        for p in procs:
            if p.pid is not None:
                p.join()
        out.close()
    return [parts[i] for i in range(len(procs))]


@dataclass(frozen=True, slots=True)
class QueueLoad:
    """What a policy's escalations would have asked of the agents at work."""

    by_hour: dict[int, dict[str, int]]
    breaches: int
    breach_by_level: dict[str, int]
    waits_s: list[float]


def simulate_queue(
    escalations: list[tuple[float, int, str]],
    agents_by_hour: dict[int, int],
    settings: PolicySettings,
    *,
    until: float,
) -> QueueLoad:
    """Run the queue model over ``escalations`` (``(at, conversation id, level)``).

    Agents at work in an hour serve one conversation each for ``minutes_per_customer``; the
    queue is served in :func:`console.policy.queue_key` order; a conversation still waiting at
    ``until`` has waited until then.
    """
    service_s = settings.minutes_per_customer * 60.0
    arrivals = sorted(escalations)
    by_hour: dict[int, dict[str, int]] = {}
    for at, _, _ in arrivals:
        hour = int(at // 3600) * 3600
        slot = by_hour.setdefault(hour, {"escalations": 0, "agents": agents_by_hour.get(hour, 0)})
        slot["escalations"] += 1
    waiting: list[tuple[tuple[int, float, int], float, str]] = []
    busy: list[float] = []  # when each conversation in hand is done
    waits: list[float] = []
    breaches: dict[str, int] = {}
    staffed = sorted(h for h, n in agents_by_hour.items() if n > 0)
    i = 0
    clock = arrivals[0][0] if arrivals else until
    # Event-driven: the clock jumps to the next arrival, the next agent coming free, or the
    # next staffed hour, so a week with nobody at work costs nothing to simulate.
    while clock < until:
        while i < len(arrivals) and arrivals[i][0] <= clock:
            at, cid, level = arrivals[i]
            key = queue_key({"id": cid, "level": level, "waiting_since": at})
            heapq.heappush(waiting, (key, at, level))
            i += 1
        while busy and busy[0] <= clock:
            heapq.heappop(busy)
        capacity = agents_by_hour.get(int(clock // 3600) * 3600, 0)
        while waiting and len(busy) < capacity:
            _, at, level = heapq.heappop(waiting)
            wait = clock - at
            waits.append(wait)
            if wait > settings.sla_for(level):
                breaches[level] = breaches.get(level, 0) + 1
            heapq.heappush(busy, clock + service_s)
        upcoming = []
        if i < len(arrivals):
            upcoming.append(arrivals[i][0])
        if busy:
            upcoming.append(busy[0])
        if waiting:
            later = bisect.bisect_right(staffed, clock)
            if later < len(staffed):
                upcoming.append(float(staffed[later]))
        if not upcoming:
            break
        clock = max(clock, min(upcoming))
    for _, at, level in waiting:
        wait = until - at
        waits.append(wait)
        if wait > settings.sla_for(level):
            breaches[level] = breaches.get(level, 0) + 1
    ordered = dict(sorted(breaches.items(), key=lambda kv: -level_rank(kv[0])))
    return QueueLoad(by_hour, sum(breaches.values()), ordered, waits)


def compare(
    store: Store,
    current: PolicySettings,
    proposed: PolicySettings,
    *,
    since: float,
    until: float,
    progress: Callable[[int, int], None] | None = None,
    sample: int = SAMPLE,
    workers: int | None = None,
) -> dict[str, Any]:
    """The what-if report: both policies' escalations, turns, queue load and SLA breaches.

    :return: ``{"window", "current": {...}, "proposed": {...}, "difference": {...},
        "load_by_hour": [...], "changed": [...]}``; ``changed`` lists up to ``sample``
        conversations whose outcome differs, with the first turn at which they differ
    """
    outcomes = replay(
        store, current, proposed, since=since, until=until, progress=progress, workers=workers
    )
    agents = agents_at_work_by_hour(store, since=since, until=until)
    sides: dict[str, Any] = {}
    loads: dict[str, QueueLoad] = {}
    for side, settings in (("current", current), ("proposed", proposed)):
        index = 0 if side == "current" else 1
        chosen = [(cid, pair[index]) for cid, pair in outcomes.items() if pair[index].escalated]
        turns = sorted(o.turn or 0 for _, o in chosen)
        reasons: dict[str, int] = {}
        for _, o in chosen:
            for r in o.reasons:
                reasons[r] = reasons.get(r, 0) + 1
        load = simulate_queue(
            [(o.at or since, cid, o.level) for cid, o in chosen], agents, settings, until=until
        )
        loads[side] = load
        sides[side] = {
            "conversations": len(outcomes),
            "escalated": len(chosen),
            "escalation_rate": len(chosen) / len(outcomes) if outcomes else None,
            "mean_turn": sum(turns) / len(turns) if turns else None,
            "by_reason": dict(sorted(reasons.items(), key=lambda kv: (-kv[1], kv[0]))),
            "sla_breaches": load.breaches,
            "sla_breaches_by_level": load.breach_by_level,
        }
    sides["current"]["actually_escalated"] = len(escalated_ids(store, since=since, until=until))
    changed: list[dict[str, Any]] = []
    more = fewer = earlier = later = raised = lowered = 0
    for cid in sorted(outcomes):
        cur, new = outcomes[cid]
        if cur.same_as(new):
            continue
        if cur.escalated and new.escalated:
            # Reaching a person at another level changes the queue order and the SLA it is held
            # to, whether or not the turn moves.
            step = level_rank(new.level) - level_rank(cur.level)
            raised += step > 0
            lowered += step < 0
        if new.escalated and not cur.escalated:
            more += 1
        elif cur.escalated and not new.escalated:
            fewer += 1
        elif (new.turn or 0) < (cur.turn or 0):
            earlier += 1
        elif (new.turn or 0) > (cur.turn or 0):
            later += 1
        if len(changed) < sample:
            turns = [t for t in (cur.turn, new.turn) if t is not None]
            changed.append(
                {
                    "id": str(cid),
                    "first_differing_turn": min(turns) if turns else None,
                    "current": cur.as_dict(),
                    "proposed": new.as_dict(),
                }
            )
    hours = sorted(set(loads["current"].by_hour) | set(loads["proposed"].by_hour))
    load_by_hour = [
        {
            "hour": hour,
            "agents": agents.get(hour, 0),
            "current": loads["current"].by_hour.get(hour, {}).get("escalations", 0),
            "proposed": loads["proposed"].by_hour.get(hour, {}).get("escalations", 0),
        }
        for hour in hours
    ]
    return {
        "window": {"since": since, "until": until},
        "current": sides["current"],
        "proposed": sides["proposed"],
        "difference": {
            "escalated": sides["proposed"]["escalated"] - sides["current"]["escalated"],
            "newly_escalated": more,
            "no_longer_escalated": fewer,
            "earlier": earlier,
            "later": later,
            "level_raised": raised,
            "level_lowered": lowered,
            "sla_breaches": loads["proposed"].breaches - loads["current"].breaches,
        },
        "load_by_hour": load_by_hour,
        "changed": changed,
    }
