"""The replicas' interval: Student-t quantiles and the interval of a mean."""

from __future__ import annotations

import math

import pytest

from sstl.report.stats import mean_interval, t_cdf, t_quantile


@pytest.mark.parametrize(
    ("df", "q"), [(1, 12.7062), (2, 4.3027), (4, 2.7764), (9, 2.2622), (60, 2.0003)]
)
def test_t_quantiles_match_the_published_table(df, q):
    assert t_quantile(0.975, df) == pytest.approx(q, abs=2e-3)


def test_t_cdf_is_symmetric_and_tends_to_the_normal():
    assert t_cdf(0.0, 3) == pytest.approx(0.5)
    assert t_cdf(-1.5, 3) == pytest.approx(1 - t_cdf(1.5, 3))
    normal = 0.5 * (1 + math.erf(1.96 / math.sqrt(2)))
    assert t_cdf(1.96, 10_000) == pytest.approx(normal, abs=1e-4)


def test_mean_interval_of_three_seeds():
    mean, half = mean_interval([40.0, 44.0, 48.0])
    assert mean == pytest.approx(44.0)
    assert half == pytest.approx(4.3027 * 4.0 / math.sqrt(3), abs=1e-2)  # sd 4, n 3
    assert mean_interval([50.0]) == (50.0, None)  # one run: no interval
    assert mean_interval([3.0, 3.0, 3.0])[1] == 0.0
