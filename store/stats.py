"""Summary statistics, defined once for every figure Tandem prints.

Percentiles are **nearest-rank**: the ``q`` percentile of ``n`` values is the value at rank
``ceil(q * n)`` (1-based) of the sorted values. It is always one of the measured values (never
an interpolation between two), so a p99 of 100 samples is the 99th slowest and a p50 of two
samples is the smaller one. Benchmarks, the hub, the drafts panel and ``tandem report`` all use
it, so p99s from different places can be compared.
"""

from __future__ import annotations

import math
from collections.abc import Iterable


def percentile(values: Iterable[float], q: float) -> float | None:
    """The nearest-rank percentile ``q`` (0..1) of ``values``; ``None`` when there are none.

    :param values: the samples, in any order
    :param q: 0.5 for the median, 0.99 for p99
    """
    if not 0 <= q <= 1:
        raise ValueError(f"percentile q must be within 0..1 (got {q})")
    ordered = sorted(values)
    if not ordered:
        return None
    rank = max(1, math.ceil(q * len(ordered)))
    return float(ordered[rank - 1])


def percentile_or_nan(values: Iterable[float], q: float) -> float:
    """:func:`percentile`, with NaN for no values: for figures printed as numbers (``nan``)."""
    value = percentile(values, q)
    return math.nan if value is None else value
