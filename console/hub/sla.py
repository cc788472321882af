"""SLA timers: a wait in the queue raises the customer's level; quiet bot conversations close.

Every ``settings.sla_tick_s`` the hub walks the queue, longest wait first, and lets the
triage engine weigh the wait (``engine.waited``: ``long_wait`` once it is too long); a
conversation with the bot in which the customer has said nothing for
``settings.idle_resolve_s`` (and is owed nothing) is resolved.
"""

from __future__ import annotations

import logging

from console.hub.escalation import Escalation, floor
from console.hub.memory import TriageMemory
from console.hub.shared import Shared
from store import hub_state, sla
from store import lifecycle as lc
from store.errors import InvalidTransition, NotFound

log = logging.getLogger("tandem.hub")

WAITING_PER_TICK = 500  # the longest waits first; the rest are looked at on later ticks
RESOLVED_PER_TICK = 200


class SlaTimers:
    """The periodic work of the hub, separate from the feed."""

    def __init__(self, shared: Shared, memory: TriageMemory, escalation: Escalation) -> None:
        self.shared = shared
        self.memory = memory
        self.escalation = escalation
        self.last_tick = 0.0

    def due(self) -> bool:
        """Whether ``settings.sla_tick_s`` passed since the last tick."""
        return self.shared.clock() - self.last_tick >= self.shared.settings.sla_tick_s

    def tick(self) -> None:
        """``long_wait`` for waiting conversations; resolve quiet bot conversations."""
        shared = self.shared
        now = shared.clock()
        self.last_tick = now
        store, stats = shared.store, shared.stats
        owns = shared.owns
        # With what each one's escalation recorded: one query a tick, not one per conversation.
        waiting = [
            w  # the others are another hub worker's
            for w in hub_state.waiting_longest_first(store, limit=WAITING_PER_TICK)
            if owns(w.id)
        ]
        # What people settled, for those not in memory (a restart, shards taken over): one
        # query, not one or two per conversation.
        cold = [w.id for w in waiting if self.memory.get(w.id) is None]
        settled = self.memory.settled_of(cold) if cold else {}
        for w in waiting:
            cid, since, escalated = w.id, w.waiting_since, w.escalated
            try:
                entry = self.memory.entry(cid, w.triage_state, settled=settled.get(cid))
                if entry.stored is None and cid in settled:
                    # Just loaded: what was last written is the badge the row carries, so an
                    # unchanged one is not written again (a write per conversation, once).
                    entry.stored = w.badge()
                verdict = shared.engine.waited(entry.state, max(0.0, now - since))
                before = entry.stored
                level, also = floor(hub_state.escalation_data(escalated), verdict)
                lvl, reasons = self.memory.badge(entry, verdict, level=level, also=also)
                if (lvl, tuple(reasons)) == before:
                    # Most ticks change nothing: the engine's state is dumped only for a write.
                    continue
                mark = self.memory.mark(entry, verdict, level=level, also=also)
                entry.verdict = verdict
                changed = lc.record_triage(store, cid, mark, actor="sla")
                if (
                    changed
                    and "long_wait" in verdict.reasons
                    and (before is None or "long_wait" not in before[1])
                ):
                    stats.long_wait_raised += 1
            except (NotFound, InvalidTransition):
                continue
            except Exception:
                stats.errors += 1
                log.exception("hub: SLA tick on conversation %s", cid)
        cutoff = now - shared.settings.idle_resolve_s
        for cid in sla.quiet_bot_conversations(store, before=cutoff, limit=RESOLVED_PER_TICK):
            if not owns(cid):
                continue
            try:
                lc.resolve(store, cid, by="hub")
                stats.idle_resolved += 1
            except InvalidTransition:
                continue
