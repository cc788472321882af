"""Each conversation's triage state, kept in memory and caught up from the store.

On a miss the state is loaded from ``conversations.triage_state`` (or rebuilt from the
transcript), then every message after the last one it has seen is observed, in order.
``conversations.triage_state``, as the hub writes it, is JSON ``{"upto": <message id>,
"engine": <engine.dump_state()>}``: the engine state after observing every message up to
``upto``, so a restart never observes a message twice.
"""

from __future__ import annotations

import json
import logging
from collections import OrderedDict, deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from console.hub.shared import Shared
from console.policy import Settled, max_level
from store import hub_state
from store import lifecycle as lc
from store.hub_state import Turn

log = logging.getLogger("tandem.hub")

CONTEXT_MESSAGES = 12  # how much of the transcript the bot sees
CACHE_SIZE = 20_000


@dataclass(slots=True)
class Remembered:
    """The hub's memory of one conversation."""

    state: Any
    upto: int = 0  # last message id observed by the triage engine
    verdict: Any = None  # verdict after the last observed message
    last_customer: Any = None  # verdict right after the last customer message
    stored: tuple[str, tuple[str, ...]] | None = None  # (level, reasons) last written
    settled: Settled = field(default_factory=Settled)
    # The newest messages, for the bot; None until known (an entry loaded from the store).
    context: deque[dict[str, str]] | None = None
    # The LLM judge's own reasons and line: shown (as the model's) until a newer opinion.
    model_reasons: tuple[str, ...] = ()
    model_why: str = ""


class TriageMemory:
    """Up to :data:`CACHE_SIZE` conversations' triage state, least recently used dropped first."""

    def __init__(self, shared: Shared) -> None:
        self.shared = shared
        self.engine = shared.engine
        self._cache: OrderedDict[int, Remembered] = OrderedDict()

    def get(self, cid: int) -> Remembered | None:
        """The cached state of ``cid``, if any (without loading it)."""
        return self._cache.get(cid)

    def forget(self, cid: int) -> None:
        """Drop ``cid``: its next use reloads it from the store."""
        self._cache.pop(cid, None)

    def forget_where(self, which: Callable[[int], bool]) -> None:
        """Drop every conversation ``which`` picks (another hub worker takes them over)."""
        for cid in [c for c in self._cache if which(c)]:
            del self._cache[cid]

    def entry(
        self,
        cid: int,
        triage_state: str | None,
        *,
        version: int | None = None,
        settled: Settled | None = None,
    ) -> Remembered:
        """The cached state of ``cid``, or one loaded from ``triage_state`` (or a fresh one).

        :param version: the conversation's version; 0 means it never changed hands, so nothing
            can have been settled by a person (saves a query for new conversations)
        :param settled: what a person settled, already read (:meth:`settled_of`)
        """
        entry = self._cache.get(cid)
        if entry is not None:
            self._cache.move_to_end(cid)
            return entry
        if triage_state:
            try:
                saved = json.loads(triage_state)
                if isinstance(saved, dict) and "engine" in saved:
                    entry = Remembered(
                        self.engine.load_state(saved["engine"]), int(saved.get("upto", 0))
                    )
                    model = saved.get("model")
                    if isinstance(model, list) and len(model) == 2:
                        entry.model_reasons = tuple(str(r) for r in model[0] or ())
                        entry.model_why = str(model[1] or "")
            except (ValueError, TypeError, KeyError):
                log.warning(
                    "conversation %s: unreadable triage state; rebuilding from the transcript", cid
                )
        if entry is None:
            # Observed from the first message on: the whole history passes through observe().
            entry = Remembered(self.engine.new_state(), context=deque(maxlen=CONTEXT_MESSAGES))
        if settled is None:
            settled = self.settled(cid) if version != 0 else Settled()
        entry.settled = settled
        self._cache[cid] = entry
        if len(self._cache) > CACHE_SIZE:
            self._cache.popitem(last=False)
        return entry

    def observe(self, entry: Remembered, turns: list[Turn]) -> tuple[int, float] | None:
        """Feed new messages to the engine; return the customer message still to answer."""
        pending: tuple[int, float] | None = None
        for mid, role, text, created_at, meta in turns:
            if entry.context is not None:
                entry.context.append({"role": role, "text": text})
            if role == "system":
                # An escalation notice or "Ana joined": the customer has been answered.
                pending = None
                entry.upto = mid
                continue
            fallback = False
            if role == "bot" and meta:
                try:
                    fallback = bool(json.loads(meta).get("fallback"))
                except (ValueError, AttributeError):
                    fallback = False
            verdict = self.engine.observe(entry.state, role, text, fallback=fallback)
            entry.verdict = verdict
            entry.upto = mid
            if role == "customer":
                entry.last_customer = verdict
                pending = (mid, created_at)
            else:
                pending = None
        if pending is not None and entry.last_customer is None:
            entry.last_customer = entry.verdict
        return pending

    def observe_reply(self, entry: Remembered, mid: int, text: str, *, fallback: bool) -> None:
        """The hub's own bot reply, stored as ``mid``: the engine sees the bot's words too."""
        # Fallbacks and repetition are conversation signals.
        entry.verdict = self.engine.observe(entry.state, "bot", text, fallback=fallback)
        entry.upto = mid
        if entry.context is not None:
            entry.context.append({"role": "bot", "text": text})

    def badge(
        self,
        entry: Remembered,
        verdict: Any,
        *,
        level: str | None = None,
        also: tuple[str, ...] = (),
    ) -> tuple[str, list[str]]:
        """The level and reasons :meth:`mark` would store for ``verdict`` (no engine state).

        Cheap enough for the SLA tick to ask on every waiting conversation: only a badge that
        differs from ``entry.stored`` needs the engine's state dumped and written.
        """
        own = tuple(getattr(verdict, "model_reasons", ()) or ())
        if own:
            entry.model_reasons = own
            entry.model_why = str(getattr(verdict, "model_why", "") or "")
        lvl = level or verdict.level
        # An escalation's own reasons (the bot's hand-off, its fallbacks) belong on the badge
        # too: an agent must never see a conversation sent to people with no reason shown.
        # So do the LLM judge's, until a newer opinion replaces them.
        reasons = list(verdict.reasons) + [r for r in also if r not in verdict.reasons]
        reasons += [r for r in entry.model_reasons if r not in reasons]
        return lvl, reasons

    def mark(
        self,
        entry: Remembered,
        verdict: Any,
        *,
        level: str | None = None,
        also: tuple[str, ...] = (),
    ) -> lc.TriageMark:
        """What to store for ``verdict``: level, score, reasons and the engine state to resume from.

        :param level: store this level instead of the verdict's (an escalation's, never lower)
        :param also: reasons to show beside the verdict's
        """
        lvl, reasons = self.badge(entry, verdict, level=level, also=also)
        saved: dict[str, Any] = {"upto": entry.upto, "engine": self.engine.dump_state(entry.state)}
        if entry.model_reasons:
            saved["model"] = [list(entry.model_reasons), entry.model_why]
        dump = json.dumps(saved, separators=(",", ":"))
        entry.stored = (lvl, tuple(reasons))
        return lc.TriageMark(
            lvl,
            float(verdict.score),
            reasons,
            dump,
            lang=getattr(verdict, "lang", "") or None,
            model_reasons=list(entry.model_reasons),
            model_why=entry.model_why,
            # Masked for agents when this message is abusive, not the conversation so far.
            abusive="abuse" in (getattr(verdict, "message_reasons", None) or ()),
        )

    def resettle(self, cid: int) -> None:
        """A person dealt with ``cid`` (handed back, released, resolved): reload what they settled."""
        entry = self._cache.get(cid)
        if entry is not None:
            entry.settled = self.settled(cid)

    def settled(self, cid: int) -> Settled:
        """Reasons and level that a person dealt with, up to the last hand-back."""
        return _settled(hub_state.settled_findings(self.shared.store, cid))

    def settled_of(self, cids: list[int]) -> dict[int, Settled]:
        """:meth:`settled` of each of ``cids``, read in one query."""
        found = hub_state.settled_findings_of(self.shared.store, cids)
        return {cid: _settled(found.get(cid)) for cid in cids}


def _settled(findings: list[dict[str, Any]] | None) -> Settled:
    """What a person settled, from :func:`store.hub_state.settled_findings`."""
    if findings is None:
        return Settled()
    reasons: set[str] = set()
    level = "calm"
    for d in findings:
        reasons.update(d.get("reasons") or ())
        if d.get("level"):
            level = max_level(level, d["level"])
    return Settled(frozenset(reasons), level)
