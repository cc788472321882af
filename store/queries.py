"""Read-only queries: one conversation, its transcript, lists for the wall, counts."""

from __future__ import annotations

import json
from typing import Any

from store.db import Store
from store.errors import NotFound

_CONVERSATION_COLUMNS = (
    "c.id, c.customer_id, cu.name AS customer_name, cu.external_id, c.channel, c.state, c.owner,"
    " c.level, c.score, c.reasons, c.subject, c.message_count, c.bot_fallbacks, c.llm_fallbacks,"
    " c.version, c.lang, c.model_reasons, c.model_why,"
    " c.created_at, c.updated_at, c.last_message_at, c.last_customer_at, c.waiting_since,"
    " c.claimed_at, c.first_human_reply_at, c.resolved_at"
)


def _conversation(row: Any) -> dict[str, Any]:
    d = dict(row)
    d["reasons"] = json.loads(d["reasons"]) if d.get("reasons") else []
    d["model_reasons"] = json.loads(d["model_reasons"]) if d.get("model_reasons") else []
    return d


def get_conversation(store: Store, conversation_id: int) -> dict[str, Any]:
    """One conversation with its customer's name.

    :raises NotFound: no such conversation
    """
    row = store.one(
        f"SELECT {_CONVERSATION_COLUMNS} FROM conversations c JOIN customers cu ON cu.id = c.customer_id"
        " WHERE c.id = ?",
        (conversation_id,),
    )
    if row is None:
        raise NotFound(f"conversation {conversation_id} not found")
    return _conversation(row)


def list_conversations(
    store: Store,
    *,
    states: tuple[str, ...] | None = ("bot", "waiting", "human"),
    owner: str | None = None,
    ids: list[int] | None = None,
    limit: int = 2000,
) -> list[dict[str, Any]]:
    """Conversations, newest activity first.

    :param states: only these states (``None`` for all)
    :param owner: only those this agent owns
    :param ids: only these ids
    """
    where: list[str] = []
    params: list[object] = []
    if states:
        where.append(f"c.state IN ({','.join('?' * len(states))})")
        params.extend(states)
    if owner:
        where.append("c.owner = ?")
        params.append(owner)
    if ids is not None:
        if not ids:
            return []
        where.append(f"c.id IN ({','.join('?' * len(ids))})")
        params.extend(ids)
    sql = f"SELECT {_CONVERSATION_COLUMNS} FROM conversations c JOIN customers cu ON cu.id = c.customer_id"
    if where:
        sql += " WHERE " + " AND ".join(where)
    sql += " ORDER BY c.updated_at DESC LIMIT ?"
    params.append(limit)
    return [_conversation(r) for r in store.query(sql, params)]


# A supervisor's whisper (store.oversight.whisper) is for the agent it addresses: anyone
# else below a supervisor reads the transcript without it. In SQL, so a page of N rows is N
# readable rows (a client pages on "fewer than asked: the end").
READABLE_BY = (
    " AND (role != 'note' OR json_extract(meta, '$.whisper') IS NULL"
    " OR author = ? OR json_extract(meta, '$.to') = ?)"
)


def transcript(
    store: Store,
    conversation_id: int,
    *,
    after: int = 0,
    limit: int | None = None,
    last: int | None = None,
    include_notes: bool = True,
    reader: str | None = None,
) -> list[dict[str, Any]]:
    """Messages of a conversation, oldest first.

    :param after: only messages with ``id > after``
    :param limit: at most this many from the start
    :param last: only the newest ``last`` messages (still returned oldest first)
    :param include_notes: include internal agent notes (never for the customer's side)
    :param reader: the agent (not a supervisor) who reads it: whispers only to or from them;
        ``None`` for a supervisor, who reads every whisper
    """
    sql = (
        "SELECT id, conversation_id, role, author, text, created_at, reply_to, level, score, reasons, meta"
        " FROM messages WHERE conversation_id = ? AND id > ?"
    )
    params: list[Any] = [conversation_id, after]
    if not include_notes:
        sql += " AND role != 'note'"
    elif reader is not None:
        sql += READABLE_BY
        params += [reader, reader]
    if last is not None:
        sql += " ORDER BY id DESC LIMIT ?"
        params.append(last)
    else:
        sql += " ORDER BY id"
        if limit is not None:
            sql += " LIMIT ?"
            params.append(limit)
    rows = [dict(r) for r in store.query(sql, params)]
    if last is not None:
        rows.reverse()
    for r in rows:
        r["reasons"] = json.loads(r["reasons"]) if r["reasons"] else []
        r["meta"] = json.loads(r["meta"]) if r["meta"] else {}
    return rows


def message(store: Store, message_id: int) -> dict[str, Any] | None:
    """One message by id (``meta`` decoded), or ``None`` when there is no such message.

    :return: ``id``, ``conversation_id``, ``role``, ``author``, ``text``, ``created_at``,
        ``reply_to`` and ``meta`` (a dict, empty when the message has none)
    """
    row = store.one(
        "SELECT id, conversation_id, role, author, text, created_at, reply_to, meta"
        " FROM messages WHERE id = ?",
        (message_id,),
    )
    if row is None:
        return None
    d = dict(row)
    d["meta"] = json.loads(d["meta"]) if d["meta"] else {}
    return d


def customer_token_hash(store: Store, conversation_id: int) -> str | None:
    """The hash of the customer token that opens a conversation (``None``: no token does).

    :raises NotFound: no such conversation
    """
    row = store.one("SELECT token_hash FROM conversations WHERE id = ?", (conversation_id,))
    if row is None:
        raise NotFound(f"conversation {conversation_id} not found")
    return None if row[0] is None else str(row[0])


def status_counts(store: Store) -> dict[str, int]:
    """How many conversations are in each state (every state present, zero included)."""
    counts = {"bot": 0, "waiting": 0, "human": 0, "resolved": 0}
    for state, n in store.query("SELECT state, count(*) FROM conversations GROUP BY state"):
        counts[state] = n
    return counts


def table_counts(store: Store) -> dict[str, int]:
    """Row counts of the public tables."""
    return {
        t: store.one(f"SELECT count(*) FROM {t}")[0]  # type: ignore[index]
        for t in (
            "customers",
            "conversations",
            "messages",
            "events",
            "agents",
            "drafts",
            "kb_articles",
            "ratings",
        )
    }
