"""A/B splits and their report: stable arms, shares kept, intervals and the sample-ratio check
against known values."""

from __future__ import annotations

from collections import Counter

import pytest

from recstream.streams.ab import (
    Split,
    _chi2_sf,
    difference,
    parse_split,
    proportion,
    report,
    sample_ratio,
)


def test_a_split_parses_and_bad_ones_say_why() -> None:
    assert parse_split("v7:50, v8:50") == Split((("v7", 50), ("v8", 50)))
    assert parse_split("  ") is None
    for bad in ("v7", "v7:0,v8:1", "v7:x,v8:1", "v7:50", "v7:1,v7:1", ":5,v8:5"):
        with pytest.raises(ValueError, match="RECSTREAM_AB"):
            parse_split(bad)


def test_arms_are_stable_keep_their_shares_and_reshuffle_with_a_new_split() -> None:
    split = parse_split("a:20,b:80")
    assert split is not None
    arms = [split.arm(f"user-{n}") for n in range(20_000)]
    assert arms == [split.arm(f"user-{n}") for n in range(20_000)]  # same answer every time
    counts = Counter(arms)
    assert abs(counts["a"] / 20_000 - 0.2) < 0.015
    other = parse_split("a:20,b:80,c:1")
    assert other is not None
    moved = sum(a != other.arm(f"user-{n}") for n, a in enumerate(arms))
    assert moved > 4_000  # a new experiment: users drawn again


def test_the_chi_square_tail_matches_the_tables() -> None:
    for x, dof, p in ((3.841, 1, 0.05), (10.828, 1, 0.001), (5.991, 2, 0.05), (7.815, 3, 0.05)):
        assert _chi2_sf(x, dof) == pytest.approx(p, abs=2e-4)
    assert _chi2_sf(0.0, 2) == 1.0


def test_intervals_and_the_sample_ratio_check() -> None:
    p = proportion(30, 1000)  # Wilson: [0.0211, 0.0425]
    assert p["value"] == 0.03
    assert p["low"] == pytest.approx(0.02109, abs=1e-4) and p["high"] == pytest.approx(
        0.0425, abs=1e-4
    )
    assert proportion(0, 0)["value"] is None
    d = difference((30, 1000), (60, 1000))
    assert d["diff"] == pytest.approx(0.03) and d["low"] > 0
    split = Split((("a", 50), ("b", 50)))
    assert not sample_ratio(split, {"a": 5000, "b": 5050})["mismatch"]
    assert sample_ratio(split, {"a": 5000, "b": 5600})["mismatch"]


def test_the_report_reads_each_arms_counters() -> None:
    split = Split((("v1", 50), ("v2", 50)))
    counters = {
        "v1": {"users": 100.0, "lists": 1000.0, "hit:click": 30.0, "hit:purchase": 5.0},
        "v2": {"users": 104.0, "lists": 1010.0, "hit:click": 61.0},
    }
    out = report(split, counters)
    assert out["arms"]["v1"]["users"] == 100 and out["arms"]["v2"]["lists"] == 1010
    assert out["arms"]["v2"]["conversion"]["value"] == 0.0
    assert out["versus"]["baseline"] == "v1"
    assert out["versus"]["arms"]["v2"]["ctr"]["low"] > 0
    assert out["sample_ratio"]["mismatch"] is False
