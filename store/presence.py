"""Who on the team is there: presence, language skills, and the one definition of "online".

A console says where its agent is (:func:`set_presence`): ``online`` when it starts and while
the agent is at the keyboard, ``away`` when they step away or go idle, ``offline`` when it
quits; its heartbeat (``last_seen_at``) says it is still running. An agent is online when
their console says ``online`` and beat within the caller's window (a console killed without
quitting stops beating). A name no console reported presence for (an older console, a
script through the store) keeps the older rule: seen within the window, or holding a
conversation. A disabled account never is.

"Taking conversations" (the wait a customer is promised) is narrower: online agents, not
supervisors, who watch rather than take the queue.
"""

from __future__ import annotations

import re
from collections.abc import Iterable

from store.accounts import check_active, person_name
from store.db import Store, now
from store.errors import InvalidInput, NotFound

PRESENCES = ("online", "away", "offline")
_LANG = re.compile(r"[a-z]{2}")

_ENABLED = (
    "NOT EXISTS (SELECT 1 FROM accounts acc WHERE acc.name = a.name"
    " AND acc.disabled_at IS NOT NULL)"
)
_ONLINE = (
    "(CASE WHEN a.presence IS NULL THEN (a.last_seen_at >= :since OR a.name IN"
    " (SELECT owner FROM conversations WHERE state = 'human'))"
    " ELSE a.presence = 'online' AND a.last_seen_at >= :fresh END)"
    f" AND {_ENABLED}"
)


def set_presence(store: Store, agent: str, status: str, *, at: float | None = None) -> None:
    """Record what ``agent``'s console says: ``online``, ``away`` or ``offline``.

    It counts as a heartbeat too (``last_seen_at``). The agent comes into being if new.

    :raises InvalidInput: an unknown status or a bad name
    :raises Forbidden: a disabled account
    """
    agent = person_name(agent)
    if status not in PRESENCES:
        raise InvalidInput(f"presence must be one of {', '.join(PRESENCES)} (got {status!r})")
    with store.write() as conn:
        at = now() if at is None else at
        check_active(conn, agent)
        conn.execute(
            "INSERT INTO agents (name, display_name, created_at, last_seen_at, presence,"
            " presence_at) VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT(name) DO UPDATE SET"
            " last_seen_at = excluded.last_seen_at, presence = excluded.presence,"
            " presence_at = CASE WHEN agents.presence IS excluded.presence"
            " THEN agents.presence_at ELSE excluded.presence_at END",
            (agent, agent, at, at, status, at),
        )


def presence_of(store: Store, agent: str) -> str | None:
    """What ``agent``'s console last said (``None``: never said, or no such agent)."""
    row = store.one("SELECT presence FROM agents WHERE name = ?", (agent,))
    return None if row is None else row[0]


def parse_langs(value: str | Iterable[str]) -> tuple[str, ...]:
    """Language codes from ``"en,fr"`` or a list: ISO 639-1, lower case, each once, in order.

    :raises InvalidInput: a code that is not two letters
    """
    items = value.split(",") if isinstance(value, str) else list(value)
    out: list[str] = []
    for item in items:
        code = str(item).strip().lower()
        if not code:
            continue
        if not _LANG.fullmatch(code):
            raise InvalidInput(
                f"language {str(item).strip()[:20]!r} is not a two-letter ISO 639-1 code"
                " (e.g. en, sv, de)"
            )
        if code not in out:
            out.append(code)
    return tuple(out)


def set_langs(store: Store, agent: str, langs: str | Iterable[str]) -> tuple[str, ...]:
    """The languages ``agent`` takes conversations in (empty: any); return them as stored.

    The agent comes into being if new, so skills can be set before their first console.
    """
    agent = person_name(agent)
    codes = parse_langs(langs)
    with store.write() as conn:
        at = now()
        conn.execute(
            "INSERT INTO agents (name, display_name, created_at, langs) VALUES (?, ?, ?, ?)"
            " ON CONFLICT(name) DO UPDATE SET langs = excluded.langs",
            (agent, agent, at, ",".join(codes) or None),
        )
    return codes


def langs_of(store: Store, agent: str) -> tuple[str, ...]:
    """The languages ``agent`` takes (empty: any).

    :raises NotFound: no such agent
    """
    row = store.one("SELECT langs FROM agents WHERE name = ?", (agent,))
    if row is None:
        raise NotFound(f"no agent named {agent}")
    return parse_langs(row[0] or "")


def agents_online(store: Store, *, since: float, fresh_since: float | None = None) -> int:
    """How many agents are online and taking conversations: a supervisor who watches is not
    counted, one holding a conversation is (a small team's lead who works the queue too, or
    whoever plays both roles in ``tandem demo``, where the customers were told nobody was
    online while the one person online was answering them).

    :param since: an agent whose console never reported presence counts when seen since
        then (or while holding a conversation)
    :param fresh_since: an ``online`` console must have beaten since then (default ``since``)
    """
    row = store.one(
        "SELECT count(*) FROM agents a WHERE (a.role = 'agent' OR a.name IN"
        f" (SELECT owner FROM conversations WHERE state = 'human')) AND {_ONLINE}",
        {"since": since, "fresh": since if fresh_since is None else fresh_since},
    )
    return int(row[0]) if row else 0


def is_online(store: Store, agent: str, *, since: float, fresh_since: float | None = None) -> bool:
    """Whether ``agent`` is online (see :func:`agents_online`; any role)."""
    row = store.one(
        f"SELECT 1 FROM agents a WHERE a.name = :name AND {_ONLINE}",
        {"since": since, "fresh": since if fresh_since is None else fresh_since, "name": agent},
    )
    return row is not None
