"""Read queries for the agent console: wall tiles, a conversation's context, supervisor metrics.

Each function is one or two queries, sized so the console's reader thread can call it on
every feed batch: tiles for N conversations come back with their last few turns in one
query that walks the ``messages(conversation_id, id)`` index backwards per conversation.
"""

from __future__ import annotations

import json
import math
import time
from collections.abc import Mapping
from typing import Any

from store.db import Store, now
from store.levels import LEVELS, level_rank
from store.oversight import viewers
from store.protection import abuse_shown
from store.queries import READABLE_BY, list_conversations

LIVE_STATES = ("bot", "waiting", "human")
TILE_TURNS = 3
# A tile shows one line per turn; more than this many characters can never be on screen.
TILE_TEXT_CHARS = 300


def _turns_by_conversation(
    store: Store, ids: list[int], turns: int
) -> dict[int, list[dict[str, Any]]]:
    if not ids:
        return {}
    out: dict[int, list[dict[str, Any]]] = {i: [] for i in ids}
    # Chunked: SQLite limits host parameters, and the wall may ask for thousands at start.
    for start in range(0, len(ids), 500):
        chunk = ids[start : start + 500]
        marks = ",".join("?" * len(chunk))
        rows = store.query(
            "SELECT c.id AS cid, m.id, m.role, m.author, substr(m.text, 1, ?) AS text, m.created_at,"
            " m.level, m.reasons, json_extract(m.meta, '$.abusive') AS abusive"
            f" FROM conversations c JOIN messages m ON m.id IN ("
            "   SELECT id FROM messages WHERE conversation_id = c.id AND role != 'note'"
            "   ORDER BY id DESC LIMIT ?)"
            f" WHERE c.id IN ({marks}) ORDER BY m.id",
            [TILE_TEXT_CHARS, turns, *chunk],
        )
        for r in rows:
            out[r["cid"]].append(
                {
                    "id": r["id"],
                    "role": r["role"],
                    "author": r["author"],
                    "text": r["text"],
                    "at": r["created_at"],
                    # Triage's verdict on the message: the tile masks abusive customer text.
                    "level": r["level"],
                    "reasons": json.loads(r["reasons"]) if r["reasons"] else [],
                    "meta": {} if r["abusive"] is None else {"abusive": bool(r["abusive"])},
                }
            )
    return out


def wall_rows(
    store: Store, *, ids: list[int] | None = None, turns: int = TILE_TURNS, limit: int = 5000
) -> list[dict[str, Any]]:
    """Conversations for the wall, each with ``turns``: its last few non-note messages, and
    ``viewers``: whose consoles have it open (:func:`store.oversight.viewers`).

    :param ids: only these conversations, in any state (to refresh after feed events);
        ``None`` for every live one (``bot``, ``waiting``, ``human``)
    :param turns: how many of the newest messages each tile carries, oldest first
    """
    if ids is None:
        rows = list_conversations(store, states=LIVE_STATES, limit=limit)
    else:
        rows = []
        for start in range(0, len(ids), 500):
            rows.extend(
                list_conversations(store, states=None, ids=ids[start : start + 500], limit=limit)
            )
    by_id = _turns_by_conversation(store, [r["id"] for r in rows], turns)
    watching = viewers(store, ids=ids)
    for r in rows:
        r["turns"] = by_id.get(r["id"], [])
        r["viewers"] = watching.get(r["id"], [])
    return rows


def waiting_queue(store: Store) -> list[dict[str, Any]]:
    """Every conversation waiting for a person: ``id``, ``state``, ``level``, ``waiting_since``.

    Unordered on purpose: the queue order is a policy (``console.policy.queue_order``), and
    the store only hands over the rows it needs. All of them, however many: with a cap, the
    longest wait could be the one left out.
    """
    return [
        dict(r)
        for r in store.query(
            "SELECT id, state, level, waiting_since FROM conversations WHERE state = 'waiting'"
        )
    ]


def waiting_ahead(store: Store, *, conversation_id: int, level: str, waiting_since: float) -> int:
    """How many waiting conversations come before one at ``level`` joining at ``waiting_since``.

    The count the hub tells a customer, on every escalation, without reading the queue into
    Python. It counts in ``console.policy.queue_key``'s order (most in need first, then the
    longest wait, then the id; a missing ``waiting_since`` counts as the longest wait), and
    ``tests/test_policy.py`` checks on random queues that it agrees with
    ``console.policy.queue_ahead``, so the two cannot drift apart.
    """
    # Two counts SQLite answers from the (state, level) index: every waiting conversation at
    # a higher level (the index alone, no row read), then the ones at this level that waited
    # longer. A CASE over every waiting row read each row, ~2x-3x slower with ~750 waiting.
    # `level` is one of LEVELS (the schema's CHECK), so no row falls between the two.
    higher = LEVELS[level_rank(level) + 1 :]
    row = store.one(
        "SELECT (SELECT count(*) FROM conversations WHERE state = 'waiting' AND id != ?"
        f" AND level IN ({', '.join('?' * len(higher)) or 'NULL'}))"
        " + (SELECT count(*) FROM conversations WHERE state = 'waiting' AND level = ?"
        " AND id != ? AND (coalesce(waiting_since, 0.0) < ?"
        " OR (coalesce(waiting_since, 0.0) = ? AND id < ?)))",
        (
            conversation_id,
            *higher,
            LEVELS[level_rank(level)],
            conversation_id,
            waiting_since,
            waiting_since,
            conversation_id,
        ),
    )
    return int(row[0]) if row is not None else 0


def conversation_context(
    store: Store, conversation_id: int, *, history: int = 10
) -> dict[str, Any]:
    """What the side panel shows next to a transcript.

    :return: ``history`` (the customer's other conversations, newest first), ``triage``
        (the level and reasons over time, oldest first) and ``kb`` (articles the bot used,
        ``id`` and ``title``)
    """
    row = store.one("SELECT customer_id FROM conversations WHERE id = ?", (conversation_id,))
    if row is None:
        return {"history": [], "triage": [], "kb": []}
    past = [
        dict(r)
        for r in store.query(
            "SELECT id, state, level, subject, created_at, message_count FROM conversations"
            " WHERE customer_id = ? AND id != ? ORDER BY id DESC LIMIT ?",
            (row[0], conversation_id, history),
        )
    ]
    triage: list[dict[str, Any]] = []
    for r in store.query(
        "SELECT at, kind, actor, data FROM events WHERE conversation_id = ?"
        " AND kind IN ('triaged', 'escalated') ORDER BY id",
        (conversation_id,),
    ):
        data = json.loads(r["data"]) if r["data"] else {}
        triage.append(
            {
                "at": r["at"],
                "kind": r["kind"],
                "actor": r["actor"],
                "level": data.get("level"),
                "reasons": list(data.get("reasons") or []),
                "model_reasons": list(data.get("model_reasons") or []),
                "model_why": str(data.get("model_why") or ""),
                "lang": str(data.get("lang") or ""),
            }
        )
    kb_ids: list[str] = []
    for (meta,) in store.query(
        "SELECT meta FROM messages WHERE conversation_id = ? AND role = 'bot' AND meta IS NOT NULL",
        (conversation_id,),
    ):
        try:
            for kid in json.loads(meta).get("kb") or []:
                if isinstance(kid, str) and kid not in kb_ids:
                    kb_ids.append(kid)
        except (ValueError, AttributeError):
            continue
    kb: list[dict[str, Any]] = []
    if kb_ids:
        titles = {
            r["id"]: r["title"]
            for r in store.query(
                f"SELECT id, title FROM kb_articles WHERE id IN ({','.join('?' * len(kb_ids))})",
                kb_ids,
            )
        }
        kb = [{"id": k, "title": titles.get(k, "")} for k in kb_ids]
    return {"history": past, "triage": triage, "kb": kb}


def start_of_day(at: float) -> float:
    """Local midnight before ``at`` (the supervisor's "today")."""
    t = time.localtime(at)
    return time.mktime((t.tm_year, t.tm_mon, t.tm_mday, 0, 0, 0, 0, 0, -1))


def supervisor_metrics(
    store: Store,
    *,
    sla_s: Mapping[str, float] | None = None,
    sla_seconds: float = 120.0,
    at: float | None = None,
) -> dict[str, Any]:
    """Queue and agent figures for the supervisor view.

    :param sla_s: how long a customer may wait in the queue at each level before the wait
        breaches (the policy's targets); a level it leaves out gets ``sla_seconds``
    :param sla_seconds: the target for every level ``sla_s`` does not name
    :return: ``states`` (count per state), ``queue`` (waiting count), ``oldest_wait`` (seconds,
        0 when empty), ``breaching`` (waits over their level's target), ``breaching_by_level``
        (the same per level, every level named), ``waiting`` (``id``, ``level``, ``wait`` in
        seconds per waiting conversation, longest first), ``waits`` (the seconds alone),
        ``sla_s`` (the target per level used), ``agents`` (name, role, last_seen_at,
        ``presence``: what their console says, ``None`` if it never said, ``holding``: ids,
        ``abuse_today``: abusive messages shown to them since local midnight, see
        :func:`store.protection.abuse_shown`)
    """
    at = at or now()
    targets = {level: float((sla_s or {}).get(level, sla_seconds)) for level in LEVELS}
    states = {"bot": 0, "waiting": 0, "human": 0, "resolved": 0}
    for state, n in store.query("SELECT state, count(*) FROM conversations GROUP BY state"):
        states[state] = n
    waiting = [
        {"id": r[0], "level": r[1] if r[1] in targets else "calm", "wait": at - r[2]}
        for r in store.query(
            "SELECT id, level, waiting_since FROM conversations"
            " WHERE state = 'waiting' AND waiting_since IS NOT NULL ORDER BY waiting_since, id"
        )
    ]
    by_level = dict.fromkeys(LEVELS, 0)
    for w in waiting:
        if w["wait"] > targets[w["level"]]:
            by_level[w["level"]] += 1
    holding: dict[str, list[int]] = {}
    for cid, owner in store.query(
        "SELECT id, owner FROM conversations WHERE state = 'human' ORDER BY id"
    ):
        holding.setdefault(owner, []).append(cid)
    abuse = abuse_shown(store, since=start_of_day(at))
    agents = [
        {
            "name": r["name"],
            "role": r["role"],
            "last_seen_at": r["last_seen_at"],
            "presence": r["presence"],
            "holding": holding.get(r["name"], []),
            "abuse_today": abuse.get(r["name"], 0),
        }
        for r in store.query("SELECT name, role, last_seen_at, presence FROM agents ORDER BY name")
    ]
    return {
        "states": states,
        "queue": states["waiting"],
        "oldest_wait": waiting[0]["wait"] if waiting else 0.0,
        "breaching": sum(by_level.values()),
        "breaching_by_level": by_level,
        "waiting": waiting,
        "waits": [w["wait"] for w in waiting],
        "sla_s": targets,
        "agents": agents,
    }


# The moves into and out of the queue (DESIGN section 4): read by kind through events(kind, at).
_QUEUE_MOVES = ("escalated", "reopened", "claimed", "assigned", "released", "resolved", "abandoned")


def supervisor_series(
    store: Store,
    *,
    since: float,
    sla_s: Mapping[str, float],
    bucket_s: float = 600.0,
    at: float | None = None,
) -> dict[str, Any]:
    """What the supervisor's charts draw, per bucket of ``bucket_s`` seconds from ``since``.

    :param sla_s: the queue's target per level; a level left out gets calm's, else 600 s
    :return: ``bucket_s``, ``since``, ``escalations`` (conversations escalated to the queue in
        each bucket), ``queue`` (the longest the queue was in each bucket), ``breaches`` (waits
        that passed their level's target in each bucket, whether they ended later or not); the
        last bucket ends at ``at``
    """
    at = at or now()
    if bucket_s <= 0 or since >= at:
        raise ValueError("supervisor_series needs since < at and a positive bucket")
    n = max(1, math.ceil((at - since) / bucket_s))
    targets = {lv: float(sla_s.get(lv, sla_s.get("calm", 600.0))) for lv in LEVELS}
    # A wait that breached in the window began at most the longest target before it.
    read_from = since - max(targets.values())
    marks = ",".join("?" * len(_QUEUE_MOVES))
    rows = store.query(
        "SELECT e.at, e.conversation_id, e.kind, e.from_state, e.to_state,"
        " json_extract(e.data, '$.level'), c.level FROM events e"
        " JOIN conversations c ON c.id = e.conversation_id"
        # `kind != 'message'` lets the partial (kind, at) index serve the window.
        f" WHERE e.kind != 'message' AND e.kind IN ({marks}) AND e.at >= ? AND e.at <= ?"
        " ORDER BY e.at, e.id",
        (*_QUEUE_MOVES, read_from, at),
    )
    (queue_now,) = store.one("SELECT count(*) FROM conversations WHERE state = 'waiting'") or (0,)

    def bucket(t: float) -> int:
        return min(n - 1, int((t - since) // bucket_s))

    escalations = [0] * n
    breaches = [0] * n
    # The queue's length at `since`, counted back from now through the moves after it.
    queue = int(queue_now)
    for t, _cid, _kind, src, dst, _lv, _clv in rows:
        if t > since:
            queue += (src == "waiting") - (dst == "waiting")
    peak = [0] * n
    peak[0] = queue
    last = 0
    stays: dict[int, tuple[float, str]] = {}

    def breach(enter: float, level: str, end: float) -> None:
        when = enter + targets.get(level, targets["calm"])
        if since <= when < end:
            breaches[bucket(when)] += 1

    for t, cid, kind, src, dst, level, conv_level in rows:
        if t > since:
            b = bucket(t)
            while last < b:  # buckets with no move keep the length they started with
                last += 1
                peak[last] = queue
            queue += (dst == "waiting") - (src == "waiting")
            peak[b] = max(peak[b], queue)
            if kind == "escalated" and dst == "waiting":
                escalations[b] += 1
        if dst == "waiting":
            stays[cid] = (t, level if level in targets else conv_level or "calm")
        elif src == "waiting" and cid in stays:
            breach(*stays.pop(cid), t)
    while last < n - 1:
        last += 1
        peak[last] = queue
    for enter, level in stays.values():
        breach(enter, level, at + 1e-9)
    return {
        "bucket_s": bucket_s,
        "since": since,
        "escalations": escalations,
        "queue": [max(0, q) for q in peak],
        "breaches": breaches,
    }


def earlier_messages(
    store: Store,
    conversation_id: int,
    before: int,
    *,
    limit: int = 100,
    reader: str | None = None,
) -> list[dict[str, Any]]:
    """The ``limit`` messages just before message ``before``, oldest first (notes included).

    :param before: a message id; only messages with a smaller id are returned
    :param reader: an agent below supervisor: whispers only to or from them (see
        :func:`store.queries.transcript`)
    """
    readable = READABLE_BY if reader is not None else ""
    extra = (reader, reader) if reader is not None else ()
    rows = [
        dict(r)
        for r in store.query(
            "SELECT id, conversation_id, role, author, text, created_at, reply_to, level, score, reasons, meta"
            f" FROM messages WHERE conversation_id = ? AND id < ?{readable} ORDER BY id DESC LIMIT ?",
            (conversation_id, before, *extra, limit),
        )
    ]
    rows.reverse()
    for r in rows:
        r["reasons"] = json.loads(r["reasons"]) if r["reasons"] else []
        r["meta"] = json.loads(r["meta"]) if r["meta"] else {}
    return rows
