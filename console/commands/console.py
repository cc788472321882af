"""``tandem console --agent NAME [--supervisor]``: the agent console on a running hub's store;
``tandem console --server URL``: the same console connected to ``tandem serve`` (team mode)."""

from __future__ import annotations

import argparse
import os
from pathlib import Path
from typing import TYPE_CHECKING

from console.commands.options import add_db_option
from console.errors import UsageError

if TYPE_CHECKING:
    from console.backend import Backend
    from console.config import LLMConfig
    from console.policy import PolicySettings
    from console.ui.alerts import NotifyProtocol


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
    parser.add_argument(
        "--server",
        metavar="URL",
        help="connect to a `tandem serve` over the network (team mode) instead of opening a "
        "database file; the token comes from $TANDEM_TOKEN or `tandem login URL`",
    )
    parser.add_argument(
        "--ca-file",
        metavar="FILE",
        help="with --server https://...: a CA certificate to trust (a self-signed server)",
    )
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
        "--policy",
        metavar="FILE",
        help="TOML policy file: its SLA targets per level ([policy.sla_s]) mark waits in red on "
        "the wall and in the supervisor view (default: urgent 60 s, empathy 180 s, else 600 s)",
    )
    parser.add_argument(
        "--sla",
        type=float,
        default=None,
        metavar="SECONDS",
        help="one queue wait SLA for every level, instead of the policy's targets",
    )
    parser.add_argument(
        "--alerts",
        choices=("all", "urgent", "off"),
        default="all",
        help="bell, notification and desktop alert when a conversation enters the queue at "
        "empathy or urgent, or waits past its SLA: all (default), urgent (urgent ones only), off",
    )
    parser.add_argument(
        "--notify",
        choices=("auto", "osc9", "osc777", "none"),
        default="auto",
        help="how alerts reach the desktop: OSC 9 (iTerm2, WezTerm, kitty, Windows Terminal), "
        "OSC 777 (GNOME Terminal and other VTE, foot, urxvt), none; auto guesses from the "
        "terminal's environment (none inside tmux or screen)",
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


def policy_settings(args: argparse.Namespace) -> PolicySettings:
    """The policy from ``--policy`` (default settings without one), ``--sla`` applied to every level."""
    from console.policy import LEVELS, PolicySettings, load_settings

    if args.sla is not None and not 0 < args.sla < float("inf"):
        raise UsageError("--sla must be a positive number of seconds")
    try:
        settings = load_settings(args.policy) if args.policy else PolicySettings()
        if args.sla is not None:
            settings = settings.with_overrides(sla_s=dict.fromkeys(LEVELS, args.sla))
    except (ValueError, OSError) as exc:
        raise UsageError(str(exc)) from None
    return settings


def notify_protocol(args: argparse.Namespace) -> NotifyProtocol:
    """``--notify``, or the terminal's own when ``auto``."""
    from console.ui.alerts import detect_protocol

    if args.notify == "auto":
        return detect_protocol(os.environ)
    protocol: NotifyProtocol = args.notify
    return protocol


def remote_backend(args: argparse.Namespace) -> Backend:
    """The server's backend for ``--server URL``, with the token from ``TANDEM_TOKEN`` or
    ``tandem login``; the server says who this is, so ``--agent`` and ``--supervisor`` go."""
    from console.backend.remote import RemoteBackend
    from console.commands.login import stored_token

    if args.agent or args.supervisor or args.db:
        raise UsageError(
            "with --server, the server says who you are from your token: "
            "drop --agent, --supervisor and --db"
        )
    token = stored_token(args.server)
    if token is None:
        raise UsageError(
            f"no token for {args.server}: run `tandem login {args.server}` (or set TANDEM_TOKEN)"
        )
    return RemoteBackend(args.server, token, ca_file=args.ca_file)


def run(args: argparse.Namespace) -> int:
    settings = policy_settings(args)
    llm = llm_settings()
    source: Backend | Path | str
    agent: str | None = None
    if args.server:
        source = remote_backend(args)
    else:
        from store import resolve_path

        source = resolve_path(args.db)
        agent = agent_name(args.agent)
    from console.ui.app import TandemApp

    TandemApp(
        source,
        agent,
        supervisor=args.supervisor,
        policy=settings,
        policy_path=Path(args.policy) if args.policy else None,
        llm=llm,
        alerts=args.alerts,
        notify_protocol=notify_protocol(args),
    ).run()
    return 0
