"""What the hub tells a customer it passes to a person: where they are in the queue, and when.

The wording is the policy's (:func:`console.policy.handoff_message`); this module supplies
the facts: how many are ahead, how many agents are at work, and how long agents have been
taking per conversation lately.
"""

from __future__ import annotations

from typing import NamedTuple

from console.hub.shared import Shared
from console.policy import Decision, handoff_message, wait_estimate_minutes
from store import presence, sla
from store.views import waiting_ahead

HANDLING_WINDOW_S = 7200  # agents' recent pace: conversations resolved in the last two hours
HANDLING_CACHE_S = 30  # the pace changes slowly; a burst of escalations asks once


class Handoff(NamedTuple):
    """A hand-off notice and the wait it promises (``None``: nobody online to promise one)."""

    text: str
    minutes: int | None


class Notices:
    """Hand-off notices, honest about the queue at the moment of the escalation."""

    def __init__(self, shared: Shared) -> None:
        self.shared = shared
        self._handling: tuple[float, float | None] = (-1e18, None)  # (computed at, minutes)

    def handoff(
        self, cid: int, level: str, decision: Decision, *, fallback: bool = False
    ) -> Handoff:
        """The notice for conversation ``cid``, which ``decision`` sends to the queue at ``level``.

        :param fallback: the bot could not answer (the notice says so first)
        """
        ahead, online = self.queue_position(cid, level)
        minutes = wait_estimate_minutes(
            self.shared.settings, ahead, online, self.handling_minutes()
        )
        text = handoff_message(decision, queue_ahead=ahead, wait_minutes=minutes, fallback=fallback)
        return Handoff(text, minutes)

    def queue_position(self, cid: int, level: str) -> tuple[int, int]:
        """(conversations ahead in the queue, agents online) for ``cid`` joining it now."""
        store, now = self.shared.store, self.shared.clock()
        # Counted by the store in the order people take the queue in (policy.queue_key, checked
        # against it by a test), joining it now: one count, not the queue read into Python.
        ahead = waiting_ahead(store, conversation_id=cid, level=level, waiting_since=now)
        # Only agents online and taking conversations: not supervisors watching, not someone
        # away, not a console that stopped beating (killed without saying it was leaving).
        settings = self.shared.settings
        online = presence.agents_online(
            store,
            since=now - settings.online_window_s,
            fresh_since=now - settings.routing.stale_after_s,
        )
        return ahead, online

    def handling_minutes(self) -> float | None:
        """Average minutes agents took per conversation over the last two hours (cached 30 s)."""
        now = self.shared.clock()
        if now - self._handling[0] < HANDLING_CACHE_S:
            return self._handling[1]
        recent = sla.handling_time(self.shared.store, since=now - HANDLING_WINDOW_S)
        # A handful of samples is noise; clamp so one odd conversation cannot promise 0 or 90 min.
        value = (
            min(30.0, max(1.0, recent.mean_seconds / 60))
            if recent.conversations >= 5 and recent.mean_seconds is not None
            else None
        )
        self._handling = (now, value)
        return value
