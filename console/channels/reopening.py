"""Where a closed conversation goes when its customer writes again: the policy's choice
(:func:`console.policy.reopen_route`) with today's facts (is the person who closed it online?),
for every channel that stores customer messages."""

from __future__ import annotations

import time
from collections.abc import Callable

from console.policy import PolicySettings, reopen_route
from store import Store, presence
from store.history import Closing, Reopening


def reopen_router(
    store: Store, settings: PolicySettings, *, clock: Callable[[], float] = time.time
) -> Callable[[Closing | None], Reopening]:
    """The ``reopen`` argument of :func:`store.lifecycle.add_customer_message`.

    It reads presence through ``store``: the same connection, so inside the message's own
    transaction.
    """

    def route(closing: Closing | None) -> Reopening:
        agent = closing.agent if closing is not None else None
        online = agent is not None and presence.is_online(
            store, agent, since=clock() - settings.online_window_s
        )
        return reopen_route(settings, closing, agent_online=online)

    return route
