"""``tandem triage eval``: score a labelled CSV and report per-slice quality.

Each row is scored as the last message of its conversation so far (conversation order is row
order), which is how the hub sees it: the verdict after that message arrived.
"""

from __future__ import annotations

import csv
import json
import math
import sys
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from console.triage.engine import State, TriageEngine, Verdict

REQUIRED = ("slice", "conversation", "text", "needs_empathy")
REAL_PREFIX = "real_"
POOLED = "real (pooled)"
# The acceptance floors of issue #4 on the single-message slices (slice -> minimum).
RECALL_FLOORS = {
    "bitext_human_request": 0.95,
    "nlupp_handoff": 0.95,
    "bitext_abusive": 0.9,
    "ed_vulnerability": 0.85,
}
SPEC_FLOORS = {
    "banking77_routine": 0.9,
    "bitext_routine": 0.9,
    "nlupp_routine": 0.9,
    "airline_nonnegative": 0.8,
    "ed_positive_events": 0.8,
}
JUDGED_TURNS = 12  # customer turns of a conversation sent to the LLM judge in an evaluation
CURVE = (0.3, 0.35, 0.4, 0.45, 0.5, 0.55, 0.6, 0.65, 0.7)


class EvalError(ValueError):
    """The CSV cannot be evaluated (missing, unreadable, wrong columns)."""


@dataclass(slots=True)
class Row:
    """One labelled customer message."""

    slice: str
    conversation: str
    text: str
    label: bool


@dataclass(slots=True)
class Tally:
    """Confusion counts for one slice."""

    tp: int = 0
    fp: int = 0
    tn: int = 0
    fn: int = 0
    levels: dict[str, int] = field(default_factory=dict)

    def add(self, label: bool, predicted: bool) -> None:
        if label and predicted:
            self.tp += 1
        elif label:
            self.fn += 1
        elif predicted:
            self.fp += 1
        else:
            self.tn += 1

    @property
    def n(self) -> int:
        return self.tp + self.fp + self.tn + self.fn

    def metrics(self) -> dict[str, Any]:
        """n, positives, and precision/recall/F1 or specificity, whichever the slice supports."""
        pos = self.tp + self.fn
        neg = self.tn + self.fp
        out: dict[str, Any] = {"n": self.n, "positives": pos}
        if pos:
            out["recall"] = self.tp / pos
        if pos and neg:
            flagged = self.tp + self.fp
            precision = self.tp / flagged if flagged else 0.0
            recall = out["recall"]
            out["precision"] = precision
            out["f1"] = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
        if neg:
            out["specificity"] = self.tn / neg
        return out


def read_rows(path: str | Path) -> list[Row]:
    """Read and validate the CSV; raises :class:`EvalError` with a one-line reason."""
    p = Path(path)
    if not p.is_file():
        raise EvalError(f"{p}: no such file")
    try:
        with p.open(newline="", encoding="utf-8") as fh:
            reader = csv.DictReader(fh)
            missing = [c for c in REQUIRED if c not in (reader.fieldnames or ())]
            if missing:
                raise EvalError(
                    f"{p}: missing column(s) {', '.join(missing)} (need {', '.join(REQUIRED)})"
                )
            rows = []
            for i, rec in enumerate(reader, start=2):
                label = (rec.get("needs_empathy") or "").strip()
                if label not in ("0", "1"):
                    raise EvalError(f"{p}:{i}: needs_empathy must be 0 or 1, got {label!r}")
                rows.append(
                    Row(
                        rec["slice"] or "",
                        rec["conversation"] or "",
                        rec["text"] or "",
                        label == "1",
                    )
                )
    except UnicodeDecodeError as exc:
        raise EvalError(f"{p}: not UTF-8 text ({exc.reason})") from None
    except csv.Error as exc:
        raise EvalError(f"{p}: not a readable CSV ({exc})") from None
    return rows


def score_rows(engine: TriageEngine, rows: Iterable[Row]) -> Iterator[tuple[Row, Verdict]]:
    """Each row's verdict as the latest customer message of its conversation."""
    states: dict[str, State] = {}
    for row in rows:
        state = states.get(row.conversation)
        if state is None:
            state = states[row.conversation] = engine.new_state()
        yield row, engine.observe(state, "customer", row.text)


def evaluate(
    engine: TriageEngine,
    rows: list[Row],
    progress: Callable[[int], None] | None = None,
) -> dict[str, Tally]:
    """Tally per slice plus the pooled real slices."""
    tallies: dict[str, Tally] = {}
    pooled = Tally()
    for i, (row, verdict) in enumerate(score_rows(engine, rows), start=1):
        _count(tallies, pooled, row, verdict)
        if progress is not None and i % 200 == 0:
            progress(i)
    if progress is not None:
        progress(len(rows))
    if pooled.n:
        tallies[POOLED] = pooled
    return tallies


def _count(tallies: dict[str, Tally], pooled: Tally, row: Row, verdict: Verdict) -> None:
    t = tallies.setdefault(row.slice, Tally())
    t.add(row.label, verdict.needs_human)
    t.levels[verdict.level] = t.levels.get(verdict.level, 0) + 1
    if row.slice.startswith(REAL_PREFIX):
        pooled.add(row.label, verdict.needs_human)


async def evaluate_judged(
    engine: TriageEngine,
    rows: list[Row],
    judge: Any,
    progress: Callable[[int], None] | None = None,
) -> dict[str, Tally]:
    """Like :func:`evaluate`, each verdict reviewed by ``judge`` (a :class:`Judge`) as the
    hub would: the conversation so far (its last :data:`JUDGED_TURNS` turns) is sent unless
    the offline engine already says urgent."""
    tallies: dict[str, Tally] = {}
    pooled = Tally()
    states: dict[str, State] = {}
    transcripts: dict[str, list[dict[str, Any]]] = {}
    for i, row in enumerate(rows, start=1):
        state = states.get(row.conversation)
        if state is None:
            state = states[row.conversation] = engine.new_state()
        offline = engine.observe(state, "customer", row.text)
        turns = transcripts.setdefault(row.conversation, [])
        turns.append({"role": "customer", "text": row.text})
        verdict, _ = await judge.review(turns[-JUDGED_TURNS:], offline)
        _count(tallies, pooled, row, verdict)
        if progress is not None and i % 20 == 0:
            progress(i)
    if progress is not None:
        progress(len(rows))
    if pooled.n:
        tallies[POOLED] = pooled
    return tallies


def render(tallies: dict[str, Tally]) -> str:
    """A fixed-width table, one line per slice, the pooled real slices last."""
    head = f"{'slice':<26} {'n':>5} {'pos':>5} {'prec':>6} {'recall':>6} {'F1':>6} {'spec':>6}"
    lines = [head, "-" * len(head)]

    def cell(m: dict[str, Any], key: str) -> str:
        return f"{m[key]:6.3f}" if key in m else f"{'':6}"

    names = sorted(k for k in tallies if k != POOLED) + ([POOLED] if POOLED in tallies else [])
    for name in names:
        m = tallies[name].metrics()
        shown = "".join(ch if ch.isprintable() else "?" for ch in name)  # slice names are data
        lines.append(
            f"{shown:<26} {m['n']:>5} {m['positives']:>5} {cell(m, 'precision')} {cell(m, 'recall')}"
            f" {cell(m, 'f1')} {cell(m, 'specificity')}"
        )
    return "\n".join(lines)


def curve(
    rows: list[Row], thresholds: Iterable[float] = CURVE, weights: tuple[float, ...] | None = None
) -> list[tuple[float, dict[str, Tally]]]:
    """Tallies with the soft model's decision threshold moved to each of ``thresholds``.

    ``thresholds`` are given relative to the shipped operating point, which is 0.5: a point
    ``t`` moves the threshold on the filter's posterior by ``logit(t)``, so hard cues, floors,
    the filter and the conversation rules stay as shipped. This is the precision/recall
    trade-off on the real slices against the floors of the others.
    """
    shipped = TriageEngine(weights).threshold
    base = math.log(shipped / (1.0 - shipped))
    out = []
    for t in thresholds:
        if not 0.0 < t < 1.0:
            raise EvalError(f"threshold {t} is not between 0 and 1")
        moved = 1.0 / (1.0 + math.exp(-(base + math.log(t / (1.0 - t)))))
        out.append((t, evaluate(TriageEngine(weights, threshold=moved), rows)))
    return out


def render_curve(points: list[tuple[float, dict[str, Tally]]]) -> str:
    """One line per threshold: pooled real precision/recall/F1, then each floor (``*`` = missed)."""
    present = points[0][1] if points else {}
    floors = [(n, "recall", f) for n, f in RECALL_FLOORS.items() if n in present]
    floors += [(n, "specificity", f) for n, f in SPEC_FLOORS.items() if n in present]
    head = f"{'threshold':>9} {'prec':>6} {'recall':>6} {'F1':>6}" + "".join(
        f" {name[:14]:>15}" for name, _, _ in floors
    )
    lines = [head, "-" * len(head)]
    for t, tallies in points:
        m = tallies[POOLED].metrics() if POOLED in tallies else {}
        cells = "".join(f" {m.get(k, 0.0):6.3f}" for k in ("precision", "recall", "f1"))
        for name, key, floor in floors:
            got = tallies[name].metrics().get(key, 0.0)
            cells += f" {got:14.3f}{'*' if got < floor else ' '}"
        mark = "  <- shipped" if abs(t - 0.5) < 1e-9 else ""
        lines.append(f"{t:9.2f}{cells}{mark}")
    lines.append("recall floors: " + ", ".join(f"{n} {f}" for n, f in RECALL_FLOORS.items()))
    lines.append("specificity floors: " + ", ".join(f"{n} {f}" for n, f in SPEC_FLOORS.items()))
    return "\n".join(lines)


def as_json(tallies: dict[str, Tally]) -> dict[str, Any]:
    """Machine-readable metrics, slice -> metrics (with the level histogram)."""
    return {name: {**t.metrics(), "levels": dict(t.levels)} for name, t in tallies.items()}


def progress_bar(total: int, stream: Any = None) -> Callable[[int], None]:
    """A minimal stderr progress bar (only when stderr is a terminal)."""
    out = stream if stream is not None else sys.stderr
    live = hasattr(out, "isatty") and out.isatty()

    def update(done: int) -> None:
        if not live or not total:
            return
        width = 30
        filled = int(width * done / total)
        out.write(f"\r  scoring [{'#' * filled}{'.' * (width - filled)}] {done}/{total}")
        if done >= total:
            out.write("\r" + " " * (width + 40) + "\r")
        out.flush()

    return update


# -- the multilingual sets (tests/triage/multilingual/<set>/<lang>.jsonl) ----------------------

SET_FIELDS = ("id", "lang", "needs_human")


@dataclass(slots=True)
class Case:
    """One hand-written message (or conversation) of a multilingual evaluation set."""

    ident: str
    lang: str
    messages: list[dict[str, Any]]
    needs_human: bool
    reason: str  # the hard reason it was written for ("" for routine messages)


def read_cases(path: str | Path) -> list[Case]:
    """Read a ``.jsonl`` set, or every ``*.jsonl`` under a directory; :class:`EvalError` if bad.

    Each line: ``{"id", "lang", "needs_human": bool, "reason"?, "text" | "messages"}``.
    """
    p = Path(path)
    files = sorted(p.rglob("*.jsonl")) if p.is_dir() else [p]
    if not files or not all(f.is_file() for f in files):
        raise EvalError(f"{p}: no such file (or no .jsonl files under it)")
    cases: list[Case] = []
    for f in files:
        try:
            lines = f.read_text("utf-8").splitlines()
        except UnicodeDecodeError as exc:
            raise EvalError(f"{f}: not UTF-8 text ({exc.reason})") from None
        for i, line in enumerate(lines, start=1):
            if not line.strip():
                continue
            try:
                rec = json.loads(line)
            except ValueError as exc:
                raise EvalError(f"{f}:{i}: not JSON ({exc})") from None
            if not isinstance(rec, dict) or any(k not in rec for k in SET_FIELDS):
                raise EvalError(f"{f}:{i}: need {', '.join(SET_FIELDS)} and text or messages")
            if "messages" in rec and isinstance(rec["messages"], list):
                messages = [m for m in rec["messages"] if isinstance(m, dict)]
            elif isinstance(rec.get("text"), str):
                messages = [{"role": "customer", "text": rec["text"]}]
            else:
                raise EvalError(f"{f}:{i}: need text (a string) or messages (a list)")
            if not isinstance(rec["needs_human"], bool):
                raise EvalError(f"{f}:{i}: needs_human must be true or false")
            cases.append(
                Case(
                    str(rec["id"]),
                    str(rec["lang"]),
                    messages,
                    rec["needs_human"],
                    str(rec.get("reason") or ""),
                )
            )
    return cases


@dataclass(slots=True)
class SetTally:
    """Needs-a-human recall, routine specificity and language accuracy for one group."""

    tally: Tally = field(default_factory=Tally)
    lang_right: int = 0
    missed: list[str] = field(default_factory=list)  # ids of wrong verdicts

    def row(self) -> dict[str, Any]:
        t = self.tally
        out: dict[str, Any] = {"n": t.n, "human": t.tp + t.fn, "routine": t.tn + t.fp}
        if t.tp + t.fn:
            out["recall"] = t.tp / (t.tp + t.fn)
        if t.tn + t.fp:
            out["specificity"] = t.tn / (t.tn + t.fp)
        out["lang_accuracy"] = self.lang_right / t.n if t.n else 0.0
        out["wrong"] = list(self.missed)
        return out


def evaluate_cases(
    engine: TriageEngine, cases: list[Case]
) -> tuple[dict[str, SetTally], dict[str, SetTally]]:
    """Per language and per reason (the reason a needs-a-human message was written for)."""
    by_lang: dict[str, SetTally] = {}
    by_reason: dict[str, SetTally] = {}
    for case in cases:
        _count_case(by_lang, by_reason, case, engine.score_conversation(case.messages))
    return by_lang, by_reason


async def evaluate_cases_judged(
    engine: TriageEngine, cases: list[Case], judge: Any
) -> tuple[dict[str, SetTally], dict[str, SetTally]]:
    """:func:`evaluate_cases` with every verdict reviewed by ``judge`` (a :class:`Judge`)."""
    by_lang: dict[str, SetTally] = {}
    by_reason: dict[str, SetTally] = {}
    for case in cases:
        offline = engine.score_conversation(case.messages)
        verdict, _ = await judge.review(case.messages, offline)
        _count_case(by_lang, by_reason, case, verdict)
    return by_lang, by_reason


def _count_case(
    by_lang: dict[str, SetTally], by_reason: dict[str, SetTally], case: Case, verdict: Verdict
) -> None:
    flagged = verdict.needs_human
    for key, table in ((case.lang, by_lang), (case.reason or "routine", by_reason)):
        st = table.setdefault(key, SetTally())
        st.tally.add(case.needs_human, flagged)
        st.lang_right += verdict.lang == case.lang
        if flagged != case.needs_human:
            st.missed.append(case.ident)


def render_cases(by_lang: dict[str, SetTally], by_reason: dict[str, SetTally]) -> str:
    """Two fixed-width tables: per language (with the pooled total), then per reason."""
    head = f"{'language':<10} {'n':>4} {'human':>6} {'recall':>7} {'routine':>8} {'spec':>6} {'lang ok':>8}"
    lines = [head, "-" * len(head)]
    total = SetTally()
    for name in sorted(by_lang):
        st = by_lang[name]
        for attr in ("tp", "fp", "tn", "fn"):
            setattr(total.tally, attr, getattr(total.tally, attr) + getattr(st.tally, attr))
        total.lang_right += st.lang_right
        lines.append(_set_line(name, st))
    lines.append(_set_line("all", total))
    lines.append("")
    head = f"{'reason':<20} {'n':>4} {'recall':>7} {'spec':>6}"
    lines += [head, "-" * len(head)]
    for name in sorted(by_reason):
        r = by_reason[name].row()
        rec = f"{r['recall']:7.3f}" if "recall" in r else f"{'':7}"
        spec = f"{r['specificity']:6.3f}" if "specificity" in r else f"{'':6}"
        shown = "".join(ch if ch.isprintable() else "?" for ch in name)[:20]
        lines.append(f"{shown:<20} {r['n']:>4} {rec} {spec}")
    wrong = [i for name in sorted(by_lang) for i in by_lang[name].missed]
    if wrong:
        shown_ids = ", ".join("".join(ch if ch.isprintable() else "?" for ch in i) for i in wrong)
        lines.append(f"\nwrong: {shown_ids}")
    return "\n".join(lines)


def _set_line(name: str, st: SetTally) -> str:
    r = st.row()
    rec = f"{r['recall']:7.3f}" if "recall" in r else f"{'':7}"
    spec = f"{r['specificity']:6.3f}" if "specificity" in r else f"{'':6}"
    shown = "".join(ch if ch.isprintable() else "?" for ch in name)[:10]
    return (
        f"{shown:<10} {r['n']:>4} {r['human']:>6} {rec} {r['routine']:>8} {spec}"
        f" {r['lang_accuracy']:8.3f}"
    )
