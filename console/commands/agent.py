"""``tandem agent ...``: the accounts of a team (DESIGN section 12), run on the server host.

Whoever can run this can open the database file, which is the administrator: accounts are
made here, never over the network. A token is printed once, alone on stdout (so a script can
capture it), with the instructions on stderr; only its hash is stored.
"""

from __future__ import annotations

import argparse
import sys
from datetime import datetime

from console.commands.options import add_db_option


def register(sub: argparse._SubParsersAction) -> None:
    parser = sub.add_parser(
        "agent",
        help="accounts for consoles that connect to `tandem serve` (add, list, disable, rotate)",
        description="Manage the accounts of agents and supervisors who connect to `tandem serve` "
        "with `tandem console --server URL`. Each account has a token; the server takes the "
        "caller's name and role from it.",
        epilog="Example: tandem agent add ana --role agent   (prints ana's token once)",
    )
    asub = parser.add_subparsers(dest="agent_command", metavar="ACTION", required=True)

    def action(name: str, help_text: str, func: object) -> argparse.ArgumentParser:
        p = asub.add_parser(name, help=help_text, description=help_text)
        add_db_option(p)
        p.set_defaults(func=func)
        return p

    p = action("add", "create an account and print its token once", _add)
    p.add_argument("name", help="letters, digits, '.', '-' or '_' (at most 32)")
    p.add_argument("--role", choices=("agent", "supervisor"), default="agent")
    p.add_argument(
        "--langs",
        metavar="CODES",
        help="languages the agent takes when routing assigns work, e.g. en,fr (default: any)",
    )

    p = action(
        "skills",
        "show or set the languages an agent takes when routing assigns work",
        _skills,
    )
    p.add_argument("name")
    p.add_argument(
        "langs",
        nargs="?",
        metavar="CODES",
        help="ISO 639-1 codes separated by commas, e.g. en,fr; '' for any language;"
        " left out: show them",
    )

    action("list", "list accounts (names, roles, disabled or not; never tokens)", _list)

    p = action("disable", "refuse the account's token from now on (open streams too)", _disable)
    p.add_argument("name")

    p = action("enable", "accept a disabled account's token again", _enable)
    p.add_argument("name")

    p = action("rotate", "give the account a new token; the old one stops working", _rotate)
    p.add_argument("name")

    p = action("role", "change an account's role", _role)
    p.add_argument("name")
    p.add_argument("role", choices=("agent", "supervisor"))


def _store(args: argparse.Namespace):  # noqa: ANN202 - store.Store, imported lazily
    from store import open_store

    return open_store(args.db)


def _print_token(name: str, token: str, what: str) -> None:
    print(
        f"{what} {name}'s token (shown once; only its hash is stored). On the agent's machine:"
        f" tandem login URL, or TANDEM_TOKEN=... tandem console --server URL",
        file=sys.stderr,
    )
    print(token)


def _add(args: argparse.Namespace) -> int:
    from store import accounts, presence

    if args.langs is not None:
        presence.parse_langs(args.langs)  # a typo refuses the account before it exists
    store = _store(args)
    token = accounts.add(store, args.name, args.role)
    if args.langs is not None:
        presence.set_langs(store, args.name, args.langs)
    _print_token(args.name, token, f"Created {args.role}")
    return 0


def _skills(args: argparse.Namespace) -> int:
    from store import presence

    store = _store(args)
    if args.langs is None:
        langs = presence.langs_of(store, args.name)
    else:
        langs = presence.set_langs(store, args.name, args.langs)
    print(f"{args.name}: {', '.join(langs) if langs else 'any language'}")
    return 0


def _rotate(args: argparse.Namespace) -> int:
    from store import accounts

    token = accounts.rotate(_store(args), args.name)
    _print_token(args.name, token, "New")
    return 0


def _disable(args: argparse.Namespace) -> int:
    from store import accounts

    accounts.set_disabled(_store(args), args.name, True)
    print(f"{args.name} is disabled: its token opens nothing")
    return 0


def _enable(args: argparse.Namespace) -> int:
    from store import accounts

    accounts.set_disabled(_store(args), args.name, False)
    print(f"{args.name} is enabled")
    return 0


def _role(args: argparse.Namespace) -> int:
    from store import accounts

    accounts.set_role(_store(args), args.name, args.role)
    print(f"{args.name} is now a {args.role}")
    return 0


def _when(ts: float | None) -> str:
    return "-" if ts is None else datetime.fromtimestamp(ts).strftime("%Y-%m-%d %H:%M")


def _list(args: argparse.Namespace) -> int:
    from store import accounts

    rows = accounts.list_accounts(_store(args))
    if not rows:
        print("no accounts (tandem agent add NAME --role agent|supervisor)", file=sys.stderr)
        return 0
    print(f"{'name':<32} {'role':<10} {'status':<8} {'created':<16} rotated")
    for a in rows:
        status = "disabled" if a.disabled else "active"
        print(
            f"{a.name:<32} {a.role:<10} {status:<8} {_when(a.created_at):<16} {_when(a.rotated_at)}"
        )
    return 0
