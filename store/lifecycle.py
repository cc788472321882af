"""The conversation lifecycle (DESIGN.md section 4) as plain functions on a :class:`Store`.

Every function is one ``BEGIN IMMEDIATE`` transaction that reads the conversation's current
state and owner, refuses with a specific :mod:`store.errors` exception if the move is not
allowed (compare-and-set), writes, and appends its ``events`` row. Because SQLite has one
writer at a time, the check and the write cannot interleave with another process's.

Which states each move starts from and ends in is declared once, in :mod:`store.moves`
(the checker replays the feed against the same table); here, which function makes it:

====================  ===============  =============================================
function              move             note
====================  ===============  =============================================
open_conversation     opened           a new conversation starts with the bot
add_customer_message  reopened         only when it was resolved (where to: the ``reopen`` route)
bot_reply             (post)           only while the bot owns the conversation
escalate              escalated
claim                 claimed          claiming one's own conversation is a no-op
assign                assigned         a supervisor; the router (store.routing)
release               released         a supervisor
agent_reply           (post)           only the owning agent
add_note              (note)           any agent, any state; never shown to customers
hand_back             handed_back      the owner or a supervisor
transfer              transferred      a supervisor (to themselves: ``oversight.barge``)
resolve               resolved         with a person: the owner or a supervisor
abandon               abandoned        the hub (the customer left the queue)
====================  ===============  =============================================
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import Any

from store.accounts import account_role, check_active, person_name, role_of
from store.db import Store, at_commit, now
from store.errors import (
    AlreadyAnswered,
    Forbidden,
    InvalidInput,
    InvalidTransition,
    NotFound,
    NotOwner,
    Taken,
)
from store.handover import HANDOVER_KEY
from store.history import Closing, Reopening, last_closing
from store.levels import LEVELS
from store.moves import (
    ABANDON,
    ASSIGN,
    CLAIM,
    ESCALATE,
    HAND_BACK,
    OPENED,
    POSTS_IN,
    RELEASE,
    REOPEN,
    RESOLVE,
    TRANSFER,
    Move,
)
from store.text import MAX_TEXT, checked_name, checked_text, optional_key

SUBJECT_CHARS = 120


@dataclass(frozen=True, slots=True)
class Posted:
    """What :func:`add_customer_message` did."""

    message_id: int
    duplicate: bool
    state: str
    reopened: bool = False


@dataclass(frozen=True, slots=True)
class TriageMark:
    """A triage verdict to store with a message (and on its conversation)."""

    level: str
    score: float
    reasons: list[str] = field(default_factory=list)
    state: str | None = None  # the engine's incremental per-conversation state, as JSON
    lang: str | None = None  # the customer's language (ISO 639-1); None keeps the stored one
    model_reasons: list[str] = field(default_factory=list)  # reasons only the LLM judge gave
    model_why: str = ""  # the judge's one line
    # The message itself is abusive (the engine's reasons for this message alone: a
    # conversation keeps `abuse` among its reasons for a few calm messages after an insult,
    # and those must not be masked). None: not known, `abuse` in `reasons` decides.
    abusive: bool | None = None


def _text(text: str, what: str = "text") -> str:
    return checked_text(text, what, MAX_TEXT)


def _name(name: str, what: str = "agent name") -> str:
    return checked_name(name, what)


def _stamp(at: float | None) -> float:
    # Called inside the write transaction, after BEGIN IMMEDIATE took the lock: rows are
    # stamped in commit order, so a bot reply that waited for the lock can never carry a
    # time before the claim that committed ahead of it.
    return now() if at is None else at


def _require(move: Move, cid: int, state: str, owner: str | None, action: str) -> None:
    if not move.allowed(state):
        raise _refuse(cid, state, owner, action)


def _compact(data: dict[str, Any]) -> str:
    return json.dumps(data, separators=(",", ":"))


# A message event's data, encoded once: json.dumps per message was a few microseconds of
# every post's cost (the store ingest bench).
_MESSAGE_DATA = {
    (role, fallback): _compact({"role": role, "fallback": True} if fallback else {"role": role})
    for role in ("customer", "bot", "agent", "system", "note")
    for fallback in (False, True)
}


_ABUSIVE_META = {flag: _compact({"abusive": flag}) for flag in (False, True)}


_EVENT_INSERT = (
    "INSERT INTO events (at, conversation_id, kind, actor, from_state, to_state, message_id, data)"
    " VALUES (?, ?, ?, ?, ?, ?, ?, ?)"
)


def _event(
    conn: sqlite3.Connection,
    at: float,
    cid: int | None,
    kind: str,
    actor: str | None,
    from_state: str | None = None,
    to_state: str | None = None,
    message_id: int | None = None,
    data: dict[str, Any] | str | None = None,
) -> int:
    """Append one event; ``data`` as a dict, or already encoded (``_MESSAGE_DATA``)."""
    cur = conn.execute(
        _EVENT_INSERT,
        (
            at,
            cid,
            kind,
            actor,
            from_state,
            to_state,
            message_id,
            data if isinstance(data, str) else _compact(data) if data else None,
        ),
    )
    return cur.lastrowid  # type: ignore[return-value]


def _load(conn: sqlite3.Connection, cid: int) -> tuple[str, str | None]:
    row = conn.execute("SELECT state, owner FROM conversations WHERE id = ?", (cid,)).fetchone()
    if row is None:
        raise NotFound(f"conversation {cid} not found")
    return row[0], row[1]


def _ensure_agent(conn: sqlite3.Connection, name: str, at: float) -> None:
    # The one place an agent comes into being: its name is checked here, whoever calls.
    person_name(name)
    check_active(conn, name)
    conn.execute(
        "INSERT INTO agents (name, display_name, created_at, last_seen_at) VALUES (?, ?, ?, ?)"
        " ON CONFLICT(name) DO UPDATE SET last_seen_at = excluded.last_seen_at",
        (name, name, at, at),
    )


def _require_supervisor(conn: sqlite3.Connection, by: str, action: str) -> None:
    if role_of(conn, by) != "supervisor":
        raise Forbidden(f"only a supervisor can {action} ({by} is not one)")


def _is_supervisor(conn: sqlite3.Connection, by: str) -> bool:
    return role_of(conn, by) == "supervisor"


def _refuse(cid: int, state: str, owner: str | None, action: str) -> InvalidTransition:
    if state == "human" and owner:
        return Taken(owner)
    if state == "resolved":
        return InvalidTransition(f"conversation {cid} is resolved", state=state)
    where = {"bot": "with the bot", "waiting": "waiting in the queue"}.get(state, state)
    return InvalidTransition(f"cannot {action} conversation {cid}: it is {where}", state=state)


def _forget_abusive_subject(conn: sqlite3.Connection, cid: int, message_id: int) -> None:
    # The subject is the first customer message's opening words, shown on the wall and in a
    # customer's history. Abusive text is masked there (agent protection), and the subject
    # outlives the conversation's `abuse` reason: the next customer message gives a new one.
    row = conn.execute(
        "SELECT m.text, c.subject FROM messages m JOIN conversations c ON c.id = m.conversation_id"
        " WHERE m.id = ? AND c.id = ?",
        (message_id, cid),
    ).fetchone()
    if row is not None and row[1] and " ".join(row[0].split())[:SUBJECT_CHARS] == row[1]:
        conn.execute("UPDATE conversations SET subject = '' WHERE id = ?", (cid,))


# Whether a verdict changes what agents see: the level, the reasons, the language, the judge's
# reasons, or the score by 0.05 or more (a smaller wobble is not worth a row write and an event).
_TRIAGE_CHANGED = (
    "(level IS NOT ? OR reasons IS NOT ? OR abs(score - ?) >= 0.05"
    " OR lang IS NOT coalesce(?, lang) OR model_reasons IS NOT ?)"
)


def _checked_level(mark: TriageMark) -> None:
    if mark.level not in LEVELS:
        raise InvalidInput(f"unknown triage level {mark.level!r}")


def _mark_message(conn: sqlite3.Connection, cid: int, message_id: int, mark: TriageMark) -> None:
    """The verdict on one message (and its ``abusive`` mark)."""
    reasons = json.dumps(list(mark.reasons), separators=(",", ":"))
    if mark.abusive is None:
        conn.execute(
            "UPDATE messages SET level = ?, score = ?, reasons = ? WHERE id = ?",
            (mark.level, mark.score, reasons, message_id),
        )
    else:
        # One statement for the verdict and the mark: the hub marks every customer
        # message, and a second UPDATE of the same row was a tenth of a bot reply's cost.
        # A customer message has no meta of its own yet, as a rule: then the whole
        # document is a constant, and SQLite need not parse and rebuild JSON.
        flag = "true" if mark.abusive else "false"
        conn.execute(
            "UPDATE messages SET level = ?, score = ?, reasons = ?,"
            " meta = CASE WHEN meta IS NULL THEN ?"
            " ELSE json_set(meta, '$.abusive', json(?)) END WHERE id = ?",
            (mark.level, mark.score, reasons, _ABUSIVE_META[mark.abusive], flag, message_id),
        )
    if mark.abusive or (mark.abusive is None and "abuse" in mark.reasons):
        _forget_abusive_subject(conn, cid, message_id)


def _triage_columns(mark: TriageMark) -> tuple[str, tuple[Any, ...]]:
    """``SET`` assignments storing ``mark`` on its conversation, for an UPDATE of other columns too.

    The same outcome as :func:`_apply_triage`'s conditional UPDATE, in one statement: every
    assignment reads the row as it was, so the score and the judge's line move only when the
    verdict changed, and the rest is equal to what is stored when it did not.
    """
    reasons = json.dumps(list(mark.reasons), separators=(",", ":"))
    model = (
        json.dumps(list(mark.model_reasons), separators=(",", ":")) if mark.model_reasons else None
    )
    changed = (mark.level, reasons, mark.score, mark.lang, model)
    return (
        "level = ?, reasons = ?, lang = coalesce(?, lang), model_reasons = ?,"
        f" score = CASE WHEN {_TRIAGE_CHANGED} THEN ? ELSE score END,"
        f" model_why = CASE WHEN {_TRIAGE_CHANGED} THEN ? ELSE model_why END,"
        " triage_state = coalesce(?, triage_state)",
        (
            mark.level,
            reasons,
            mark.lang,
            model,
            *changed,
            mark.score,
            *changed,
            mark.model_why or None,
            mark.state,
        ),
    )


def _apply_triage(
    conn: sqlite3.Connection, cid: int, message_id: int | None, mark: TriageMark
) -> bool:
    _checked_level(mark)
    if message_id is not None:
        _mark_message(conn, cid, message_id, mark)
    reasons = json.dumps(list(mark.reasons), separators=(",", ":"))
    model = (
        json.dumps(list(mark.model_reasons), separators=(",", ":")) if mark.model_reasons else None
    )
    why = mark.model_why or None
    cur = conn.execute(
        "UPDATE conversations SET level = ?, score = ?, reasons = ?,"
        " triage_state = coalesce(?, triage_state), lang = coalesce(?, lang),"
        " model_reasons = ?, model_why = ?"
        f" WHERE id = ? AND {_TRIAGE_CHANGED}",
        (
            mark.level,
            mark.score,
            reasons,
            mark.state,
            mark.lang,
            model,
            why,
            cid,
            mark.level,
            reasons,
            mark.score,
            mark.lang,
            model,
        ),
    )
    if cur.rowcount == 0 and mark.state is not None:
        conn.execute("UPDATE conversations SET triage_state = ? WHERE id = ?", (mark.state, cid))
    return cur.rowcount > 0


# --- agents -----------------------------------------------------------------------------


def register_agent(
    store: Store, name: str, *, role: str = "agent", display_name: str | None = None
) -> None:
    """Create or update an agent (``role``: ``agent`` or ``supervisor``).

    An account holder's role is the account's: asking for another one is refused here, so a
    console started with or without ``--supervisor`` neither promotes nor demotes it.
    """
    name = person_name(name)
    if role not in ("agent", "supervisor"):
        raise InvalidInput(f"unknown role {role!r} (agent or supervisor)")
    if display_name is not None:
        display_name = _name(display_name, "display name")
    with store.write() as conn:
        at = _stamp(None)
        held = account_role(conn, name)
        if held is not None and held != role:
            raise Forbidden(
                f"{name} is an account with the role {held}; only `tandem agent role` changes it"
            )
        conn.execute(
            "INSERT INTO agents (name, display_name, role, created_at, last_seen_at)"
            " VALUES (?, ?, ?, ?, ?) ON CONFLICT(name) DO UPDATE SET role = excluded.role,"
            " display_name = coalesce(excluded.display_name, display_name),"
            " last_seen_at = excluded.last_seen_at",
            (name, display_name or name, role, at, at),
        )


# --- conversations and messages -----------------------------------------------------------


def open_conversation(
    store: Store,
    customer_name: str,
    *,
    external_id: str | None = None,
    channel: str = "api",
    token_hash: str | None = None,
    at: float | None = None,
) -> int:
    """Open a conversation owned by the bot; create the customer if new.

    :param customer_name: shown to agents
    :param external_id: the channel's id for the customer; the same id reuses the customer
    :param channel: where the customer writes from (``api``, ``web``, ``sim``)
    :param token_hash: hash of the customer token that may read and write this conversation
    :return: the new conversation's id
    """
    customer_name = _name(customer_name, "customer name")
    external_id = optional_key(external_id, "external_id", 128)
    channel = _name(channel, "channel")
    with store.write() as conn:
        at = _stamp(at)
        customer_id = None
        if external_id is not None:
            row = conn.execute(
                "SELECT id FROM customers WHERE external_id = ?", (external_id,)
            ).fetchone()
            if row is not None:
                customer_id = row[0]
                conn.execute(
                    "UPDATE customers SET name = ? WHERE id = ?", (customer_name, customer_id)
                )
        if customer_id is None:
            customer_id = conn.execute(
                "INSERT INTO customers (external_id, name, created_at) VALUES (?, ?, ?)",
                (external_id, customer_name, at),
            ).lastrowid
        cid = conn.execute(
            "INSERT INTO conversations (customer_id, channel, state, token_hash, created_at, updated_at)"
            " VALUES (?, ?, ?, ?, ?, ?)",
            (customer_id, channel, OPENED, token_hash, at, at),
        ).lastrowid
        assert cid is not None
        _event(conn, at, cid, "opened", "customer", None, OPENED, data={"channel": channel})
    return cid


def add_customer_message(
    store: Store,
    conversation_id: int,
    text: str,
    *,
    idempotency_key: str | None = None,
    reopen: Callable[[Closing | None], Reopening] | None = None,
    at: float | None = None,
) -> Posted:
    """Store a customer's message exactly once; reopen the conversation if it was resolved.

    :param idempotency_key: the channel's id for this message; a retry with the same key
        returns the first message's id with ``duplicate=True`` and writes nothing
    :param reopen: where a resolved conversation goes, given how it was closed (the policy:
        ``console.policy.reopen_route``); called inside this transaction. Without it, back
        to the bot.
    """
    text = _text(text)
    idempotency_key = optional_key(idempotency_key, "idempotency_key", 200)
    with store.write(conversation=conversation_id) as conn:
        at = _stamp(at)
        if idempotency_key is None:
            state, _owner = _load(conn, conversation_id)
        else:
            # The state and a message already stored under this key, in one statement (on
            # PostgreSQL each is a round trip, under the conversation's lock). Not without a
            # key: PostgreSQL would plan the statement anew each time for a NULL key.
            row = conn.execute(
                "SELECT c.state, (SELECT m.id FROM messages m WHERE m.conversation_id = c.id"
                " AND m.idempotency_key = ?) FROM conversations c WHERE c.id = ?",
                (idempotency_key, conversation_id),
            ).fetchone()
            if row is None:
                raise NotFound(f"conversation {conversation_id} not found")
            state = row[0]
            if row[1] is not None:
                return Posted(row[1], True, state)
        reopened = REOPEN.allowed(state)
        if reopened:
            closing = last_closing(conn, conversation_id)
            route = reopen(closing) if reopen is not None else Reopening(REOPEN.target)
            state = _reopen(conn, conversation_id, route, closing, at)
        mid = conn.execute(
            "INSERT INTO messages (conversation_id, role, author, text, created_at, idempotency_key)"
            " VALUES (?, 'customer', 'customer', ?, ?, ?)",
            (conversation_id, text, at, idempotency_key),
        ).lastrowid
        assert mid is not None
        conn.execute(
            "UPDATE conversations SET message_count = message_count + 1, last_message_at = ?,"
            " last_customer_at = ?, updated_at = ?,"
            " subject = CASE WHEN subject = '' THEN ? ELSE subject END WHERE id = ?",
            (at, at, at, " ".join(text.split())[:SUBJECT_CHARS], conversation_id),
        )
        # Last, sent with the COMMIT (on PostgreSQL the event holds the feed lock to it).
        at_commit(
            conn,
            _EVENT_INSERT,
            [
                (
                    at,
                    conversation_id,
                    "message",
                    "customer",
                    None,
                    None,
                    mid,
                    _MESSAGE_DATA["customer", False],
                )
            ],
        )
    return Posted(mid, False, state, reopened)


def _reopen(
    conn: sqlite3.Connection, cid: int, route: Reopening, closing: Closing | None, at: float
) -> str:
    """Move a resolved conversation where ``route`` says; return the state it is in now."""
    if route.state not in REOPEN.targets:
        raise InvalidTransition(
            f"a resolved conversation cannot reopen to {route.state!r}", state="resolved"
        )
    if route.agent is not None:
        try:
            check_active(conn, route.agent)
        except Forbidden:
            # The person was disabled since: the customer still reaches someone, via the queue.
            route = Reopening(
                "waiting", note=f"Reopened by the customer; {route.agent}'s account is disabled."
            )
    if route.state == "human":
        assert route.agent is not None
        _ensure_agent(conn, route.agent, at)
        conn.execute(
            "UPDATE conversations SET state = 'human', owner = ?, resolved_at = NULL,"
            " waiting_since = NULL, claimed_at = ?, first_human_reply_at = NULL,"
            " bot_fallbacks = 0, version = version + 1 WHERE id = ?",
            (route.agent, at, cid),
        )
    else:
        conn.execute(
            "UPDATE conversations SET state = ?, owner = NULL, resolved_at = NULL,"
            " waiting_since = ?, bot_fallbacks = 0, version = version + 1 WHERE id = ?",
            (route.state, at if route.state == "waiting" else None, cid),
        )
    data: dict[str, Any] = {}
    if route.agent is not None:
        data["owner"] = route.agent
    if closing is not None:
        data["closed_by"] = closing.by
        if closing.agent is not None:
            data["had"] = closing.agent
    _event(conn, at, cid, REOPEN.kind, "customer", "resolved", route.state, data=data or None)
    if route.note:
        # For the agents: why it is back and with whom (never shown to the customer).
        _insert_plain(conn, cid, "note", "tandem", route.note, at)
    return route.state


@dataclass(frozen=True, slots=True)
class BotReply:
    """One reply of the bot, as :func:`bot_reply` takes it (for :func:`bot_replies`)."""

    conversation_id: int
    text: str
    reply_to: int | None = None
    fallback: bool = False
    meta: dict[str, Any] | None = None
    triage: TriageMark | None = None
    llm_fallback: bool = False


def bot_reply(
    store: Store,
    conversation_id: int,
    text: str,
    *,
    reply_to: int | None = None,
    fallback: bool = False,
    meta: dict[str, Any] | None = None,
    triage: TriageMark | None = None,
    llm_fallback: bool = False,
    at: float | None = None,
) -> int:
    """Post the bot's reply, but only while the bot owns the conversation (invariant 3).

    The ownership check and the insert are one transaction, so a reply the bot began
    generating before an agent claimed the conversation is refused, never posted.

    :param reply_to: the customer message answered; answering it twice raises AlreadyAnswered
    :param fallback: the bot did not know; counted toward the hand-off policy
    :param meta: e.g. ``{"kb": ["KB-012"], "engine": "embedded"}``
    :param triage: the verdict on ``reply_to``, stored in the same transaction
    :param llm_fallback: the LLM's answer was not used for this turn (counted per conversation)
    :raises NotOwner: the conversation is waiting, with an agent or resolved
    """
    reply = BotReply(conversation_id, _text(text), reply_to, fallback, meta, triage, llm_fallback)
    with store.write(conversation=conversation_id) as conn:
        return _post_bot_reply(conn, reply, _stamp(at))


#: What :func:`bot_replies` gives for a reply the store refused.
Refusal = InvalidInput | InvalidTransition | NotFound


def bot_replies(store: Store, replies: list[BotReply]) -> list[int | Refusal]:
    """Post several bot replies in one transaction, each with its own checks.

    Each reply gets :func:`bot_reply`'s checks, made before its first write: one refused (an
    agent claimed the conversation, the message was answered already, an empty text) writes
    nothing and is given back as its exception, and the others are posted. Should a reply
    fail after it wrote, the group is posted again with a savepoint per reply. One commit for
    many replies is most of the saving: the commit, not the statements, is what a reply costs.

    :return: per reply, in order: the new message's id, or the refusal
    :raises DatabaseUnavailable: the transaction failed as a whole: none was posted
    """
    results: list[int | Refusal] = []
    todo: list[tuple[int, BotReply]] = []
    for i, reply in enumerate(replies):
        try:
            text = _text(reply.text)
        except InvalidInput as exc:
            results.append(exc)
            continue
        results.append(0)
        todo.append((i, reply if text is reply.text else replace(reply, text=text)))
    if not todo:
        return results
    try:
        return _post_group(store, todo, results)
    except _Undo:
        # A reply failed after its first write (never expected: every refusal is found
        # before it): the whole group was rolled back; post it again, each reply under a
        # savepoint of its own.
        for i, _ in todo:
            results[i] = 0
        return _post_group(store, todo, results, savepoints=True)


class _Undo(Exception):
    """A reply of a group failed after it wrote: the group must be rolled back."""


def _post_group(
    store: Store,
    todo: list[tuple[int, BotReply]],
    results: list[int | Refusal],
    *,
    savepoints: bool = False,
) -> list[int | Refusal]:
    # Scoped to the group's conversations (each reply touches its own only, as bot_reply
    # does): on PostgreSQL the channels' writes to other conversations go on meanwhile.
    events: list[tuple[Any, ...]] = []
    with store.write(conversation=[reply.conversation_id for _, reply in todo]) as conn:
        for i, reply in todo:
            at = _stamp(None)
            if savepoints:
                conn.execute("SAVEPOINT bot_reply")
                try:
                    _check_bot_reply(conn, reply, at)
                    results[i] = _finish_bot_reply(conn, reply, at)
                except (InvalidInput, InvalidTransition, NotFound) as exc:
                    conn.execute("ROLLBACK TO bot_reply")
                    results[i] = exc
                conn.execute("RELEASE bot_reply")
                continue
            # Every refusal is found before the reply's first write, so a refused reply
            # leaves nothing to undo and needs no savepoint (two statements of the six a
            # reply costs; on PostgreSQL each is a round trip under the write lock).
            try:
                _check_bot_reply(conn, reply, at)
            except (InvalidInput, InvalidTransition, NotFound) as exc:
                results[i] = exc
                continue
            try:
                results[i] = _finish_bot_reply(conn, reply, at, events)
            except (InvalidInput, InvalidTransition, NotFound) as exc:
                raise _Undo() from exc
        # The feed's events last, in one batch sent with the COMMIT: on PostgreSQL the
        # first one takes the feed lock that every writer's event waits for, held to the
        # commit.
        at_commit(conn, _EVENT_INSERT, events)
    return results


def _post_bot_reply(conn: sqlite3.Connection, reply: BotReply, at: float) -> int:
    # Alone in its transaction: a second answer is refused by the insert's unique index
    # (the whole transaction rolls back), no check needed before the first write.
    _check_bot_reply(conn, reply, at, guard=False)
    events: list[tuple[Any, ...]] = []
    mid = _finish_bot_reply(conn, reply, at, events)
    # Its event last, sent with the COMMIT (on PostgreSQL it holds the feed lock to it).
    at_commit(conn, _EVENT_INSERT, events)
    return mid


def _check_bot_reply(
    conn: sqlite3.Connection, reply: BotReply, at: float, *, guard: bool = True
) -> None:
    """Refuse ``reply`` or make its first write: the conversation's row (counts, verdict).

    The ownership check and the "answered already" check are the UPDATE itself (``WHERE
    state = 'bot'``, no bot reply to ``reply_to`` yet), which also stores the verdict: a
    reply is 4 statements, not 7, and a refused one has written nothing.
    """
    conversation_id, triage, reply_to = reply.conversation_id, reply.triage, reply.reply_to
    if triage is not None and triage.level not in LEVELS:
        # Refused as before this check came first: not the bot's, or else the level.
        state, owner = _load(conn, conversation_id)
        if state != POSTS_IN["bot"]:
            raise _not_owner(conversation_id, state, owner)
        _checked_level(triage)
    sets, params = _triage_columns(triage) if triage is not None else ("", ())
    unanswered = ""
    if reply_to is not None and guard:
        # Under the write lock nobody else can answer it between this check and the insert
        # (whose unique index stays the last word).
        unanswered = " AND NOT EXISTS (SELECT 1 FROM messages WHERE reply_to = ? AND role = 'bot')"
        params = (*params, conversation_id, POSTS_IN["bot"], reply_to)
    else:
        params = (*params, conversation_id, POSTS_IN["bot"])
    cur = conn.execute(
        "UPDATE conversations SET message_count = message_count + 1, last_message_at = ?,"
        " updated_at = ?, bot_fallbacks = bot_fallbacks + ?, llm_fallbacks = llm_fallbacks + ?"
        f"{', ' + sets if sets else ''} WHERE id = ? AND state = ?{unanswered}",
        (at, at, 1 if reply.fallback else 0, 1 if reply.llm_fallback else 0, *params),
    )
    if cur.rowcount == 0:
        state, owner = _load(conn, conversation_id)
        if state == POSTS_IN["bot"]:
            raise _already_answered(reply_to)
        raise _not_owner(conversation_id, state, owner)


def _not_owner(conversation_id: int, state: str, owner: str | None) -> NotOwner:
    return NotOwner(
        f"the bot does not own conversation {conversation_id} ({_owner_words(state, owner)})",
        state=state,
        owner=owner,
    )


def _already_answered(reply_to: int | None) -> AlreadyAnswered:
    return AlreadyAnswered(f"the bot already answered message {reply_to}", state=POSTS_IN["bot"])


def _finish_bot_reply(
    conn: sqlite3.Connection,
    reply: BotReply,
    at: float,
    events: list[tuple[Any, ...]] | None = None,
) -> int:
    """The rest of a reply :func:`_check_bot_reply` let through: the message and its event.

    :param events: add the event's row here (for the caller to insert) instead of inserting it
    """
    conversation_id, triage, reply_to = reply.conversation_id, reply.triage, reply.reply_to
    if triage is not None and reply_to is not None:
        _mark_message(conn, conversation_id, reply_to, triage)
    meta = reply.meta
    try:
        mid = conn.execute(
            "INSERT INTO messages (conversation_id, role, author, text, created_at, reply_to, meta)"
            " VALUES (?, 'bot', 'bot', ?, ?, ?, ?)",
            (conversation_id, reply.text, at, reply_to, json.dumps(meta) if meta else None),
        ).lastrowid
    except sqlite3.IntegrityError:
        raise _already_answered(reply_to) from None
    assert mid is not None
    row = (
        at,
        conversation_id,
        "message",
        "bot",
        None,
        None,
        mid,
        _MESSAGE_DATA["bot", reply.fallback],
    )
    if events is not None:
        events.append(row)
    else:
        conn.execute(_EVENT_INSERT, row)
    return mid


def _owner_words(state: str, owner: str | None) -> str:
    if state == "human":
        return f"taken by {owner}"
    return {"waiting": "waiting for a person", "resolved": "resolved"}.get(state, state)


def record_triage(
    store: Store,
    conversation_id: int,
    mark: TriageMark,
    *,
    message_id: int | None = None,
    actor: str = "triage",
    at: float | None = None,
) -> bool:
    """Store a triage verdict; append a ``triaged`` event when the level or reasons changed.

    :return: whether the conversation's level, score or reasons changed
    """
    with store.write(conversation=conversation_id) as conn:
        at = _stamp(at)
        _load(conn, conversation_id)
        changed = _apply_triage(conn, conversation_id, message_id, mark)
        if changed:
            _triaged(conn, at, conversation_id, actor, message_id, mark)
    return changed


def _triaged(
    conn: sqlite3.Connection,
    at: float,
    cid: int,
    actor: str,
    message_id: int | None,
    mark: TriageMark,
) -> None:
    data: dict[str, Any] = {
        "level": mark.level,
        "score": round(mark.score, 3),
        "reasons": list(mark.reasons),
    }
    if mark.lang:
        data["lang"] = mark.lang
    if mark.model_reasons:
        data["model_reasons"] = list(mark.model_reasons)
        data["model_why"] = mark.model_why
    _event(conn, at, cid, "triaged", actor, message_id=message_id, data=data)


def escalate(
    store: Store,
    conversation_id: int,
    *,
    reasons: list[str],
    by: str = "hub",
    level: str | None = None,
    score: float | None = None,
    note: str | None = None,
    triage: TriageMark | None = None,
    message: str | None = None,
    message_meta: dict[str, Any] | None = None,
    llm_fallback: bool = False,
    bot_fallback: bool = False,
    message_id: int | None = None,
    at: float | None = None,
) -> int | None:
    """Move a bot conversation to the queue, saying why.

    :param reasons: why a person is needed (triage vocabulary, or e.g. ``agent_request``)
    :param by: ``hub``, ``customer``, ``bot`` or an agent's name
    :param triage: the verdict that sent it, stored on the conversation
    :param message_id: the customer message ``triage`` is about: it carries the verdict too,
        and a ``triaged`` event (actor ``triage``) precedes the escalation when the level or
        reasons changed, all in the same transaction as the move
    :param message: a system line for the customer ("a person will be with you in ~3 min"),
        posted in the same transaction
    :param message_meta: stored with that line (for agents: why the bot's answer was not used)
    :param llm_fallback: the LLM's answer for this turn was not used (counted per conversation)
    :param bot_fallback: the bot's answer to this turn was a fallback ("I don't know"), not
        sent because ``message`` hands over instead: counted in ``bot_fallbacks`` as a sent
        one is
    :return: the id of the system message, if one was posted
    """
    if not reasons:
        raise InvalidInput("an escalation needs at least one reason")
    by = _name(by, "by")
    message = _text(message) if message else None
    with store.write(conversation=conversation_id) as conn:
        at = _stamp(at)
        state, owner = _load(conn, conversation_id)
        _require(ESCALATE, conversation_id, state, owner, "escalate")
        if triage is not None:
            changed = _apply_triage(conn, conversation_id, message_id, triage)
            if changed and message_id is not None:
                _triaged(conn, at, conversation_id, "triage", message_id, triage)
        elif level is not None:
            _apply_triage(
                conn, conversation_id, None, TriageMark(level, score or 0.0, list(reasons))
            )
        conn.execute(
            "UPDATE conversations SET state = ?, waiting_since = ?, updated_at = ?,"
            " llm_fallbacks = llm_fallbacks + ?, bot_fallbacks = bot_fallbacks + ?,"
            " version = version + 1 WHERE id = ?",
            (
                ESCALATE.target,
                at,
                at,
                1 if llm_fallback else 0,
                1 if bot_fallback else 0,
                conversation_id,
            ),
        )
        data: dict[str, Any] = {"reasons": list(reasons)}
        if level or triage:
            data["level"] = level or (triage.level if triage else None)
        if note:
            data["note"] = note
        _event(conn, at, conversation_id, ESCALATE.kind, by, state, ESCALATE.target, data=data)
        mid = None
        if message:
            mid = _insert_plain(
                conn, conversation_id, "system", "tandem", message, at, meta=message_meta
            )
    return mid


def _insert_plain(
    conn: sqlite3.Connection,
    cid: int,
    role: str,
    author: str,
    text: str,
    at: float,
    *,
    meta: dict[str, Any] | None = None,
) -> int:
    mid = conn.execute(
        "INSERT INTO messages (conversation_id, role, author, text, created_at, meta)"
        " VALUES (?, ?, ?, ?, ?, ?)",
        (cid, role, author, text, at, json.dumps(meta) if meta else None),
    ).lastrowid
    assert mid is not None
    if role != "note":
        conn.execute(
            "UPDATE conversations SET message_count = message_count + 1, last_message_at = ?,"
            " updated_at = ? WHERE id = ?",
            (at, at, cid),
        )
    _event(conn, at, cid, "message", author, message_id=mid, data=_MESSAGE_DATA[role, False])
    return mid


def _give_to_agent(conn: sqlite3.Connection, cid: int, agent: str, at: float) -> None:
    _ensure_agent(conn, agent, at)
    conn.execute(
        "UPDATE conversations SET state = ?, owner = ?, claimed_at = ?, updated_at = ?,"
        " first_human_reply_at = NULL, version = version + 1 WHERE id = ?",
        (CLAIM.target, agent, at, at, cid),
    )


def _back_to_bot(conn: sqlite3.Connection, cid: int, at: float) -> None:
    # A fresh start for the bot: its fallback count restarts, nobody is waiting any more.
    conn.execute(
        "UPDATE conversations SET state = ?, owner = NULL, waiting_since = NULL,"
        " bot_fallbacks = 0, updated_at = ?, version = version + 1 WHERE id = ?",
        (HAND_BACK.target, at, cid),
    )


def claim(store: Store, conversation_id: int, agent: str, *, at: float | None = None) -> None:
    """An agent takes the conversation from the bot or the queue; atomic under contention.

    Claiming a conversation one already owns is a no-op.

    :raises Taken: another agent owns it ("taken by ana")
    :raises InvalidTransition: it is resolved
    """
    agent = _name(agent)
    with store.write() as conn:
        at = _stamp(at)
        state, owner = _load(conn, conversation_id)
        if state == CLAIM.target and owner == agent:
            return
        _require(CLAIM, conversation_id, state, owner, "claim")
        _give_to_agent(conn, conversation_id, agent, at)
        _event(
            conn, at, conversation_id, CLAIM.kind, agent, state, CLAIM.target, data={"owner": agent}
        )


def assign(
    store: Store, conversation_id: int, agent: str, *, by: str, at: float | None = None
) -> None:
    """A supervisor gives a waiting conversation to an agent."""
    agent = _name(agent)
    by = _name(by, "by")
    with store.write() as conn:
        at = _stamp(at)
        _require_supervisor(conn, by, "assign")
        state, owner = _load(conn, conversation_id)
        _require(ASSIGN, conversation_id, state, owner, "assign")
        _give_to_agent(conn, conversation_id, agent, at)
        _event(
            conn, at, conversation_id, ASSIGN.kind, by, state, ASSIGN.target, data={"owner": agent}
        )


def release(store: Store, conversation_id: int, *, by: str, at: float | None = None) -> None:
    """A supervisor sends a waiting conversation back to the bot."""
    by = _name(by, "by")
    with store.write() as conn:
        at = _stamp(at)
        _require_supervisor(conn, by, "release")
        state, owner = _load(conn, conversation_id)
        _require(RELEASE, conversation_id, state, owner, "release")
        _back_to_bot(conn, conversation_id, at)
        _event(conn, at, conversation_id, RELEASE.kind, by, state, RELEASE.target)


def agent_reply(
    store: Store,
    conversation_id: int,
    agent: str,
    text: str,
    *,
    draft_id: int | None = None,
    at: float | None = None,
) -> int:
    """The owning agent writes to the customer.

    :raises NotOwner: the agent does not own the conversation
    """
    text = _text(text)
    agent = _name(agent)
    with store.write() as conn:
        at = _stamp(at)
        check_active(conn, agent)
        state, owner = _load(conn, conversation_id)
        if state != POSTS_IN["agent"] or owner != agent:
            if state == POSTS_IN["agent"]:
                raise Taken(owner or "?")
            raise NotOwner(
                f"{agent} does not own conversation {conversation_id} ({_owner_words(state, owner)})",
                state=state,
                owner=owner,
            )
        mid = conn.execute(
            "INSERT INTO messages (conversation_id, role, author, text, created_at, meta)"
            " VALUES (?, 'agent', ?, ?, ?, ?)",
            (
                conversation_id,
                agent,
                text,
                at,
                json.dumps({"draft_id": draft_id}) if draft_id else None,
            ),
        ).lastrowid
        assert mid is not None
        conn.execute(
            "UPDATE conversations SET message_count = message_count + 1, last_message_at = ?,"
            " updated_at = ?, first_human_reply_at = coalesce(first_human_reply_at, ?) WHERE id = ?",
            (at, at, at, conversation_id),
        )
        _event(
            conn,
            at,
            conversation_id,
            "message",
            agent,
            message_id=mid,
            data=_MESSAGE_DATA["agent", False],
        )
    return mid


def add_note(
    store: Store, conversation_id: int, author: str, text: str, *, at: float | None = None
) -> int:
    """An internal note on the conversation; never shown to the customer."""
    text = _text(text, "note")
    author = _name(author)
    with store.write() as conn:
        at = _stamp(at)
        _load(conn, conversation_id)
        _ensure_agent(conn, author, at)
        return _insert_plain(conn, conversation_id, "note", author, text, at)


def post_system(
    store: Store,
    conversation_id: int,
    text: str,
    *,
    meta: dict[str, Any] | None = None,
    at: float | None = None,
) -> int:
    """A system line the customer sees ("Ana joined the conversation").

    :param meta: stored with it, for agents and for the hub (what the line is about)
    """
    text = _text(text)
    with store.write() as conn:
        at = _stamp(at)
        _load(conn, conversation_id)
        return _insert_plain(conn, conversation_id, "system", "tandem", text, at, meta=meta)


def hand_back(store: Store, conversation_id: int, *, by: str, at: float | None = None) -> None:
    """Return a conversation from a person to the bot (the owner, or a supervisor)."""
    by = _name(by, "by")
    with store.write() as conn:
        at = _stamp(at)
        check_active(conn, by)
        state, owner = _load(conn, conversation_id)
        _require(HAND_BACK, conversation_id, state, owner, "hand back")
        if owner != by and not _is_supervisor(conn, by):
            raise Taken(owner or "?")
        _back_to_bot(conn, conversation_id, at)
        _event(
            conn,
            at,
            conversation_id,
            HAND_BACK.kind,
            by,
            state,
            HAND_BACK.target,
            data={"from": owner},
        )


def transfer(
    store: Store,
    conversation_id: int,
    to_agent: str,
    *,
    by: str,
    reason: str | None = None,
    at: float | None = None,
    summary: str | None = None,
    summary_meta: dict[str, Any] | None = None,
) -> str:
    """A supervisor moves a conversation from one agent to another.

    :param reason: why, kept in the feed event (``barge``: the supervisor took it for
        themselves, :func:`store.oversight.barge`)
    :param summary: the hand-over summary that goes with it, stored in the same transaction
        as an internal note by ``by`` whose meta is ``{"handover": summary_meta}`` (see
        :mod:`store.handover`); the transfer event names the note
    :return: the agent who held it
    """
    to_agent = _name(to_agent)
    by = _name(by, "by")
    if summary is not None:
        summary = _text(summary, "summary")
    with store.write() as conn:
        at = _stamp(at)
        _require_supervisor(conn, by, "transfer")
        state, owner = _load(conn, conversation_id)
        _require(TRANSFER, conversation_id, state, owner, "transfer")
        if owner == to_agent:
            raise InvalidTransition(
                f"conversation {conversation_id} is already {to_agent}'s", state=state
            )
        _ensure_agent(conn, to_agent, at)
        conn.execute(
            "UPDATE conversations SET owner = ?, claimed_at = ?, updated_at = ?, version = version + 1"
            " WHERE id = ?",
            (to_agent, at, at, conversation_id),
        )
        data: dict[str, Any] = {"from": owner, "owner": to_agent}
        if reason:
            data["reason"] = reason
        if summary is not None:
            _ensure_agent(conn, by, at)
            data["note"] = _insert_plain(
                conn,
                conversation_id,
                "note",
                by,
                summary,
                at,
                meta={HANDOVER_KEY: dict(summary_meta or {})},
            )
        _event(conn, at, conversation_id, TRANSFER.kind, by, state, TRANSFER.target, data=data)
    return owner or ""


def resolve(
    store: Store,
    conversation_id: int,
    *,
    by: str,
    channel: bool = False,
    at: float | None = None,
) -> None:
    """Close a conversation. With a person it takes the owner or a supervisor.

    :param channel: the channel itself closed it (an integration: the customer's chat ended),
        so it closes whoever holds it
    """
    by = _name(by, "by")
    with store.write() as conn:
        at = _stamp(at)
        check_active(conn, by)
        state, owner = _load(conn, conversation_id)
        _require(RESOLVE, conversation_id, state, owner, "resolve")
        if state == "human" and owner != by and not channel and not _is_supervisor(conn, by):
            raise Taken(owner or "?")
        conn.execute(
            "UPDATE conversations SET state = ?, owner = NULL, resolved_at = ?,"
            " waiting_since = NULL, updated_at = ?, version = version + 1 WHERE id = ?",
            (RESOLVE.target, at, at, conversation_id),
        )
        _event(conn, at, conversation_id, RESOLVE.kind, by, state, RESOLVE.target)


def abandon(
    store: Store, conversation_id: int, *, by: str = "hub", at: float | None = None
) -> None:
    """The customer left while waiting: close the conversation as abandoned."""
    by = _name(by, "by")
    with store.write() as conn:
        at = _stamp(at)
        state, owner = _load(conn, conversation_id)
        _require(ABANDON, conversation_id, state, owner, "abandon")
        conn.execute(
            "UPDATE conversations SET state = ?, resolved_at = ?, waiting_since = NULL,"
            " updated_at = ?, version = version + 1 WHERE id = ?",
            (ABANDON.target, at, at, conversation_id),
        )
        _event(conn, at, conversation_id, ABANDON.kind, by, state, ABANDON.target)
