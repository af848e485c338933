"""Percentiles: one definition (recstream.stats) for every report."""

from __future__ import annotations

import math

import numpy as np

from recstream.stats import percentile, percentile_name, percentiles


def test_a_percentile_is_an_observed_value_and_misses_are_none() -> None:
    samples = [1.0, 2.0, 3.0, 10.0]
    assert percentile(samples, 50) == 3.0  # "higher": never 2.5
    got = percentiles(samples, (50, 99, 99.9), scale=1000, digits=1)
    assert got == {"p50": 3000.0, "p99": 10000.0, "p999": 10000.0}
    late = percentiles([1.0, 2.0, 3.0, math.inf], (50, 99))  # a missing list: infinitely late
    assert late == {"p50": 3.0, "p99": None}
    assert percentiles([], (50, 95)) == {"p50": None, "p95": None}
    assert [percentile_name(q) for q in (50, 95, 99.9)] == ["p50", "p95", "p999"]


def test_rounding_and_scale() -> None:
    got = percentiles(np.array([0.0012346, 0.5]), (50,), scale=1000, digits=3)
    assert got == {"p50": 500.0}
    assert percentiles(np.array([0.0012346]), (50,), scale=1000, digits=3) == {"p50": 1.235}


def test_rounded_keeps_json_finite() -> None:
    from recstream.stats import rounded

    assert rounded(1.23456) == 1.235
    assert rounded(math.inf) is None and rounded(math.nan) is None
