"""The interval the report gives over an experiment's replicas (its runs with other seeds).

A Student-t interval of the mean: with 3 to 5 seeds a bootstrap's percentiles are the sample's
extremes and too narrow, while the t-interval is exact for normal errors. The t quantile is found
by bisection on the CDF (Simpson's rule on the density), so no statistics package is needed.
"""

from __future__ import annotations

import math
from collections.abc import Sequence


def t_cdf(x: float, df: int) -> float:
    """Student-t CDF with ``df`` degrees of freedom (Simpson's rule from 0 to ``x``)."""
    c = math.exp(math.lgamma((df + 1) / 2) - math.lgamma(df / 2)) / math.sqrt(df * math.pi)

    def pdf(t: float) -> float:
        return c * (1 + t * t / df) ** (-(df + 1) / 2)

    n = 2000  # even; |error| < 1e-9 for the x a 95% quantile needs
    h = abs(x) / n
    area = pdf(0) + pdf(abs(x)) + sum((4 if i % 2 else 2) * pdf(i * h) for i in range(1, n))
    half = area * h / 3
    return 0.5 + (half if x >= 0 else -half)


def t_quantile(p: float, df: int) -> float:
    """The ``p`` quantile (0.5 < p < 1) of Student's t with ``df`` degrees of freedom."""
    low, high = 0.0, 1000.0
    for _ in range(60):
        mid = (low + high) / 2
        low, high = (mid, high) if t_cdf(mid, df) < p else (low, mid)
    return (low + high) / 2


def mean_interval(values: Sequence[float], level: float = 0.95) -> tuple[float, float | None]:
    """(mean, half-width of the ``level`` t-interval of the mean); None for fewer than 2 values."""
    n = len(values)
    mean = sum(values) / n
    if n < 2:
        return mean, None
    sd = math.sqrt(sum((v - mean) ** 2 for v in values) / (n - 1))
    return mean, t_quantile(0.5 + level / 2, n - 1) * sd / math.sqrt(n)
