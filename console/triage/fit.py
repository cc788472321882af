"""Fit the soft model's handful of weights on a labelled CSV (development tool).

``python -m console.triage.fit ../shared/data/triage/dev.csv`` prints conversation-grouped
cross-validated F1 and the weights to paste into ``engine.WEIGHTS``. Only the weights of
:data:`console.triage.engine.FEATURES` (and a bias) are learned: no vocabulary, no n-grams.
The decision threshold is folded into the bias so the shipped operating point is score 0.5.
"""

from __future__ import annotations

import argparse
import math
import zlib
from collections.abc import Sequence

from console.triage.engine import EMPATHY, FEATURES, FLOORS, TriageEngine
from console.triage.evaluate import REAL_PREFIX, Row, read_rows

# Real conversations plus the slices that say what is *not* distress (routine questions,
# non-negative tweets, good news). The other single-message slices are decided by hard cues.
TRAIN_PREFIXES = ("real_", "airline_", "banking77", "bitext_routine", "nlupp_routine", "ed_positive")
# The acceptance floors the operating point must keep (slice -> minimum recall/specificity).
RECALL = {"bitext_human_request": 0.95, "nlupp_handoff": 0.95, "bitext_abusive": 0.9, "ed_vulnerability": 0.85}
SPEC = {
    "banking77_routine": 0.9, "bitext_routine": 0.9, "nlupp_routine": 0.9,
    "airline_nonnegative": 0.8, "ed_positive_events": 0.8,
}
MARGIN = 0.03  # keep clear of the specificity floors: the kept-back set will differ
RECALL_MARGIN = 0.005  # recall on those slices comes mostly from hard cues, not the threshold


def featurize(engine: TriageEngine, rows: Sequence[Row]) -> list[tuple[list[float], bool, bool, str]]:
    """(features, label, hard-cue flag, slice) per row, replaying each conversation in order."""
    states: dict = {}
    out = []
    for row in rows:
        state = states.get(row.conversation)
        if state is None:
            state = states[row.conversation] = engine.new_state()
        sig = engine.signals(row.text, state)
        verdict = engine.observe(state, "customer", row.text)
        hard = any(state.floors.get(r, 0.0) >= EMPATHY for r in FLOORS) or "frustration" in state.floors
        out.append((sig.features, row.label, hard and verdict.needs_human, row.slice))
    return out


def _sigmoid(z: float) -> float:
    return 1.0 / (1.0 + math.exp(-max(-30.0, min(30.0, z))))


def logistic(xs: list[list[float]], ys: list[bool], l2: float = 0.01, epochs: int = 400) -> list[float]:
    """Full-batch gradient descent with L2; returns weights with the bias last."""
    d = len(xs[0])
    w = [0.0] * (d + 1)
    n = len(xs)
    lr = 0.5
    for _ in range(epochs):
        grad = [0.0] * (d + 1)
        for x, y in zip(xs, ys, strict=True):
            z = w[-1] + sum(wi * xi for wi, xi in zip(w, x, strict=False))
            err = _sigmoid(z) - (1.0 if y else 0.0)
            for i in range(d):
                grad[i] += err * x[i]
            grad[-1] += err
        for i in range(d):
            w[i] -= lr * (grad[i] / n + l2 * w[i])
        w[-1] -= lr * grad[-1] / n
    return w


def f1(pairs: list[tuple[bool, bool]]) -> float:
    tp = sum(1 for y, p in pairs if y and p)
    fp = sum(1 for y, p in pairs if not y and p)
    fn = sum(1 for y, p in pairs if y and not p)
    return 2 * tp / (2 * tp + fp + fn) if tp else 0.0


def _report(data: list, flagged: dict[int, bool]) -> str:
    by_slice: dict[str, list[bool]] = {}
    for i, f in flagged.items():
        by_slice.setdefault(data[i][3], []).append(f)
    parts = []
    for name, floor in RECALL.items():
        got = by_slice.get(name)
        if got and sum(got) / len(got) < floor + RECALL_MARGIN:
            parts.append(f"{name} recall {sum(got) / len(got):.2f}")
    for name, floor in SPEC.items():
        got = by_slice.get(name)
        if got and 1 - sum(got) / len(got) < floor + MARGIN:
            parts.append(f"{name} spec {1 - sum(got) / len(got):.2f}")
    pairs = [(data[i][1], f) for i, f in flagged.items() if data[i][3].startswith(REAL_PREFIX)]
    return ", ".join(parts) + f" (real F1 {f1(pairs):.3f})"


def _meets_floors(data: list, flagged: dict[int, bool]) -> bool:
    by_slice: dict[str, list[bool]] = {}
    for i, f in flagged.items():
        by_slice.setdefault(data[i][3], []).append(f)
    for name, floor in RECALL.items():
        got = by_slice.get(name)
        if got and sum(got) / len(got) < floor + RECALL_MARGIN:
            return False
    for name, floor in SPEC.items():
        got = by_slice.get(name)
        if got and 1 - sum(got) / len(got) < floor + MARGIN:
            return False
    return True


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("csv")
    parser.add_argument("--folds", type=int, default=5)
    parser.add_argument("--l2", type=float, default=0.001)
    parser.add_argument("--epochs", type=int, default=400)
    parser.add_argument("--rounds", type=int, default=2, help="refits (context features depend on the weights)")
    parser.add_argument("--threshold", type=float, help="use this decision threshold instead of searching")
    parser.add_argument("--train", default="", help="comma-separated slice prefixes to fit on (default: all)")
    args = parser.parse_args(argv)
    rows = read_rows(args.csv)
    engine = TriageEngine()
    for _round in range(args.rounds):
        data = featurize(engine, rows)
        prefixes = tuple(p for p in args.train.split(",") if p) or TRAIN_PREFIXES
        train = [(i, d) for i, d in enumerate(data) if d[3].startswith(prefixes)]
        fold_of = [zlib.crc32(rows[i].conversation.encode()) % args.folds for i, _ in train]
        oof: dict[int, float] = {}
        for k in range(args.folds):
            fit_set = [d for (i, d), f in zip(train, fold_of, strict=True) if f != k]
            w = logistic([d[0] for d in fit_set], [d[1] for d in fit_set], args.l2, args.epochs)
            for (i, d), f in zip(train, fold_of, strict=True):
                if f == k:
                    oof[i] = _sigmoid(w[-1] + sum(a * b for a, b in zip(w, d[0], strict=False)))
        w = logistic([d[0] for _, d in train], [d[1] for _, d in train], args.l2, args.epochs)
        # Slices left out of training still bound the operating point: score them with the
        # model fitted on everything it was allowed to see.
        for i, d in enumerate(data):
            if i not in oof and (d[3] in RECALL or d[3] in SPEC):
                oof[i] = _sigmoid(w[-1] + sum(a * b for a, b in zip(w, d[0], strict=False)))
        best = (0.0, 0.5)
        for t100 in range(20, 95):
            t = t100 / 100
            flagged = {i: p >= t or data[i][2] for i, p in oof.items()}
            if not _meets_floors(data, flagged):
                if t100 % 10 == 0:
                    print(f"  t={t:.2f} misses: {_report(data, flagged)}")
                continue
            pairs = [(data[i][1], f) for i, f in flagged.items() if data[i][3].startswith(REAL_PREFIX)]
            best = max(best, (f1(pairs), t))
        t = args.threshold if args.threshold else best[1]
        w[-1] -= math.log(t / (1 - t))
        print(f"round {_round + 1}: cross-validated pooled real F1 {best[0]:.3f} at threshold {t:.2f}")
        engine = TriageEngine(tuple(w))
    for name, value in zip(FEATURES, engine.weights, strict=False):
        print(f"  {name:<14} {value:+.3f}")
    print("WEIGHTS = (" + ", ".join(f"{v:.3f}" for v in engine.weights) + ",)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
