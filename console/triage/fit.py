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
from console.triage.evaluate import REAL_PREFIX, RECALL_FLOORS, SPEC_FLOORS, Row, read_rows

# Real conversations plus the slices that say what is *not* distress (routine questions,
# non-negative tweets, good news). The other single-message slices are decided by hard cues.
TRAIN_PREFIXES = ("real_", "airline_", "banking77", "bitext_routine", "nlupp_routine", "ed_positive")
# The acceptance floors the operating point must keep (slice -> minimum recall/specificity).
RECALL = RECALL_FLOORS
SPEC = SPEC_FLOORS
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
    """Full-batch gradient descent with L2 from zero; returns weights with the bias last.

    A fixed number of small steps stops short of the maximum-likelihood fit; that early stop
    shrinks the weights, and the shipped weights (fitted this way) score better on the real
    slices than the converged fit of :func:`newton` (pooled F1 0.540 against 0.527 on dev.csv).
    """
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


def newton(xs: list[list[float]], ys: list[bool], l2: float = 0.01, epochs: int = 25) -> list[float]:
    """L2-regularised logistic regression by Newton's method; returns weights with the bias last.

    Converges in a few iterations: about 1.5 s for a whole fit instead of 30 s, which is what
    trying out a new feature wants (``--newton``). The bias is not penalised.
    """
    d = len(xs[0]) + 1
    rows = [[*x, 1.0] for x in xs]
    targets = [1.0 if y else 0.0 for y in ys]
    n = len(rows)
    w = [0.0] * d
    for _ in range(epochs):
        grad = [0.0] * d
        hess = [[0.0] * d for _ in range(d)]
        for x, y in zip(rows, targets, strict=True):
            p = _sigmoid(sum(a * b for a, b in zip(w, x, strict=True)))
            err = p - y
            c = p * (1.0 - p)
            for i, xi in enumerate(x):
                if xi:
                    grad[i] += err * xi
                    cx = c * xi
                    row = hess[i]
                    for j in range(i + 1):
                        row[j] += cx * x[j]
        for i in range(d):
            for j in range(i):
                hess[j][i] = hess[i][j]
        for i in range(d - 1):
            grad[i] += n * l2 * w[i]
            hess[i][i] += n * l2
        hess[d - 1][d - 1] += 1e-9 * n  # a constant feature column never makes it singular
        step = _solve(hess, grad)
        w = [a - b for a, b in zip(w, step, strict=True)]
        if max(abs(s) for s in step) < 1e-6:
            break
    return w


def _solve(a: list[list[float]], b: list[float]) -> list[float]:
    """Solve ``a x = b`` (a symmetric positive definite) by Gaussian elimination with pivoting."""
    n = len(b)
    m = [[*row, rhs] for row, rhs in zip(a, b, strict=True)]
    for col in range(n):
        piv = max(range(col, n), key=lambda r: abs(m[r][col]))
        m[col], m[piv] = m[piv], m[col]
        if abs(m[col][col]) < 1e-12:
            continue
        for r in range(col + 1, n):
            f = m[r][col] / m[col][col]
            if f:
                for c in range(col, n + 1):
                    m[r][c] -= f * m[col][c]
    x = [0.0] * n
    for r in range(n - 1, -1, -1):
        if abs(m[r][r]) < 1e-12:
            continue
        x[r] = (m[r][n] - sum(m[r][c] * x[c] for c in range(r + 1, n))) / m[r][r]
    return x


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
    parser.add_argument("--epochs", type=int, default=400, help="gradient steps (Newton: iterations at most)")
    parser.add_argument("--newton", action="store_true", help="fit by Newton's method: converged and 20x faster, for trying features")
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
        solve = newton if args.newton else logistic
        epochs = min(args.epochs, 25) if args.newton else args.epochs
        oof: dict[int, float] = {}
        for k in range(args.folds):
            fit_set = [d for (i, d), f in zip(train, fold_of, strict=True) if f != k]
            w = solve([d[0] for d in fit_set], [d[1] for d in fit_set], args.l2, epochs)
            for (i, d), f in zip(train, fold_of, strict=True):
                if f == k:
                    oof[i] = _sigmoid(w[-1] + sum(a * b for a, b in zip(w, d[0], strict=False)))
        w = solve([d[0] for _, d in train], [d[1] for _, d in train], args.l2, epochs)
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
