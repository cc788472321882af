"""``tandem triage [FILE|-]`` and ``tandem triage eval CSV``."""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, BinaryIO, TypeVar

from console.errors import UsageError

T = TypeVar("T")


def register(sub: argparse._SubParsersAction) -> None:
    parser = sub.add_parser(
        "triage",
        help="score conversations: who needs a human, and why",
        description="Read JSONL conversations (FILE, or stdin when FILE is '-' or missing) and write "
        'one verdict per line, in order: {"id", "level", "score", "reasons", "lang"}. Input lines are '
        '{"id": ..., "messages": [{"role": "customer"|"bot"|"agent", "text": ...}]} or '
        '{"id": ..., "text": ...}. Bad lines are reported on stderr with their line number and '
        "skipped (exit code 1 at the end). `tandem triage eval CSV` measures the engine on a "
        "labelled CSV (columns slice, conversation, text, needs_empathy); `tandem triage eval "
        'DIR|FILE.jsonl` on a hand-written set, one message a line ({"id", "lang", '
        '"needs_human", "reason"?, "text"}), reported per language and per reason.',
        epilog="Examples: tandem triage chats.jsonl > verdicts.jsonl; "
        'echo \'{"id": 1, "text": "I want a real person"}\' | tandem triage; '
        "tandem triage eval ../shared/data/triage/dev.csv --json; "
        "tandem triage eval tests/triage/multilingual/heldaside",
    )
    parser.add_argument(
        "file",
        nargs="?",
        default="-",
        metavar="FILE|eval",
        help="JSONL input (default: stdin), or 'eval'",
    )
    parser.add_argument(
        "csv", nargs="?", metavar="CSV|SET", help="with eval: the labelled CSV, or a JSONL set"
    )
    parser.add_argument("--json", action="store_true", help="with eval: print metrics as JSON")
    parser.add_argument(
        "--curve",
        action="store_true",
        help="with eval: move the decision threshold (shipped: 0.5) and print the pooled real "
        "precision/recall/F1 against the recall and specificity floors of the other slices",
    )
    parser.add_argument(
        "--llm",
        action="store_true",
        help="also ask the configured LLM (OPENAI_BASE_URL / OPENAI_API_KEY / TANDEM_MODEL) for a second "
        "opinion (level, reasons, one line of why), combined with the offline verdict: it can raise "
        "a level and add reasons, never lower one; conversations already urgent are not sent. "
        'Each output line then has a "judge" field; with eval, the verdicts scored are the '
        "combined ones and the judge's counts (asked, raised, malformed, timeouts) are printed",
    )
    parser.set_defaults(func=_run)


def _run(args: argparse.Namespace) -> int:
    if args.file == "eval":
        if not args.csv:
            raise UsageError(
                "triage eval needs a CSV file (columns slice, conversation, text, needs_empathy)"
            )
        judge = _judge(_llm()) if args.llm else None
        return _eval(args.csv, as_json=args.json, as_curve=args.curve, judge=judge)
    if args.csv:
        raise UsageError(
            f"unexpected argument {args.csv!r} (did you mean `tandem triage eval {args.csv}`?)"
        )
    if args.json:
        raise UsageError("--json goes with `tandem triage eval CSV`; scoring already writes JSONL")
    if args.curve:
        raise UsageError("--curve goes with `tandem triage eval CSV`")
    llm = _llm() if args.llm else None
    if args.file == "-":
        return _stream(sys.stdin.buffer, llm)
    try:
        fh = open(args.file, "rb")  # noqa: SIM115 - closed below, after streaming
    except OSError as exc:
        raise UsageError(f"{args.file}: {exc.strerror or exc}") from None
    with fh:
        return _stream(fh, llm)


def _llm() -> Any:
    from console.config import ConfigError, load_config
    from console.llm import LLM

    try:
        config = load_config()
    except ConfigError as exc:
        raise UsageError(str(exc)) from None
    if not config.enabled:
        raise UsageError(
            "--llm needs an LLM endpoint: set OPENAI_BASE_URL (and TANDEM_MODEL) or OPENAI_API_KEY"
        )
    return LLM(config)


def _stream(source: BinaryIO, llm: Any = None) -> int:
    from console.triage import TriageEngine
    from console.triage.jsonl import triage_line

    engine = TriageEngine()
    if llm is not None:
        return asyncio.run(_stream_with_judge(source, engine, llm))
    out = sys.stdout
    skipped = _Skipped()
    for result in _parsed(source, lambda line: triage_line(engine, line), skipped):
        out.write(result + "\n")
        out.flush()  # streaming: a reader sees each verdict as soon as its line is scored
    return skipped.finish()


async def _stream_with_judge(source: BinaryIO, engine: Any, llm: Any) -> int:
    """Like :func:`_stream`, asking the LLM about each conversation in turn (order kept)."""
    from console.triage.jsonl import parse_line

    judge = _judge(llm)
    out = sys.stdout
    skipped = _Skipped()
    warned = False
    for ident, messages in _parsed(source, parse_line, skipped):
        offline = engine.score_conversation(messages)
        record: dict[str, Any] = {"id": ident, **offline.as_dict()}
        combined, opinion = await judge.review(messages, offline)
        if opinion is not None:
            record.update(combined.as_dict())
            record["judge"] = {
                "level": opinion.level,
                "reasons": list(opinion.reasons),
                "why": opinion.why,
                "offline_level": offline.level,
                "model_reasons": list(combined.model_reasons),
            }
        elif offline.level == "urgent":
            record["judge"] = {"skipped": "already urgent"}
        else:
            # The offline verdict stands; say once why the second opinion is missing.
            record["judge"] = {"error": judge.last_error}
            if not warned:
                print(
                    "tandem: LLM second opinion unavailable, offline verdicts only: "
                    f"{judge.last_error}",
                    file=sys.stderr,
                )
                warned = True
        out.write(json.dumps(record) + "\n")  # ASCII: ids never reach a terminal raw
        out.flush()
    if judge.stats.asked:
        print(f"tandem: {_judge_line(judge)}", file=sys.stderr)
    return skipped.finish()


class _Skipped:
    """Bad input lines: each reported on stderr as it is met, the total at the end."""

    def __init__(self) -> None:
        self.count = 0

    def report(self, lineno: int, why: object) -> None:
        self.count += 1
        print(f"tandem: line {lineno}: {why}", file=sys.stderr)

    def finish(self) -> int:
        if self.count:
            print(f"tandem: {self.count} line(s) skipped", file=sys.stderr)
        return 1 if self.count else 0


def _parsed(source: BinaryIO, parse: Callable[[bytes], T], skipped: _Skipped) -> Iterator[T]:
    """``parse`` of every non-blank line, in order; bad and over-long lines go to ``skipped``."""
    from console.triage.jsonl import MAX_LINE, LineError

    for lineno, raw in enumerate(_lines(source, MAX_LINE), start=1):
        line = raw.strip()
        if not line:
            continue
        try:
            if raw is _TOO_LONG:
                raise LineError(f"line too long (more than {MAX_LINE:,} bytes)")
            value = parse(line)
        except LineError as exc:
            skipped.report(lineno, exc)
            continue
        yield value


_TOO_LONG = b"\x00too long\x00"  # sentinel: never a real (stripped) line, it holds NUL bytes


def _lines(source: BinaryIO, limit: int) -> Iterator[bytes]:
    """Lines of at most ``limit`` bytes; a longer one is skipped unread and yields a sentinel.

    Memory stays bounded whatever arrives (a 10 GB line with no newline included).
    """
    while True:
        raw = source.readline(limit + 1)
        if not raw:
            return
        if len(raw) > limit and not raw.endswith(b"\n"):
            while True:  # drain the rest of the over-long line in bounded chunks
                chunk = source.readline(1 << 16)
                if not chunk or chunk.endswith(b"\n"):
                    break
            yield _TOO_LONG
            continue
        yield raw


def _judge(llm: Any) -> Any:
    from console.triage.judge import Judge

    return Judge(llm)


def _judge_line(judge: Any) -> str:
    st = judge.stats
    line = (
        f"LLM judge: asked {st.asked}, raised {st.raised}, skipped (already urgent) "
        f"{st.skipped}, malformed {st.malformed}, timeouts {st.timeouts}, errors {st.errors}"
    )
    if judge.last_error:
        line += f" (last: {judge.last_error})"
    return line


def _eval_cases(path: str, *, as_json: bool, judge: Any = None) -> int:
    """A hand-written JSONL set (tests/triage/multilingual/...): per language and per reason."""
    from console.triage import TriageEngine
    from console.triage.evaluate import (
        EvalError,
        evaluate_cases,
        evaluate_cases_judged,
        read_cases,
        render_cases,
    )

    try:
        cases = read_cases(path)
    except EvalError as exc:
        raise UsageError(str(exc)) from None
    engine = TriageEngine()
    if judge is not None:
        by_lang, by_reason = asyncio.run(evaluate_cases_judged(engine, cases, judge))
    else:
        by_lang, by_reason = evaluate_cases(engine, cases)
    if as_json:
        out: dict[str, Any] = {
            "languages": {k: v.row() for k, v in by_lang.items()},
            "reasons": {k: v.row() for k, v in by_reason.items()},
        }
        if judge is not None:
            out["judge"] = judge.stats.as_dict()
        print(json.dumps(out, indent=2))
    else:
        print(render_cases(by_lang, by_reason))
        if judge is not None:
            print(_judge_line(judge))
    return 0


def _eval(path: str, *, as_json: bool, as_curve: bool = False, judge: Any = None) -> int:
    from console.triage import TriageEngine
    from console.triage.evaluate import (
        EvalError,
        curve,
        evaluate,
        progress_bar,
        read_rows,
        render,
        render_curve,
    )
    from console.triage.evaluate import as_json as to_json

    if as_json and as_curve:
        raise UsageError("choose one of --json and --curve")
    if path.endswith(".jsonl") or Path(path).is_dir():
        if as_curve:
            raise UsageError("--curve goes with a labelled CSV, not a JSONL set")
        return _eval_cases(path, as_json=as_json, judge=judge)
    try:
        rows = read_rows(path)
    except EvalError as exc:
        raise UsageError(str(exc)) from None
    if as_curve:
        if judge is not None:
            raise UsageError("--curve moves the offline threshold; it does not go with --llm")
        print(render_curve(curve(rows)))
        return 0
    if judge is not None:
        from console.triage.evaluate import evaluate_judged

        tallies = asyncio.run(
            evaluate_judged(TriageEngine(), rows, judge, progress=progress_bar(len(rows)))
        )
    else:
        tallies = evaluate(TriageEngine(), rows, progress=progress_bar(len(rows)))
    if as_json:
        out = to_json(tallies)
        if judge is not None:
            out["llm judge"] = judge.stats.as_dict()
        print(json.dumps(out, indent=2))
    else:
        print(render(tallies))
        if judge is not None:
            print(_judge_line(judge))
    return 0
