"""The support report: what the bot resolved, who waited, who got a person and how fast.

Every figure is computed by SQL over the public tables for one window of time (``since`` to
``until``, epoch seconds); the definitions below are the contract that ``tandem report``,
the supervisor screen and the README share.

conversations
    conversations opened in the window.
bot involvement
    the share of them in which the bot wrote at least once.
bot resolution
    the share of bot-involved conversations that ended resolved without a person: never
    escalated, claimed or assigned, not abandoned, and no new conversation from the same
    customer within 24 hours of the resolution (the customer did not have to come back).
automation rate
    involvement x resolution: the share of all conversations the bot handled alone.
escalations by reason
    escalations in the window, counted once per reason they carried.
time to a person
    from entering the queue (an escalation) to a claim or an assignment, p50 and p90.
first response
    from entering the queue (or from the claim, when an agent took the conversation straight
    from the bot) to the first agent message after the claim; met when within the SLA of the
    conversation's level at the escalation.
next response
    within one stay with a person, from the first customer message after an agent's message to
    the agent's next message; met when within the SLA of the customer message's level.
abandonment
    conversations that left the queue without a person (``abandoned``), over escalations.
repeat contacts
    conversations followed by another conversation from the same customer within 24 hours,
    and conversations the customer reopened after a resolution.
drafts
    as :func:`store.drafts.draft_metrics` over drafts created in the window.
LLM fallbacks
    bot turns whose LLM answer was not used (the embedded bot answered or the conversation was
    handed off), summed over the window's conversations.

Percentiles are nearest-rank (:func:`store.stats.percentile`).
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping, Sequence
from dataclasses import asdict
from typing import Any

from store.db import Store, now
from store.drafts import draft_metrics
from store.levels import LEVELS
from store.stats import percentile

REPEAT_WINDOW_S = 24 * 3600.0


def _ints(store: Store, sql: str, params: Sequence[Any]) -> tuple[int, ...]:
    # Aggregates over an empty window come back as NULL; they count as zero here.
    row = store.one(sql, params)
    return tuple(int(v or 0) for v in row) if row is not None else ()


def _share(part: int, whole: int) -> float | None:
    return part / whole if whole else None


def _sla_summary(samples: list[tuple[float, bool]]) -> dict[str, Any]:
    # Sorted once: percentile's own sort of an already sorted list is a linear pass.
    times = sorted(t for t, _ in samples)
    met = sum(1 for _, ok in samples if ok)
    return {
        "n": len(samples),
        "p50_s": percentile(times, 0.5),
        "p90_s": percentile(times, 0.9),
        "met": met,
        "met_share": _share(met, len(samples)),
    }


def support_report(
    store: Store,
    *,
    since: float,
    until: float | None = None,
    sla_s: Mapping[str, float],
) -> dict[str, Any]:
    """The report over ``[since, until)``; see the module docstring for every definition.

    :param since: start of the window (epoch seconds)
    :param until: end of the window (default: now)
    :param sla_s: seconds allowed for a response per triage level (``calm`` .. ``urgent``)
    :return: a JSON-ready dict: ``window``, ``conversations``, ``bot``, ``escalations``,
        ``time_to_person``, ``first_response``, ``next_response`` (each with ``by_level`` and
        ``by_agent``), ``abandonment``, ``repeat_contacts``, ``drafts``, ``llm_fallbacks``
    """
    until = now() if until is None else until
    window = (since, until)

    total, involved, llm_fallbacks = _ints(
        store,
        "SELECT count(*),"
        " sum(EXISTS (SELECT 1 FROM messages m WHERE m.conversation_id = c.id AND m.role = 'bot')),"
        " coalesce(sum(c.llm_fallbacks), 0)"
        " FROM conversations c WHERE c.created_at >= ? AND c.created_at < ?",
        window,
    )

    # Resolved by the bot alone: no move toward a person ever, closed, and the customer did
    # not open another conversation within a day of the resolution.
    (bot_resolved,) = _ints(
        store,
        "SELECT count(*) FROM conversations c"
        " WHERE c.created_at >= ? AND c.created_at < ? AND c.state = 'resolved'"
        " AND EXISTS (SELECT 1 FROM messages m WHERE m.conversation_id = c.id AND m.role = 'bot')"
        " AND c.id NOT IN (SELECT e.conversation_id FROM events e"
        "   WHERE e.kind != 'message' AND e.kind IN ('escalated', 'claimed', 'assigned', 'abandoned')"
        "   AND e.at >= ?)"
        " AND NOT EXISTS (SELECT 1 FROM conversations n WHERE n.customer_id = c.customer_id"
        "   AND n.id != c.id AND n.created_at >= c.resolved_at AND n.created_at < c.resolved_at + ?)",
        (*window, window[0], REPEAT_WINDOW_S),
    )

    by_reason: dict[str, int] = {}
    escalations = 0
    # Escalations carry few distinct payloads (reasons x level): each is parsed once.
    for data, count in store.query(
        "SELECT data, count(*) FROM events WHERE kind != 'message' AND kind = 'escalated'"
        " AND at >= ? AND at < ? GROUP BY data",
        window,
    ):
        escalations += count
        for reason in _json(data).get("reasons") or []:
            if isinstance(reason, str):
                by_reason[reason] = by_reason.get(reason, 0) + count

    (abandoned,) = _ints(
        store,
        "SELECT count(*) FROM events WHERE kind != 'message' AND kind = 'abandoned'"
        " AND at >= ? AND at < ?",
        window,
    )

    # Every claim or assignment in the window, with the escalation that put it in the queue
    # (the latest one before it) and the first agent message after it.
    claims = store.query(
        "SELECT e.conversation_id AS cid, e.at AS claim_at, e.from_state,"
        " json_extract(e.data, '$.owner') AS agent, c.level AS conv_level,"
        " (SELECT x.at FROM events x WHERE x.conversation_id = e.conversation_id"
        "   AND x.kind = 'escalated' AND x.id < e.id ORDER BY x.id DESC LIMIT 1) AS queued_at,"
        " (SELECT json_extract(x.data, '$.level') FROM events x"
        "   WHERE x.conversation_id = e.conversation_id AND x.kind = 'escalated' AND x.id < e.id"
        "   ORDER BY x.id DESC LIMIT 1) AS queued_level,"
        " (SELECT min(m.created_at) FROM messages m WHERE m.conversation_id = e.conversation_id"
        "   AND m.role = 'agent' AND m.created_at >= e.at) AS replied_at"
        " FROM events e JOIN conversations c ON c.id = e.conversation_id"
        " WHERE e.kind != 'message' AND e.kind IN ('claimed', 'assigned') AND e.at >= ? AND e.at < ?"
        " ORDER BY e.id",
        window,
    )
    to_person: list[float] = []
    first: dict[str, list[tuple[float, bool]]] = {}
    first_by_agent: dict[str, list[tuple[float, bool]]] = {}
    for r in claims:
        from_queue = r["from_state"] == "waiting" and r["queued_at"] is not None
        if from_queue:
            to_person.append(r["claim_at"] - r["queued_at"])
        if r["replied_at"] is None:
            continue
        start = r["queued_at"] if from_queue else r["claim_at"]
        level = (r["queued_level"] if from_queue else None) or r["conv_level"] or "calm"
        took = r["replied_at"] - start
        sample = (took, took <= sla_s.get(level, math.inf))
        first.setdefault(level, []).append(sample)
        first_by_agent.setdefault(r["agent"] or "?", []).append(sample)

    nxt, nxt_by_agent = _next_responses(store, window, sla_s)

    (repeat,) = _ints(
        store,
        "SELECT count(*) FROM conversations c WHERE c.created_at >= ? AND c.created_at < ?"
        " AND EXISTS (SELECT 1 FROM conversations n WHERE n.customer_id = c.customer_id"
        "   AND n.id != c.id AND n.created_at > c.created_at AND n.created_at < c.created_at + ?)",
        (*window, REPEAT_WINDOW_S),
    )
    (reopened,) = _ints(
        store,
        "SELECT count(*) FROM events WHERE kind != 'message' AND kind = 'reopened'"
        " AND at >= ? AND at < ?",
        window,
    )

    drafts = draft_metrics(store, since=since)
    return {
        "window": {"since": since, "until": until},
        "conversations": total,
        "bot": {
            "involved": involved,
            "involvement": _share(involved, total),
            "resolved_alone": bot_resolved,
            "resolution": _share(bot_resolved, involved),
            "automation_rate": _share(bot_resolved, total),
        },
        "escalations": {
            "total": escalations,
            "by_reason": dict(sorted(by_reason.items(), key=lambda kv: (-kv[1], kv[0]))),
        },
        "time_to_person": {
            "n": len(to_person),
            "p50_s": percentile(to_person, 0.5),
            "p90_s": percentile(to_person, 0.9),
        },
        "first_response": _by_level_and_agent(first, first_by_agent),
        "next_response": _by_level_and_agent(nxt, nxt_by_agent),
        "sla_s": {level: sla_s[level] for level in LEVELS if level in sla_s},
        "abandonment": {
            "abandoned": abandoned,
            "escalations": escalations,
            "rate": _share(abandoned, escalations),
        },
        "repeat_contacts": {
            "within_24h": repeat,
            "rate": _share(repeat, total),
            "reopened": reopened,
        },
        "drafts": {
            "total": drafts.total,
            "by_outcome": drafts.by_outcome,
            "acceptance_rate": drafts.acceptance_rate,
            "unchanged_rate": drafts.unchanged_rate,
            "mean_edit_distance": drafts.mean_edit_distance,
            "first_text_by_engine": {
                engine: asdict(t) for engine, t in drafts.first_text_by_engine.items()
            },
        },
        "llm_fallbacks": llm_fallbacks,
    }


def _by_level_and_agent(
    by_level: dict[str, list[tuple[float, bool]]], by_agent: dict[str, list[tuple[float, bool]]]
) -> dict[str, Any]:
    every = [s for samples in by_level.values() for s in samples]
    return {
        **_sla_summary(every),
        "by_level": {lv: _sla_summary(by_level[lv]) for lv in LEVELS if lv in by_level},
        "by_agent": {a: _sla_summary(s) for a, s in sorted(by_agent.items())},
    }


def _next_responses(
    store: Store, window: tuple[float, float], sla_s: Mapping[str, float]
) -> tuple[dict[str, list[tuple[float, bool]]], dict[str, list[tuple[float, bool]]]]:
    # The conversations an agent wrote in during the window (the partial index on agents'
    # messages finds them), then their customer and agent messages in index order, with the
    # moves that start a new stay with a person merged in by time.
    touched = [
        int(r[0])
        for r in store.query(
            "SELECT DISTINCT conversation_id FROM messages"
            " WHERE role = 'agent' AND created_at >= ? AND created_at < ?",
            window,
        )
    ]
    # Moves that start a stay with a person, by time through the (kind, at) index; a day
    # before the window covers a stay that began before it.
    stays: dict[int, list[float]] = {}
    for cid, at in store.query(
        "SELECT conversation_id, at FROM events WHERE kind != 'message' AND kind IN"
        " ('claimed', 'assigned', 'transferred', 'handed_back') AND at >= ? AND at < ?"
        " ORDER BY id",
        (window[0] - REPEAT_WINDOW_S, window[1]),
    ):
        stays.setdefault(cid, []).append(at)
    by_level: dict[str, list[tuple[float, bool]]] = {}
    by_agent: dict[str, list[tuple[float, bool]]] = {}
    for start in range(0, len(touched), 500):
        chunk = touched[start : start + 500]
        marks = ",".join("?" * len(chunk))
        # Until an agent has written nothing counts (no reply can be late), so each
        # conversation is read from its first agent message on.
        rows = store.query(
            "SELECT m.conversation_id, m.created_at, m.role, m.author, m.level FROM messages m"
            " JOIN (SELECT conversation_id AS cid, min(id) AS first_id FROM messages"
            f"   WHERE role = 'agent' AND conversation_id IN ({marks}) GROUP BY conversation_id)"
            "   AS f ON m.conversation_id = f.cid AND m.id >= f.first_id"
            " WHERE m.role IN ('customer', 'agent')"
            " ORDER BY m.conversation_id, m.id",
            chunk,
        )
        cid = None
        moves: list[float] = []
        agent_spoke = False  # an agent has written in this stay with a person
        waiting_since: float | None = None
        waiting_level = "calm"
        for row_cid, at, role, author, level in rows:
            if row_cid != cid:
                cid, agent_spoke, waiting_since = row_cid, False, None
                moves = list(reversed(stays.get(row_cid, [])))
            while moves and moves[-1] <= at:
                moves.pop()
                agent_spoke, waiting_since = False, None
            if role == "customer":
                if agent_spoke and waiting_since is None:
                    waiting_since, waiting_level = at, level or "calm"
                continue
            if waiting_since is not None and window[0] <= at < window[1]:
                took = at - waiting_since
                sample = (took, took <= sla_s.get(waiting_level, math.inf))
                by_level.setdefault(waiting_level, []).append(sample)
                by_agent.setdefault(author or "?", []).append(sample)
            agent_spoke, waiting_since = True, None
    return by_level, by_agent


def _json(data: str | None) -> dict[str, Any]:
    try:
        value = json.loads(data) if data else {}
    except ValueError:
        return {}
    return value if isinstance(value, dict) else {}
