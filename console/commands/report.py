"""``tandem report``: containment, escalations, waits and responses against the SLA.

The figures and their definitions come from :mod:`store.report`; this module only picks the
window, reads the SLA targets from the policy file and prints text, JSON or CSV.
"""

from __future__ import annotations

import argparse
import csv
import json
import re
import sys
from datetime import datetime
from typing import Any

from console.commands.options import add_db_option
from console.errors import UsageError

_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 7 * 86400}
_DURATION = re.compile(r"(\d{1,6})([smhdw])")


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = sub.add_parser(
        "report",
        help="what the bot resolved, who waited, SLA met per level and agent",
        description="A report over a window of time: bot involvement and resolution, automation "
        "rate, escalations by reason, time to a person, first and next response against the SLA "
        "per level and per agent, abandonment in the queue, repeat contacts, drafts and LLM "
        "fallbacks. Definitions: README, 'tandem report'.",
        epilog="Example: tandem report --since 7d --json --policy policy.toml",
    )
    add_db_option(parser)
    parser.add_argument(
        "--since",
        default="24h",
        metavar="WHEN",
        help="start of the window: a duration back from now (90m, 24h, 7d, 2w) or an ISO date "
        "(2026-12-01 or 2026-12-01T09:00); default 24h",
    )
    parser.add_argument(
        "--policy", metavar="FILE", help="TOML policy file with the SLA targets ([policy.sla_s])"
    )
    fmt = parser.add_mutually_exclusive_group()
    fmt.add_argument("--json", action="store_true", help="print JSON")
    fmt.add_argument("--csv", action="store_true", help="print CSV: metric,value rows")
    parser.set_defaults(func=run)


def parse_since(text: str, now: float) -> float:
    """Epoch seconds for ``--since``: a duration back from ``now`` or an ISO date/time (local)."""
    value = text.strip()
    match = _DURATION.fullmatch(value)
    if match:
        return now - int(match[1]) * _UNITS[match[2]]
    try:
        return datetime.fromisoformat(value).timestamp()
    except (ValueError, OverflowError, OSError):
        raise UsageError(
            f"--since: {value[:40]!r} is neither a duration (90m, 24h, 7d) nor an ISO date"
        ) from None


def run(args: argparse.Namespace) -> int:
    from console.policy import PolicySettings, load_settings
    from store import open_store
    from store.db import now
    from store.report import support_report

    try:
        settings = load_settings(args.policy) if args.policy else PolicySettings()
    except ValueError as exc:
        raise UsageError(str(exc)) from None
    at = now()
    since = parse_since(args.since, at)
    if since > at:
        raise UsageError("--since is in the future")
    store = open_store(args.db)
    report = support_report(store, since=since, until=at, sla_s=settings.sla_s)
    if args.json:
        print(json.dumps(report, indent=2))
    elif args.csv:
        writer = csv.writer(sys.stdout, lineterminator="\n")
        writer.writerow(["metric", "value"])
        writer.writerows(flatten(report))
    else:
        print(render_text(report))
    return 0


def flatten(value: Any, prefix: str = "") -> list[tuple[str, Any]]:
    """``(dotted.key, scalar)`` pairs of a nested report, in its order."""
    if isinstance(value, dict):
        rows: list[tuple[str, Any]] = []
        for key, inner in value.items():
            rows.extend(flatten(inner, f"{prefix}.{key}" if prefix else str(key)))
        return rows
    return [(prefix, "" if value is None else value)]


def _pct(value: float | None) -> str:
    return "—" if value is None else f"{value:.1%}"


def _secs(value: float | None) -> str:
    if value is None:
        return "—"
    if value < 90:
        return f"{value:.0f}s"
    if value < 5400:
        return f"{value / 60:.1f}m"
    return f"{value / 3600:.1f}h"


def _sla_line(label: str, s: dict[str, Any], target: float | None = None) -> str:
    goal = f" (target {_secs(target)})" if target is not None else ""
    return (
        f"  {label:<16} n {s['n']:>6}   p50 {_secs(s['p50_s']):>6}   p90 {_secs(s['p90_s']):>6}"
        f"   met {_pct(s['met_share']):>6}{goal}"
    )


def render_text(r: dict[str, Any]) -> str:
    """The report as aligned plain text (no markup: names are printed as they are stored)."""
    since = datetime.fromtimestamp(r["window"]["since"]).strftime("%Y-%m-%d %H:%M")
    until = datetime.fromtimestamp(r["window"]["until"]).strftime("%Y-%m-%d %H:%M")
    bot, esc, ttp = r["bot"], r["escalations"], r["time_to_person"]
    lines = [
        f"Tandem report  {since} -> {until}",
        "",
        f"conversations          {r['conversations']}",
        f"bot involvement        {_pct(bot['involvement'])}  ({bot['involved']})",
        f"bot resolution         {_pct(bot['resolution'])}  ({bot['resolved_alone']} resolved "
        "without a person, no repeat within 24h)",
        f"automation rate        {_pct(bot['automation_rate'])}",
        f"escalations            {esc['total']}",
    ]
    for reason, n in esc["by_reason"].items():
        lines.append(f"  {reason:<22}{n}")
    ab, rep = r["abandonment"], r["repeat_contacts"]
    lines += [
        f"time to a person       p50 {_secs(ttp['p50_s'])}  p90 {_secs(ttp['p90_s'])}  "
        f"({ttp['n']} from the queue)",
        f"abandoned in queue     {ab['abandoned']}  ({_pct(ab['rate'])} of escalations)",
        f"repeat contacts        {rep['within_24h']} within 24h ({_pct(rep['rate'])}), "
        f"{rep['reopened']} reopened",
    ]
    for key, title in (("first_response", "first response"), ("next_response", "next response")):
        block = r[key]
        lines += ["", f"{title} against the SLA", _sla_line("all", block)]
        for level, s in block["by_level"].items():
            lines.append(_sla_line(level, s, r["sla_s"].get(level)))
        for agent, s in block["by_agent"].items():
            lines.append(_sla_line(f"agent {agent}"[:16], s))
    d = r["drafts"]
    lines += [
        "",
        f"drafts                 {d['total']}  accepted {d['by_outcome'].get('accepted', 0)}  "
        f"edited {d['by_outcome'].get('edited', 0)}  discarded {d['by_outcome'].get('discarded', 0)}"
        f"  acceptance {_pct(d['acceptance_rate'])}  mean edit distance "
        + ("—" if d["mean_edit_distance"] is None else f"{d['mean_edit_distance']:.0f}"),
        f"LLM fallbacks          {r['llm_fallbacks']}",
    ]
    return "\n".join(lines)
