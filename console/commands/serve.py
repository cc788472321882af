"""``tandem serve``: the hub (bot, triage, SLA timers), optionally with simulated customers.

Runs unattended (``tandem demo`` starts it as a child process): starts in well under a
second, logs one line of throughput a minute to stderr, and on Ctrl-C or SIGTERM finishes
the batch in hand, saves the feed cursors and exits 0. A restart resumes from the cursors.
``--workers N`` runs the hub in N processes; they, and other ``tandem serve`` on the same
database, share the conversations by leases (``console.hub.shards``).
"""

from __future__ import annotations

import argparse

from console.commands.options import add_db_option
from console.errors import UsageError
from store.levels import LEVELS


def register(sub: argparse._SubParsersAction) -> None:
    parser = sub.add_parser(
        "serve",
        help="run the hub: channel API, the bot answers, triage watches, the policy escalates",
        description="Run the hub over the database: the channel API (HTTP, see --listen), and a "
        "worker that follows the change feed, triages every customer message, lets the bot answer "
        "or escalates to the queue with reasons, and raises waiting conversations' level over "
        "time. --simulate adds simulated customers.",
        epilog="Example: tandem serve --simulate 50 --duration 60 --db demo.db. A --policy file is TOML "
        "with any of: escalate_level, max_fallbacks, urgent_reasons, raised_again, human_request_reasons, "
        "flag_only_reasons, soft_reasons, minutes_per_customer, idle_resolve_s, sla_tick_s, "
        "online_window_s, reopen_to (e.g. max_fallbacks = 3). Integrations create conversations with "
        "TANDEM_API_TOKEN; the LLM bot is used when OPENAI_BASE_URL or OPENAI_API_KEY is set.",
    )
    add_db_option(parser)
    parser.add_argument(
        "--simulate",
        metavar="N",
        type=int,
        default=0,
        help="keep N simulated customers active (default 0: none)",
    )
    parser.add_argument(
        "--speed",
        metavar="X",
        type=float,
        default=1.0,
        help="simulated customers type, read and wait X times faster (default 1)",
    )
    parser.add_argument(
        "--duration",
        metavar="S",
        type=float,
        default=None,
        help="stop after S seconds (default: run until Ctrl-C or SIGTERM)",
    )
    parser.add_argument("--seed", type=int, default=None, help="random seed for the simulator")
    parser.add_argument(
        "--data",
        metavar="PATH",
        default=None,
        help="customer-messages.csv (or its directory) to replay first messages from "
        "(default: ../shared/data next to the repository, when present)",
    )
    parser.add_argument(
        "--no-replay", action="store_true", help="simulate with the personas' scripts only"
    )
    parser.add_argument(
        "--personas",
        metavar="NAMES",
        help="only these simulated personas, comma-separated (routine, confused, frustrated, "
        "grieving, scam, abusive, human, injection, quiet)",
    )
    parser.add_argument("--policy", metavar="FILE", help="TOML file of escalation policy settings")
    parser.add_argument(
        "--escalate-level",
        choices=LEVELS[1:],  # every level above calm
        default=None,
        help="escalate at this triage level or above (default empathy)",
    )
    parser.add_argument(
        "--max-fallbacks",
        type=int,
        metavar="N",
        default=None,
        help="escalate when the bot does not know for the N-th time (default 2)",
    )
    parser.add_argument(
        "--idle-resolve",
        type=float,
        metavar="S",
        default=None,
        help="resolve bot conversations quiet for S seconds (default 600; "
        "with --simulate 60/speed)",
    )
    parser.add_argument(
        "--log-interval",
        type=float,
        metavar="S",
        default=60.0,
        help="seconds between throughput lines on stderr (default 60; 0 for none)",
    )
    parser.add_argument(
        "--listen",
        metavar="HOST:PORT",
        default="127.0.0.1:8765",
        help="where the channel API and web chat page listen (default 127.0.0.1:8765)",
    )
    parser.add_argument("--no-api", action="store_true", help="run without the channel API")
    parser.add_argument(
        "--webhook",
        metavar="URL",
        action="append",
        default=[],
        help="POST signed message and state events to URL (repeatable; also `urls` under "
        "[webhooks] in the config file); the shared secret comes from TANDEM_WEBHOOK_SECRET",
    )
    parser.add_argument(
        "--tls-cert",
        metavar="PEM",
        help="serve the channel and agent APIs over HTTPS with this certificate (chain) file",
    )
    parser.add_argument("--tls-key", metavar="PEM", help="the private key for --tls-cert")
    parser.add_argument(
        "--workers",
        metavar="N",
        type=int,
        default=1,
        help="hub worker processes sharing the conversations (default 1: the hub runs in this "
        "process); several `tandem serve` on one database share them too",
    )
    parser.add_argument(
        "--lease-ttl",
        metavar="S",
        type=float,
        default=None,
        help="seconds a hub worker's lease on its conversations lasts unrenewed: how long a dead "
        "worker's share waits for another (default 10)",
    )
    parser.add_argument(
        "--embedded",
        action="store_true",
        help="use the embedded bot even if an LLM endpoint is configured",
    )
    parser.set_defaults(func=_serve)


def _settings(args: argparse.Namespace):  # -> PolicySettings
    from console.policy import PolicySettings, load_settings

    try:
        settings = load_settings(args.policy) if args.policy else PolicySettings()
        idle = args.idle_resolve
        if idle is None and args.simulate and not args.policy:
            # Simulated customers who leave quietly should not keep conversations open for long.
            idle = max(5.0, 60.0 / args.speed)
        return settings.with_overrides(
            escalate_level=args.escalate_level,
            max_fallbacks=args.max_fallbacks,
            idle_resolve_s=idle,
        )
    except ValueError as exc:
        raise UsageError(str(exc)) from None


def _serve(args: argparse.Namespace) -> int:
    if args.simulate < 0:
        raise UsageError("--simulate must be 0 or more")
    if args.speed <= 0:
        raise UsageError("--speed must be positive")
    if args.duration is not None and args.duration <= 0:
        raise UsageError("--duration must be positive")
    from console.hub.shards import LEASE_TTL_S, SHARDS

    if not 1 <= args.workers <= SHARDS:
        raise UsageError(f"--workers must be 1-{SHARDS} (the conversations are in {SHARDS} shards)")
    ttl = LEASE_TTL_S if args.lease_ttl is None else args.lease_ttl
    if not 1.0 <= ttl <= 3600.0:
        raise UsageError("--lease-ttl must be 1-3600 seconds")
    settings = _settings(args)
    personas = _personas(args.personas)
    listen = None if args.no_api else _listen(args.listen)
    from console.config import ConfigError, load_webhook_config

    try:
        hooks = load_webhook_config(args.webhook)
    except ConfigError as exc:
        raise UsageError(str(exc)) from None
    tls = _tls(args.tls_cert, args.tls_key)
    from console.config import load_config

    try:
        config = load_config()
    except ConfigError as exc:
        raise UsageError(str(exc)) from None
    # --embedded is about the bot; triage still asks a configured LLM for a second opinion.
    judge = config if config.enabled else None
    llm = None if args.embedded else judge

    import asyncio

    from console.hub import serve_forever
    from store import resolve_path

    path = resolve_path(args.db)
    return asyncio.run(
        serve_forever(
            path,
            settings=settings,
            simulate=args.simulate,
            speed=args.speed,
            duration=args.duration,
            seed=args.seed,
            data=False if args.no_replay else args.data,
            log_interval=args.log_interval,
            llm=llm,
            judge_llm=judge,
            listen=listen,
            personas=personas,
            webhooks=hooks if hooks.enabled else None,
            tls=tls,
            workers=args.workers,
            lease_ttl=ttl,
        )
    )


def _tls(cert: str | None, key: str | None):  # -> ssl.SSLContext | None
    """An HTTPS context from --tls-cert/--tls-key, or a one-line reason it cannot be made."""
    if not cert and not key:
        return None
    if not cert or not key:
        raise UsageError("--tls-cert and --tls-key go together")
    import ssl

    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    try:
        context.load_cert_chain(cert, key)
    except (OSError, ssl.SSLError) as exc:
        raise UsageError(f"--tls-cert/--tls-key: cannot load ({exc})") from None
    return context


def _listen(value: str) -> tuple[str, int]:
    host, sep, port = value.rpartition(":")
    if not sep:
        host, port = "127.0.0.1", value
    try:
        number = int(port)
    except ValueError:
        raise UsageError(f"--listen wants HOST:PORT (got {value!r})") from None
    if not 0 < number < 65536:
        raise UsageError(f"--listen port must be 1-65535 (got {number})")
    return host.strip("[]") or "127.0.0.1", number


def _personas(value: str | None) -> list[str] | None:
    if not value:
        return None
    from console.channels.personas import BY_NAME

    names = [n.strip() for n in value.split(",") if n.strip()]
    unknown = [n for n in names if n not in BY_NAME]
    if unknown or not names:
        which = ", ".join(unknown) if unknown else repr(value)
        raise UsageError(f"unknown persona(s) {which} (known: {', '.join(BY_NAME)})")
    return names
