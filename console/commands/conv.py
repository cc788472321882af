"""``tandem conv ...``: the conversation lifecycle from the shell.

For scripts, integrators and operators: every action is one lifecycle call on the store,
refused with a one-line reason ("taken by ana") when the state machine says no.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable
from datetime import datetime
from types import ModuleType
from typing import Any

from console.commands.options import add_db_option
from console.errors import UsageError


def _read_text(value: str) -> str:
    if value == "-":
        return sys.stdin.read()
    return value


def _person(value: str) -> str:
    """An agent's name as argparse checks it: the store's rule, refused before any write."""
    from store.accounts import valid_name
    from store.errors import InvalidInput

    try:
        return valid_name(value)
    except InvalidInput as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def register(sub: argparse._SubParsersAction) -> None:
    parser = sub.add_parser(
        "conv",
        help="drive one conversation's lifecycle (open, post, claim, reply, hand back, resolve...)",
        description="Drive the conversation lifecycle from the shell. Each action is one "
        "transaction on the store; a refused move prints why and exits 1.",
        epilog="Example: tandem conv open Maya && tandem conv post 1 'my card was stolen' && "
        "tandem conv claim 1 --agent ana",
    )
    csub = parser.add_subparsers(dest="conv_command", metavar="ACTION", required=True)

    def action(
        name: str, help_text: str, func: object, *, cid: bool = True
    ) -> argparse.ArgumentParser:
        p = csub.add_parser(name, help=help_text, description=help_text)
        add_db_option(p)
        if cid:
            p.add_argument("id", type=int, help="conversation id")
        p.set_defaults(func=func)
        return p

    p = action("open", "open a conversation for a customer (prints its id)", _open, cid=False)
    p.add_argument("customer", help="customer name")
    p.add_argument("--external-id", help="the channel's id for this customer")
    p.add_argument("--channel", default="cli", help="channel name (default: cli)")

    p = action("post", "add a customer message (TEXT or - for stdin)", _post)
    p.add_argument("text")
    p.add_argument("--key", help="idempotency key: a retry with the same key is stored once")

    p = action(
        "claim",
        "an agent takes the conversation",
        _move(lambda lc, st, a: lc.claim(st, a.id, a.agent), "conversation {a.id} is {a.agent}'s"),
    )
    p.add_argument("--agent", type=_person, required=True)

    p = action(
        "reply",
        "the owning agent replies (TEXT or - for stdin)",
        _move(lambda lc, st, a: lc.agent_reply(st, a.id, a.agent, _read_text(a.text)), "{result}"),
    )
    p.add_argument("text")
    p.add_argument("--agent", type=_person, required=True)

    p = action(
        "note",
        "add an internal note (never shown to the customer)",
        _move(lambda lc, st, a: lc.add_note(st, a.id, a.agent, _read_text(a.text)), "{result}"),
    )
    p.add_argument("text")
    p.add_argument("--agent", type=_person, required=True)

    p = action(
        "escalate",
        "send a bot conversation to the queue",
        _move(
            lambda lc, st, a: lc.escalate(st, a.id, reasons=a.reason, by=a.by),
            "conversation {a.id} is waiting for a person",
        ),
    )
    p.add_argument("--reason", action="append", required=True, help="why (repeatable)")
    p.add_argument("--by", type=_person, default="cli")

    p = action(
        "hand-back",
        "return a conversation to the bot (owner or supervisor)",
        _move(
            lambda lc, st, a: lc.hand_back(st, a.id, by=a.by),
            "conversation {a.id} is back with the bot",
        ),
    )
    p.add_argument("--by", type=_person, required=True, help="the agent handing back")

    p = action(
        "resolve",
        "close a conversation",
        _move(lambda lc, st, a: lc.resolve(st, a.id, by=a.by), "conversation {a.id} is resolved"),
    )
    p.add_argument(
        "--by",
        type=_person,
        required=True,
        help="who resolves (the owner or a supervisor while with a person)",
    )

    p = action(
        "assign",
        "a supervisor gives a waiting conversation to an agent",
        _move(
            lambda lc, st, a: lc.assign(st, a.id, a.agent, by=a.by),
            "conversation {a.id} is assigned to {a.agent}",
        ),
    )
    p.add_argument("--agent", type=_person, required=True)
    p.add_argument("--by", type=_person, required=True, help="the supervisor")

    p = action(
        "release",
        "a supervisor sends a waiting conversation back to the bot",
        _move(
            lambda lc, st, a: lc.release(st, a.id, by=a.by),
            "conversation {a.id} is back with the bot",
        ),
    )
    p.add_argument("--by", type=_person, required=True, help="the supervisor")

    p = action(
        "transfer",
        "a supervisor moves a conversation to another agent",
        _move(
            lambda lc, st, a: lc.transfer(st, a.id, a.agent, by=a.by, **_handover(st, a)),
            "conversation {a.id} is transferred to {a.agent} with the hand-over summary",
        ),
    )
    p.add_argument("--agent", type=_person, required=True, help="the new owner")
    p.add_argument("--by", type=_person, required=True, help="the supervisor")

    p = action("show", "print a conversation and its transcript", _show)
    p.add_argument("--json", action="store_true")

    p = action("list", "list conversations", _list, cid=False)
    p.add_argument("--state", action="append", choices=["bot", "waiting", "human", "resolved"])
    p.add_argument("--limit", type=int, default=50)

    p = csub.add_parser(
        "agent", help="register an agent or supervisor", description="Register an agent."
    )
    add_db_option(p)
    p.add_argument("name", type=_person)
    p.add_argument("--supervisor", action="store_true")
    p.set_defaults(func=_agent)


def _move(
    call: Callable[[ModuleType, Any, argparse.Namespace], object], done: str
) -> Callable[[argparse.Namespace], int]:
    """A command that makes one lifecycle call and prints ``done`` (formatted with ``a``, ``result``)."""

    def run(args: argparse.Namespace) -> int:
        from store import lifecycle

        result = call(lifecycle, _store(args), args)
        print(done.format(a=args, result=result))
        return 0

    return run


def _handover(store: Any, args: argparse.Namespace) -> dict[str, Any]:
    """The hand-over summary that goes with a transfer (the embedded engine's: offline)."""
    from console.assist.summary import as_meta, summary_for

    summary = summary_for(store, args.id, agent=args.agent)
    return {"summary": summary.as_text(), "summary_meta": as_meta(summary)}


def _store(args: argparse.Namespace):  # noqa: ANN202 - store.Store, imported lazily
    from store import open_store

    return open_store(args.db)


def _reader(args: argparse.Namespace):  # noqa: ANN202 - store.Store, imported lazily
    from store import open_reader

    return open_reader(args.db)


def _open(args: argparse.Namespace) -> int:
    from store import lifecycle

    cid = lifecycle.open_conversation(
        _store(args), args.customer, external_id=args.external_id, channel=args.channel
    )
    print(cid)
    return 0


def _post(args: argparse.Namespace) -> int:
    from console.channels.reopening import reopen_router
    from console.policy import PolicySettings
    from store import lifecycle

    store = _store(args)
    posted = lifecycle.add_customer_message(
        store,
        args.id,
        _read_text(args.text),
        idempotency_key=args.key,
        reopen=reopen_router(store, PolicySettings()),
    )
    suffix = " (duplicate: already stored)" if posted.duplicate else ""
    print(f"{posted.message_id}{suffix}")
    return 0


def _agent(args: argparse.Namespace) -> int:
    from store import lifecycle

    role = "supervisor" if args.supervisor else "agent"
    lifecycle.register_agent(_store(args), args.name, role=role)
    print(f"{args.name} registered as {role}")
    return 0


def _clean(text: str, *, one_line: bool = False) -> str:
    # Customer text is data: control characters never reach the terminal (the console's
    # rule, so a joiner inside an emoji sequence stays one, as on the wall).
    from console.ui.model import safe_text

    return safe_text(text, one_line=one_line)


def _show(args: argparse.Namespace) -> int:
    from store.feed import conversation_events
    from store.queries import get_conversation, transcript

    store = _reader(args)
    conv = get_conversation(store, args.id)
    messages = transcript(store, args.id)
    moves = [e for e in conversation_events(store, args.id) if e.to_state is not None]
    if args.json:
        audit = [
            {"id": e.id, "at": e.at, "kind": e.kind, "actor": e.actor, "from": e.from_state}
            | {"to": e.to_state, "data": e.data}
            for e in moves
        ]
        print(json.dumps({"conversation": conv, "messages": messages, "moves": audit}, default=str))
        return 0
    owner = f" ({_clean(conv['owner'], one_line=True)})" if conv["owner"] else ""
    reasons = ", ".join(conv["reasons"]) or "-"
    print(
        f"#{conv['id']} {_clean(conv['customer_name'], one_line=True)}  {conv['state']}{owner}"
        f"  {conv['level']}  reasons: {_clean(reasons, one_line=True)}"
    )
    for m in messages:
        at = datetime.fromtimestamp(m["created_at"]).strftime("%H:%M:%S")
        who = m["author"] if m["role"] in ("agent", "note") else m["role"]
        meta = m.get("meta")
        meta = meta if isinstance(meta, dict) else {}
        if m["role"] == "note" and meta.get("whisper"):
            who = f"{who}>{meta.get('to') or '?'}"  # a supervisor's whisper to the owner
        print(f"  {at} {_clean(who, one_line=True):>10}: {_clean(m['text'])}")
    if moves:
        # Who did what: the feed's actor is the account that made the move (team mode).
        print("moves:")
        for e in moves:
            when = datetime.fromtimestamp(e.at).strftime("%H:%M:%S")
            data = e.data or {}
            new_owner = data.get("owner")
            to = f"{e.to_state} ({new_owner})" if new_owner else e.to_state
            # A barge names whom it displaced (store.oversight.barge).
            why = ""
            if isinstance(data.get("reason"), str):
                held = (
                    f" from {_clean(str(data['from']), one_line=True)}" if data.get("from") else ""
                )
                why = f"  [{_clean(data['reason'], one_line=True)}{held}]"
            print(
                f"  {when} {e.kind:<12} by {_clean(e.actor or '?', one_line=True):<12}"
                f" {e.from_state or '-'} -> {to}{why}"
            )
    return 0


def _list(args: argparse.Namespace) -> int:
    from store.queries import list_conversations

    if args.limit < 1:
        raise UsageError("--limit must be at least 1")
    rows = list_conversations(
        _reader(args), states=tuple(args.state) if args.state else None, limit=args.limit
    )
    for c in rows:
        owner = _clean(c["owner"] or "-", one_line=True)
        print(
            f"{c['id']:>6}  {c['state']:<8} {owner:<10} {c['level']:<8}"
            f" {_clean(c['customer_name'], one_line=True)[:20]:<20} "
            f"{_clean(c['subject'], one_line=True)[:60]}"
        )
    return 0
