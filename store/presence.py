"""Who on the team is online: the one definition, for the wait a customer is promised and for
where a reopened conversation goes.

Today an agent is online when seen within a window (any move, or a console's heartbeat) or
while holding a conversation (someone mid-conversation is there, however quiet); a disabled
account never is. Presence proper (away, busy, signed out) is meant to replace this module.
"""

from __future__ import annotations

from store.db import Store

_ONLINE = (
    "(a.last_seen_at >= :since OR a.name IN (SELECT owner FROM conversations WHERE state = 'human'))"
    " AND NOT EXISTS (SELECT 1 FROM accounts acc WHERE acc.name = a.name"
    " AND acc.disabled_at IS NOT NULL)"
)


def agents_online(store: Store, *, since: float) -> int:
    """How many agents are online.

    :param since: wall-clock seconds; an agent last seen before it counts only while they
        hold a conversation
    """
    row = store.one(f"SELECT count(*) FROM agents a WHERE {_ONLINE}", {"since": since})
    return int(row[0]) if row else 0


def is_online(store: Store, agent: str, *, since: float) -> bool:
    """Whether ``agent`` is online (see :func:`agents_online`)."""
    row = store.one(
        f"SELECT 1 FROM agents a WHERE a.name = :name AND {_ONLINE}",
        {"since": since, "name": agent},
    )
    return row is not None
