"""``tandem whatif``: try a policy change on past conversations before customers feel it."""

from __future__ import annotations

import argparse
import json
import sys
from datetime import datetime
from typing import Any

from console.commands.options import add_db_option
from console.commands.report import parse_since
from console.errors import UsageError


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = sub.add_parser(
        "whatif",
        help="replay past conversations under a proposed policy and compare",
        description="Replay the stored conversations' customer turns through triage and two "
        "policies (the bot's stored replies stand; no LLM calls) and compare: how many more or "
        "fewer conversations reach a person, at which turn, the queue load per hour against the "
        "agents at work then, the SLA breaches it implies, and a sample of the conversations "
        "that change. Deterministic: the same store and files give the same figures.",
        epilog="Example: tandem whatif --policy stricter.toml --since 7d --json",
    )
    add_db_option(parser)
    parser.add_argument(
        "--policy", required=True, metavar="NEW.toml", help="the proposed policy file"
    )
    parser.add_argument(
        "--current",
        metavar="FILE",
        help="the policy in force (default: the built-in policy `tandem serve` uses without one)",
    )
    parser.add_argument(
        "--since", default="7d", metavar="WHEN", help="conversations opened since (default 7d)"
    )
    parser.add_argument("--json", action="store_true", help="print JSON")
    parser.add_argument("--sample", type=int, default=25, help="changed conversations to list")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from console.policy import PolicySettings, load_settings
    from console.whatif import compare
    from store import open_store
    from store.db import now

    try:
        proposed = load_settings(args.policy)
        current = load_settings(args.current) if args.current else PolicySettings()
    except ValueError as exc:
        raise UsageError(str(exc)) from None
    if args.sample < 0:
        raise UsageError("--sample must be 0 or more")
    until = now()
    since = parse_since(args.since, until)
    store = open_store(args.db)
    with _progress() as tick:
        result = compare(
            store, current, proposed, since=since, until=until, progress=tick, sample=args.sample
        )
    if args.json:
        print(json.dumps(result, indent=2))
    else:
        print(render_text(result, args.policy))
    return 0


class _progress:
    """A progress bar on stderr while replaying (only on a terminal; scripts get none)."""

    def __enter__(self) -> Any:
        from rich.progress import BarColumn, Progress, TaskProgressColumn, TimeRemainingColumn

        if not sys.stderr.isatty():
            self._bar = None
            return lambda done, total: None
        from rich.console import Console

        self._bar = Progress(
            "replaying",
            BarColumn(),
            TaskProgressColumn(),
            TimeRemainingColumn(),
            console=Console(stderr=True),
            transient=True,
        )
        self._bar.start()
        task = self._bar.add_task("replay", total=None)
        bar = self._bar

        def tick(done: int, total: int) -> None:
            bar.update(task, completed=done, total=total)

        return tick

    def __exit__(self, *exc: object) -> None:
        if self._bar is not None:
            self._bar.stop()


def _n(value: float | None, fmt: str = "{:.1f}") -> str:
    return "—" if value is None else fmt.format(value)


def render_text(r: dict[str, Any], policy_name: str) -> str:
    """The comparison as plain text: the two policies side by side, then what changes."""
    cur, new, diff = r["current"], r["proposed"], r["difference"]
    since = datetime.fromtimestamp(r["window"]["since"]).strftime("%Y-%m-%d %H:%M")
    rows = [
        ("conversations", str(cur["conversations"]), str(new["conversations"])),
        ("reach a person", str(cur["escalated"]), str(new["escalated"])),
        ("  (really escalated)", str(cur["actually_escalated"]), ""),
        (
            "escalation rate",
            _n(cur["escalation_rate"], "{:.1%}"),
            _n(new["escalation_rate"], "{:.1%}"),
        ),
        ("mean turn of hand-off", _n(cur["mean_turn"]), _n(new["mean_turn"])),
        ("SLA breaches (model)", str(cur["sla_breaches"]), str(new["sla_breaches"])),
    ]
    width = max(len(label) for label, _, _ in rows)
    lines = [
        f"What if: {policy_name} against the policy in force, conversations since {since}",
        "",
        f"{'':{width}}  {'current':>10}  {'proposed':>10}",
    ]
    lines += [f"{label:{width}}  {a:>10}  {b:>10}" for label, a, b in rows]
    lines += [
        "",
        f"{diff['newly_escalated']} more would reach a person, {diff['no_longer_escalated']} "
        f"fewer; {diff['earlier']} earlier, {diff['later']} later; at a higher level "
        f"{diff['level_raised']}, lower {diff['level_lowered']}.",
    ]
    reasons = sorted(set(cur["by_reason"]) | set(new["by_reason"]))
    if reasons:
        lines += ["", f"{'reason':{width}}  {'current':>10}  {'proposed':>10}"]
        for reason in reasons:
            a, b = cur["by_reason"].get(reason, 0), new["by_reason"].get(reason, 0)
            lines.append(f"{reason:{width}}  {a:>10}  {b:>10}")
    busy = [h for h in r["load_by_hour"] if h["current"] != h["proposed"]]
    if busy:
        lines += ["", "hours that change (escalations current -> proposed, agents at work)"]
        for h in busy[:12]:
            when = datetime.fromtimestamp(h["hour"]).strftime("%m-%d %H:00")
            lines.append(f"  {when}  {h['current']:>4} -> {h['proposed']:<4}  agents {h['agents']}")
    if r["changed"]:
        lines += ["", "conversations that change (first differing customer turn)"]
        for c in r["changed"]:
            a, b = c["current"], c["proposed"]
            left = f"turn {a['turn']} {a['level']}" if a["escalated"] else "stays with the bot"
            right = f"turn {b['turn']} {b['level']}" if b["escalated"] else "stays with the bot"
            why = ", ".join(b["reasons"] or a["reasons"])
            lines.append(
                f"  #{c['id']:<6} turn {c['first_differing_turn']}: {left} -> {right}  ({why})"
            )
    return "\n".join(lines)
