"""``tandem console --agent NAME [--supervisor]``: the agent console on a running hub's store."""

from __future__ import annotations

import argparse
import os
from typing import TYPE_CHECKING

from console.commands.options import add_db_option
from console.errors import UsageError

if TYPE_CHECKING:
    from console.config import LLMConfig


def register(sub: argparse._SubParsersAction) -> None:
    parser = sub.add_parser(
        "console",
        help="the agent console (attach to the store of a running `tandem serve`)",
        description="Watch live bot conversations side by side, see who needs a human and why, "
        "take over, reply, hand back. Many consoles (one per agent) can share one database.",
        epilog="Example: tandem console --agent ana --db tandem.db  (keys: enter open, t take over, "
        "1-4 filters, / search, ctrl+p commands)",
    )
    add_console_options(parser)
    parser.set_defaults(func=run)


def add_console_options(parser: argparse.ArgumentParser) -> None:
    """Options shared by ``console`` and ``demo``."""
    add_db_option(parser)
    parser.add_argument(
        "--agent",
        metavar="NAME",
        default=None,
        help="your agent name (default: $TANDEM_AGENT or your login name)",
    )
    parser.add_argument(
        "--supervisor",
        action="store_true",
        help="register as a supervisor: queue, waits vs SLA, agents; assign and transfer",
    )
    parser.add_argument(
        "--sla",
        type=float,
        default=120.0,
        metavar="SECONDS",
        help="queue wait SLA for the supervisor view (default 120)",
    )


def agent_name(value: str | None) -> str:
    """The agent name from ``--agent``, ``$TANDEM_AGENT`` or the login name, checked."""
    name = value or os.environ.get("TANDEM_AGENT") or os.environ.get("USER") or "agent"
    from store.accounts import person_name
    from store.errors import InvalidInput

    try:
        return person_name(name.strip(), "--agent")
    except InvalidInput as exc:
        raise UsageError(str(exc)) from None


def llm_settings() -> LLMConfig:
    """The LLM settings for the console's drafts, read once here and handed down frozen.

    A broken config file or variable stops the command with one line, as ``tandem serve`` does.
    """
    from console.config import ConfigError, load_config

    try:
        return load_config()
    except ConfigError as exc:
        raise UsageError(str(exc)) from None


def run(args: argparse.Namespace) -> int:
    from store import resolve_path

    path = resolve_path(args.db)
    if args.sla <= 0:
        raise UsageError("--sla must be a positive number of seconds")
    agent = agent_name(args.agent)
    llm = llm_settings()
    from console.ui.app import TandemApp

    TandemApp(path, agent, supervisor=args.supervisor, sla_seconds=args.sla, llm=llm).run()
    return 0
