"""Seed-level statistics: mean ± std, and paired differences with a Student-t 95 % interval (scipy)."""

from __future__ import annotations

import math

import numpy as np
from scipy import stats


def mean_std(xs: list[float]) -> tuple[float, float]:
    """Mean and sample standard deviation (ddof = 1; 0 for a single value)."""
    a = np.asarray(xs, dtype=np.float64)
    return float(a.mean()), (float(a.std(ddof=1)) if len(a) > 1 else 0.0)


def t_half_width(std: float, n: int, confidence: float = 0.95) -> float:
    """Half-width of the two-sided t interval of a mean of ``n`` values with sample std ``std``."""
    if n < 2:
        return float("nan")
    return float(stats.t.ppf(0.5 + confidence / 2, n - 1)) * std / math.sqrt(n)


def paired_ci(a: list[float], b: list[float], confidence: float = 0.95) -> tuple[float, float]:
    """Mean of ``a - b`` over paired seeds and the half-width of its t interval (nan for n = 1)."""
    if len(a) != len(b):
        raise ValueError(f"paired_ci needs equally long lists, got {len(a)} and {len(b)}")
    m, s = mean_std([x - y for x, y in zip(a, b, strict=True)])
    return m, t_half_width(s, len(a), confidence)
