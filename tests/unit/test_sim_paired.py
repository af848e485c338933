"""Paired differences between arms and their 95% intervals, on known numbers."""

from __future__ import annotations

import math

import numpy as np
import pytest

from recstream.sim.paired import Outcomes, compare, interval, pool


def outcomes(clicks: list[list[int]], purchases: list[list[int]] | None = None) -> Outcomes:
    c = np.array(clicks)
    return Outcomes(c, np.array(purchases) if purchases is not None else np.zeros_like(c))


def test_interval_is_mean_plus_minus_1_96_standard_errors() -> None:
    x = interval(np.array([1.0, 0.0, 0.0, 1.0]))
    half = 1.96 * math.sqrt(1 / 3) / 2  # sd (n − 1) of 1, 0, 0, 1 is sqrt(1/3)
    assert (x.diff, x.n) == (0.5, 4)
    assert x.low == pytest.approx(0.5 - half) and x.high == pytest.approx(0.5 + half)
    assert interval(np.array([2.0, 2.0])).to_json() == {"diff": 2, "low": 2, "high": 2, "n": 2}
    assert interval(np.array([0.3])).to_json() == {"diff": 0.3, "low": None, "high": None, "n": 1}
    assert interval(np.zeros(0)).n == 0


def test_compare_per_round_and_over_rounds_with_the_user_as_unit() -> None:
    a = outcomes([[1, 0, 1, 1], [0, 0, 1, 1]], purchases=[[1, 0, 0, 0], [0, 0, 0, 0]])
    b = outcomes([[0, 0, 1, 0], [0, 1, 0, 1]])
    out = compare(a, b)
    ctr = out["ctr"]
    # Round 1: differences 1, 0, 0, 1; round 2: 0, -1, 1, 0.
    assert [r["round"] for r in ctr["rounds"]] == [1, 2]
    assert [r["diff"] for r in ctr["rounds"]] == [0.5, 0.0]
    assert ctr["rounds"][0]["high"] == pytest.approx(0.5 + 1.96 * math.sqrt(1 / 3) / 2)
    # All rounds: each user's mean first (0.5, -0.5, 0.5, 0.5): mean 0.25, sd 0.5, n 4.
    assert ctr["diff"] == pytest.approx(0.25) and ctr["n"] == 4
    assert ctr["low"] == pytest.approx(0.25 - 1.96 * 0.5 / 2)
    assert ctr["high"] == pytest.approx(0.25 + 1.96 * 0.5 / 2)
    assert out["conversion"]["diff"] == pytest.approx(0.125)
    assert out["conversion"]["rounds"][1] == {
        "round": 2,
        "diff": 0.0,
        "low": 0.0,
        "high": 0.0,
        "n": 4,
    }


def test_identical_arms_differ_by_exactly_nothing() -> None:
    a = outcomes([[1, 0, 1], [0, 1, 1]], [[1, 0, 0], [0, 0, 1]])
    out = compare(a, a)
    for metric in ("ctr", "conversion"):
        assert (out[metric]["diff"], out[metric]["low"], out[metric]["high"]) == (0.0, 0.0, 0.0)


def test_pooling_runs_is_one_sample_of_all_their_users() -> None:
    a1, b1 = outcomes([[1, 1], [1, 0]]), outcomes([[0, 1], [0, 0]])
    a2, b2 = outcomes([[0, 1, 1]]), outcomes([[0, 0, 0]])  # a run of one round
    out = pool([(a1, b1), (a2, b2)])["ctr"]
    # Users' mean differences: run 1 (1, 0), run 2 (0, 1, 1).
    expected = interval(np.array([1.0, 0.0, 0.0, 1.0, 1.0]))
    assert (out["diff"], out["low"], out["high"], out["n"]) == (
        expected.diff,
        expected.low,
        expected.high,
        5,
    )
    # Round 1 pools five users, round 2 only the first run's two.
    assert [r["n"] for r in out["rounds"]] == [5, 2]
    assert out["rounds"][1]["diff"] == 0.5
    assert pool([(a1, b1)]) == compare(a1, b1)


def test_pool_refuses_arms_of_different_shapes() -> None:
    with pytest.raises(ValueError, match="rounds"):
        compare(outcomes([[1, 0]]), outcomes([[1, 0, 1]]))


def test_outcomes_travel_as_json() -> None:
    a = outcomes([[1, 0, 1], [0, 1, 1]], [[1, 0, 0], [0, 0, 1]])
    back = Outcomes.from_json(a.to_json())
    assert np.array_equal(back.clicks, a.clicks) and np.array_equal(back.purchases, a.purchases)
    with pytest.raises(ValueError, match="rounds"):
        Outcomes.from_json({"clicks": [1, 0], "purchases": [1, 0]})
