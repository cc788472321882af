"""The drafts log: one row per suggested reply, from the first fragment to the agent's decision.

A draft is ``pending`` while it streams and while it sits in the agent's editor. It ends as
``accepted`` (sent unchanged), ``edited`` (sent after changes; ``edit_distance`` says how
many), ``discarded``, ``stale`` (a newer customer message arrived before the agent acted;
the agent may still send it) or ``failed`` (no engine produced text).

=================  ===============================  ===========================================
function           outcome                          who
=================  ===============================  ===========================================
start              (new) pending                    the draft service, before the first token
finish             pending (or failed)              the draft service, after the last token
mark_sent          pending|stale -> accepted|edited the composer, after the reply is stored
discard            pending|stale -> discarded       the composer (agent's key, or a new draft)
mark_stale         pending -> stale                 the draft service / composer on a new message
=================  ===============================  ===========================================

:func:`draft_metrics` is what the console shows: acceptance rate, mean edit distance and time
to first text per engine.
"""

from __future__ import annotations

import json
import statistics
from dataclasses import dataclass, field
from typing import Any

from rapidfuzz.distance import Levenshtein

from store.db import Store, now
from store.errors import InvalidInput, InvalidTransition, NotFound
from store.stats import percentile_or_nan

OUTCOMES = ("pending", "accepted", "edited", "discarded", "stale", "failed")
# The agent may still send or discard a draft that went stale: it is their call.
_OPEN = ("pending", "stale")

_COLUMNS = (
    "id, conversation_id, agent, engine, model, instruction, based_on_message_id, text, sent_text,"
    " sent_message_id, edit_distance, outcome, kb_ids, notice, first_text_ms, total_ms, created_at,"
    " finished_at, incomplete, llm_lost_ms"
)


def _row(row: Any) -> dict[str, Any]:
    d = dict(row)
    d["kb_ids"] = json.loads(d["kb_ids"]) if d.get("kb_ids") else []
    return d


def _ids(kb_ids: list[str] | tuple[str, ...] | None) -> str:
    return json.dumps([str(k) for k in (kb_ids or [])], separators=(",", ":"))


def start(
    store: Store,
    conversation_id: int,
    *,
    engine: str,
    model: str | None = None,
    agent: str | None = None,
    instruction: str | None = None,
    based_on_message_id: int | None = None,
    at: float | None = None,
) -> int:
    """Record a draft that is about to stream; return its id.

    :param engine: ``embedded`` or ``llm``
    :param model: the LLM's model name (``None`` for the embedded engine)
    :param agent: the agent the draft is for
    :param instruction: the agent's regenerate instruction ("shorter"), if any
    :param based_on_message_id: the newest customer message the draft answers; a newer one
        makes the draft stale
    :raises NotFound: no such conversation
    """
    if not engine:
        raise InvalidInput("a draft needs an engine name")
    at = at or now()
    with store.write() as conn:
        if (
            conn.execute("SELECT 1 FROM conversations WHERE id = ?", (conversation_id,)).fetchone()
            is None
        ):
            raise NotFound(f"conversation {conversation_id} not found")
        cur = conn.execute(
            "INSERT INTO drafts (conversation_id, agent, engine, model, instruction, based_on_message_id,"
            " created_at) VALUES (?, ?, ?, ?, ?, ?, ?)",
            (conversation_id, agent, engine, model, instruction, based_on_message_id, at),
        )
    return cur.lastrowid  # type: ignore[return-value]


def finish(
    store: Store,
    draft_id: int,
    *,
    text: str,
    first_text_ms: float | None,
    total_ms: float,
    engine: str | None = None,
    model: str | None = None,
    kb_ids: list[str] | tuple[str, ...] | None = None,
    notice: str | None = None,
    failed: bool = False,
    incomplete: str | None = None,
    llm_lost_ms: float | None = None,
    at: float | None = None,
) -> None:
    """Store the finished text and its timings.

    :param first_text_ms: from the start of the engine that wrote the text to its first words
    :param engine: the engine that actually wrote the text, if it changed (an LLM that timed
        out falls back to ``embedded``)
    :param kb_ids: knowledge-base articles the draft used or cites
    :param notice: what the agent was told (a fallback, an instruction the engine ignored)
    :param failed: no text could be produced; the outcome becomes ``failed``
    :param incomplete: why the text stops short (the stream ended without a proper finish)
    :param llm_lost_ms: time spent on an LLM that failed before ``engine`` took over
    """
    at = at or now()
    with store.write() as conn:
        row = conn.execute("SELECT outcome FROM drafts WHERE id = ?", (draft_id,)).fetchone()
        if row is None:
            raise NotFound(f"draft {draft_id} not found")
        # A draft can go stale (or be discarded) while it streams; keep that verdict.
        outcome = "failed" if failed and row[0] == "pending" else row[0]
        conn.execute(
            "UPDATE drafts SET text = ?, first_text_ms = ?, total_ms = ?, engine = coalesce(?, engine),"
            " model = CASE WHEN ? IS NULL THEN model ELSE ? END, kb_ids = ?, notice = ?, outcome = ?,"
            " finished_at = ?, incomplete = ?, llm_lost_ms = ? WHERE id = ?",
            (
                text,
                first_text_ms,
                total_ms,
                engine,
                engine,
                model,
                _ids(kb_ids),
                notice,
                outcome,
                at,
                incomplete,
                llm_lost_ms,
                draft_id,
            ),
        )


def edit_distance(draft_text: str, sent_text: str) -> int:
    """Character edits (Levenshtein) from the draft to what was sent, ignoring outer whitespace."""
    return Levenshtein.distance(draft_text.strip(), sent_text.strip())


def mark_sent(
    store: Store,
    draft_id: int,
    sent_text: str,
    *,
    message_id: int | None = None,
    at: float | None = None,
) -> str:
    """The agent sent a reply that started from this draft: ``accepted`` or ``edited``.

    :param sent_text: the text as it was sent
    :param message_id: the stored agent message
    :return: the new outcome
    :raises InvalidTransition: the draft was already sent or discarded
    """
    at = at or now()
    with store.write() as conn:
        row = conn.execute("SELECT outcome, text FROM drafts WHERE id = ?", (draft_id,)).fetchone()
        if row is None:
            raise NotFound(f"draft {draft_id} not found")
        if row[0] not in _OPEN:
            raise InvalidTransition(f"draft {draft_id} is already {row[0]}", state=row[0])
        distance = edit_distance(row[1], sent_text)
        outcome = "accepted" if distance == 0 else "edited"
        conn.execute(
            "UPDATE drafts SET sent_text = ?, sent_message_id = ?, edit_distance = ?, outcome = ?,"
            " finished_at = coalesce(finished_at, ?) WHERE id = ?",
            (sent_text, message_id, distance, outcome, at, draft_id),
        )
    return outcome


def discard(store: Store, draft_id: int, *, at: float | None = None) -> bool:
    """The agent threw the draft away (or replaced it with a new one).

    :return: whether the outcome changed (``False`` if it was already decided)
    """
    at = at or now()
    with store.write() as conn:
        cur = conn.execute(
            f"UPDATE drafts SET outcome = 'discarded', finished_at = coalesce(finished_at, ?)"
            f" WHERE id = ? AND outcome IN ({','.join('?' * len(_OPEN))})",
            (at, draft_id, *_OPEN),
        )
        if (
            cur.rowcount == 0
            and conn.execute("SELECT 1 FROM drafts WHERE id = ?", (draft_id,)).fetchone() is None
        ):
            raise NotFound(f"draft {draft_id} not found")
    return cur.rowcount > 0


def latest_customer_message_id(store: Store, conversation_id: int) -> int | None:
    """The newest customer message of a conversation (what a fresh draft answers)."""
    row = store.one(
        "SELECT max(id) FROM messages WHERE conversation_id = ? AND role = 'customer'",
        (conversation_id,),
    )
    return row[0] if row else None


def draft_count(store: Store, conversation_id: int) -> int:
    """How many drafts were ever started for a conversation (each outcome counts)."""
    row = store.one("SELECT count(*) FROM drafts WHERE conversation_id = ?", (conversation_id,))
    return int(row[0]) if row else 0


def mark_stale(store: Store, conversation_id: int, *, draft_id: int | None = None) -> list[int]:
    """Mark pending drafts that answer an older customer message than the newest one as stale.

    :param draft_id: only look at this draft
    :return: the ids that became stale
    """

    def candidates(conn: Any) -> list[int]:
        newest = conn.execute(
            "SELECT max(id) FROM messages WHERE conversation_id = ? AND role = 'customer'",
            (conversation_id,),
        ).fetchone()[0]
        if newest is None:
            return []
        sql = (
            "SELECT id FROM drafts WHERE conversation_id = ? AND outcome = 'pending'"
            " AND coalesce(based_on_message_id, 0) < ?"
        )
        params: list[Any] = [conversation_id, newest]
        if draft_id is not None:
            sql += " AND id = ?"
            params.append(draft_id)
        return [r[0] for r in conn.execute(sql, params)]

    # Most calls find nothing to change: look first without taking the write lock, which a
    # busy hub may hold for a moment (the console calls this from its event loop).
    if not candidates(store.conn):
        return []
    with store.write() as conn:
        ids = candidates(conn)
        if ids:
            conn.execute(
                f"UPDATE drafts SET outcome = 'stale' WHERE id IN ({','.join('?' * len(ids))})", ids
            )
    return ids


def get_draft(store: Store, draft_id: int) -> dict[str, Any]:
    """One draft as a dict (``kb_ids`` decoded).

    :raises NotFound: no such draft
    """
    row = store.one(f"SELECT {_COLUMNS} FROM drafts WHERE id = ?", (draft_id,))
    if row is None:
        raise NotFound(f"draft {draft_id} not found")
    return _row(row)


def list_drafts(store: Store, conversation_id: int) -> list[dict[str, Any]]:
    """Every draft of a conversation, oldest first."""
    return [
        _row(r)
        for r in store.query(
            f"SELECT {_COLUMNS} FROM drafts WHERE conversation_id = ? ORDER BY id",
            (conversation_id,),
        )
    ]


@dataclass(frozen=True, slots=True)
class EngineTiming:
    """Time to first text for one engine, over finished drafts."""

    drafts: int
    p50_ms: float | None
    p90_ms: float | None
    mean_ms: float | None


@dataclass(frozen=True, slots=True)
class DraftMetrics:
    """How drafts are doing: what the console's drafts panel shows."""

    total: int
    by_outcome: dict[str, int]
    acceptance_rate: float | None
    """Sent drafts (accepted or edited) over decided ones (accepted, edited, discarded)."""
    unchanged_rate: float | None
    """Drafts sent without a single edit, over sent drafts."""
    mean_edit_distance: float | None
    """Mean character edits between draft and sent text, over sent drafts."""
    first_text_by_engine: dict[str, EngineTiming] = field(default_factory=dict)
    incomplete: int = 0
    """Drafts whose stream ended without a proper finish (cut off, token limit)."""
    llm_lost: EngineTiming | None = None
    """Time spent on an LLM that failed before another engine wrote the draft."""


def draft_metrics(store: Store, since: float | None = None) -> DraftMetrics:
    """Acceptance rate, mean edit distance, time to first text by engine, counts by outcome.

    :param since: only drafts created at or after this time (epoch seconds)
    """
    where = ""
    params: tuple[float, ...] = ()
    if since is not None:
        where, params = " WHERE created_at >= ?", (since,)
    by_outcome = dict.fromkeys(OUTCOMES, 0)
    for outcome, n in store.query(
        f"SELECT outcome, count(*) FROM drafts{where} GROUP BY outcome", params
    ):
        by_outcome[outcome] = n
    total = sum(by_outcome.values())
    sent = by_outcome["accepted"] + by_outcome["edited"]
    decided = sent + by_outcome["discarded"]
    row = store.one(
        f"SELECT avg(edit_distance) FROM drafts{where}{' AND' if where else ' WHERE'}"
        " outcome IN ('accepted', 'edited')",
        params,
    )
    mean_edit = float(row[0]) if row and row[0] is not None else None

    and_ = " AND" if where else " WHERE"
    row = store.one(f"SELECT count(*) FROM drafts{where}{and_} incomplete IS NOT NULL", params)
    incomplete = int(row[0]) if row else 0
    lost = sorted(
        float(r[0])
        for r in store.query(
            f"SELECT llm_lost_ms FROM drafts{where}{and_} llm_lost_ms IS NOT NULL", params
        )
    )
    timings: dict[str, list[float]] = {}
    for engine, ms in store.query(
        f"SELECT engine, first_text_ms FROM drafts{where}{' AND' if where else ' WHERE'}"
        " first_text_ms IS NOT NULL",
        params,
    ):
        timings.setdefault(engine, []).append(float(ms))
    by_engine = {}
    for engine, values in sorted(timings.items()):
        values.sort()
        by_engine[engine] = _timing(values)
    return DraftMetrics(
        total=total,
        by_outcome=by_outcome,
        acceptance_rate=sent / decided if decided else None,
        unchanged_rate=by_outcome["accepted"] / sent if sent else None,
        mean_edit_distance=mean_edit,
        first_text_by_engine=by_engine,
        incomplete=incomplete,
        llm_lost=_timing(lost) if lost else None,
    )


def _timing(sorted_values: list[float]) -> EngineTiming:
    return EngineTiming(
        drafts=len(sorted_values),
        p50_ms=percentile_or_nan(sorted_values, 0.5),
        p90_ms=percentile_or_nan(sorted_values, 0.9),
        mean_ms=statistics.fmean(sorted_values),
    )
