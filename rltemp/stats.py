"""Small statistics for seed-level comparisons: mean ± std, paired differences with a 95 % t interval."""

from __future__ import annotations

import math
import statistics

# Two-sided 95 % Student-t quantiles by degrees of freedom (normal beyond 30).
_T95 = {1: 12.706, 2: 4.303, 3: 3.182, 4: 2.776, 5: 2.571, 6: 2.447, 7: 2.365, 8: 2.306, 9: 2.262, 10: 2.228,
        12: 2.179, 15: 2.131, 20: 2.086, 25: 2.060, 30: 2.042}


def t95(df: int) -> float:
    if df <= 0:
        return float("nan")
    if df in _T95:
        return _T95[df]
    below = max(k for k in _T95 if k < df) if df < 30 else 30
    return _T95[below] if df < 30 else 1.96


def mean_std(xs: list[float]) -> tuple[float, float]:
    """Mean and sample standard deviation (0 for one value)."""
    return statistics.mean(xs), (statistics.stdev(xs) if len(xs) > 1 else 0.0)


def paired_ci(a: list[float], b: list[float]) -> tuple[float, float]:
    """Mean of ``a - b`` over paired seeds and the half-width of its 95 % t interval (nan for n = 1)."""
    d = [x - y for x, y in zip(a, b, strict=True)]
    m, s = mean_std(d)
    n = len(d)
    return m, t95(n - 1) * s / math.sqrt(n) if n > 1 else float("nan")
