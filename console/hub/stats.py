"""The hub's counters and the one-line report `tandem serve` prints every minute."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from store import Store, queries, queue, sla
from store.stats import percentile_or_nan


@dataclass(slots=True)
class HubStats:
    """Counters since the hub started (the per-minute log shows differences)."""

    customer_messages: int = 0  # read from the feed
    # Read and dealt with: answered, escalated or recorded, nothing of the conversation in hand.
    customer_done: int = 0
    bot_replies: int = 0
    fallbacks: int = 0
    llm_fallbacks: int = 0  # bot turns whose LLM answer was not used
    escalations: int = 0
    resolved_by_bot: int = 0
    idle_resolved: int = 0
    long_wait_raised: int = 0
    errors: int = 0
    batches: int = 0
    judge_raised: int = 0  # conversations the LLM judge raised a level on
    judge_late: int = 0  # opinions that came after the bot had answered
    escalation_reasons: dict[str, int] = field(default_factory=dict)
    lags: list[float] = field(default_factory=list)  # seconds from customer message to reply

    def snapshot(self) -> dict[str, Any]:
        """The counters as a dict (without the lag samples and the reason tally)."""
        return {
            k: getattr(self, k) for k in self.__slots__ if k not in ("lags", "escalation_reasons")
        }


def status_line(
    store: Store,
    stats: HubStats,
    clock: Callable[[], float],
    previous: dict[str, Any],
    seconds: float,
) -> str:
    """One line of throughput since ``previous`` (a :meth:`HubStats.snapshot`), queue and SLA."""
    now = stats.snapshot()
    d = {k: now[k] - previous.get(k, 0) for k in now}
    counts = queries.status_counts(store)
    oldest = queue.oldest_waiting_since(store)
    wait = f", oldest wait {clock() - oldest:.0f}s" if oldest else ""
    since = clock() - seconds
    # SLA over the interval: time in the queue until a person claimed, and until they replied.
    waits = sla.claim_waits(store, since=since)
    firsts = sla.first_reply_waits(store, since=since)
    line = ""
    if waits:
        line += f", queue wait p50 {percentile_or_nan(waits, 0.5):.0f}s ({len(waits)} claimed)"
    if firsts:
        line += f", first human reply p50 {percentile_or_nan(firsts, 0.5):.0f}s"
    rate = d["customer_messages"] / seconds if seconds > 0 else 0.0
    llm = f", {d['llm_fallbacks']} LLM answers not used" if d["llm_fallbacks"] else ""
    return (
        f"hub: {seconds:.0f}s: {d['customer_messages']} customer messages ({rate:.1f}/s),"
        f" {d['bot_replies']} bot replies ({d['fallbacks']} fallbacks{llm}), {d['escalations']} escalations,"
        f" {d['idle_resolved'] + d['resolved_by_bot']} resolved, {d['errors']} errors{line} | now"
        f" bot {counts['bot']}, waiting {counts['waiting']}{wait},"
        f" human {counts['human']}, resolved {counts['resolved']}"
    )
