"""The dashboard's series from workers' snapshots: rates from cumulative counters, windowed
ratios, gaps, the latency histogram, the model timeline."""

from __future__ import annotations

from typing import Any

import pytest

from recstream.dashboard.series import (
    Timeline,
    latency_histogram,
    model_timeline,
    series,
    steps_of,
    workers,
)


def snap(
    ts: int,
    lists: int,
    clicks: int = 0,
    worker: str = "w1",
    version: str = "v1",
    valid: int | None = None,
    **extra: Any,
) -> dict[str, Any]:
    summary = {
        "impressions": lists,
        "clicks": clicks,
        "purchases": clicks // 2,
        "coverage": 0.5,
        "diversity": 0.4,
        "diversity_n": lists,
        "latency_ms": {"p99": 20.0, "counts": [1, 2, 0]},
    }
    return {
        "worker": worker,
        "ts": ts,
        "serving": {"version": version, "since_ms": 500},
        "versions": {version: summary},
        "events": {"valid": lists if valid is None else valid, "applied": lists, "rejected": 0},
        "latency_le_ms": [5.0, 10.0],
        "lag": {"0": 3, "1": 4},
        **extra,
    }


def test_steps_cover_first_to_now() -> None:
    assert steps_of(1_000, 25_000, 10_000) == [10_000, 20_000, 30_000]


def test_rates_are_differences_of_cumulative_counters_per_second() -> None:
    t = Timeline(history_ms=10**9)
    for k in range(10):  # a snapshot every 5 s, 50 lists and 5 clicks more each time
        t.add(snap(1_000 + 5_000 * k, lists=50 * k, clicks=5 * k))
    out = series(t, now_ms=47_000, step_ms=5_000, rate_steps=2, window_steps=4)
    v1 = out["versions"]["v1"]
    assert out["t"][0] == 5.0
    assert v1["lists_per_s"][0] is None  # nothing before the first step to difference
    assert v1["lists_per_s"][1] == pytest.approx(10.0)  # 50 lists in 5 s
    assert v1["lists_per_s"][-1] == pytest.approx(10.0)
    assert out["events"]["valid"][-1] == pytest.approx(10.0)
    assert v1["ctr"][-1] == pytest.approx(0.1)
    assert v1["conversion"][-1] == pytest.approx((45 // 2 - 25 // 2) / 200)  # clicks // 2
    assert v1["diversity"][-1] == pytest.approx(0.4)
    assert v1["coverage"][-1] == 0.5
    assert v1["latency_p99_ms"][-1] == 20.0
    assert out["lag"]["w1"][-1] == 7.0


def test_silence_is_a_gap_not_a_zero() -> None:
    t = Timeline(history_ms=10**9)
    t.add(snap(1_000, lists=0))
    t.add(snap(6_000, lists=100))
    out = series(t, now_ms=100_000, step_ms=5_000, rate_steps=1, window_steps=1, stale_steps=3)
    rates = out["versions"]["v1"]["lists_per_s"]
    assert rates[1] == pytest.approx(20.0)
    assert rates[2] == 0.0  # carried over a quiet step: known, nothing new
    assert rates[-1] is None  # nobody reported for longer than stale_steps: unknown
    assert out["versions"]["v1"]["ctr"][2] is None  # no lists in the window: no CTR


def test_two_workers_reading_the_same_counters_are_not_added() -> None:
    t = Timeline(history_ms=10**9)
    for k in range(4):
        t.add(snap(1_000 + 5_000 * k, lists=100 * k, worker="w1"))
        # The second worker read Redis a moment earlier: an older, smaller value.
        t.add(snap(1_500 + 5_000 * k, lists=max(0, 100 * k - 10), worker="w2"))
    out = series(t, now_ms=17_000, step_ms=5_000, rate_steps=1)
    assert out["versions"]["v1"]["lists_per_s"][-1] == pytest.approx(20.0)
    assert set(out["lag"]) == {"w1", "w2"}


def test_anything_but_a_snapshot_is_counted_and_dropped() -> None:
    t = Timeline(history_ms=10**9)
    assert not t.add(None)
    assert not t.add({"worker": "w", "ts": "soon", "versions": {}})
    assert t.add(snap(1, 0))
    assert (len(t.snapshots), t.ignored) == (1, 2)
    t.prune(now_ms=10**9 + 2)
    assert not t.snapshots


def test_latency_histogram_adds_workers_and_intervals_since_a_time() -> None:
    t = Timeline(history_ms=10**9)
    t.add(snap(1_000, 1))
    t.add(snap(2_000, 1, worker="w2"))
    t.add(snap(3_000, 1, version="v2"))
    got = latency_histogram(t, since_ms=1_500)
    assert got["le_ms"] == [5.0, 10.0]
    assert got["counts"] == {"v1": [1, 2, 0], "v2": [1, 2, 0]}
    assert latency_histogram(t, since_ms=0)["counts"]["v1"] == [2, 4, 0]


def test_model_timeline_orders_what_happened_to_each_version() -> None:
    t = Timeline(history_ms=10**9)
    t.announce({"version": "v2", "path": "/a/v2"}, 2_000)
    t.announce("not an announcement", 2_100)
    t.add(snap(3_000, 1, version="v1"))
    refusal = {"version": "v2", "reason": "sha256 differs", "ts": 2_500}
    t.add(snap(4_000, 1, version="v1", refused=[refusal]))
    t.add(snap(5_000, 1, version="v1", refused=[refusal]))  # the same refusal, repeated
    trained = [{"version": "v2", "ts": 1_000, "valid": {"valid_hr@10": 0.3}}]
    events = model_timeline(t, trained)
    assert [(e["kind"], e["version"], e["ts"]) for e in events] == [
        ("serving", "v1", 500),
        ("trained", "v2", 1_000),
        ("announced", "v2", 2_000),
        ("refused", "v2", 2_500),
    ]
    assert events[-1]["reason"] == "sha256 differs"


def test_workers_show_each_ones_newest_snapshot() -> None:
    t = Timeline(history_ms=10**9)
    t.add(snap(2_000, 1, version="v2"))
    t.add(snap(1_000, 1, version="v1"))  # older, arrived later
    t.add(snap(1_500, 1, worker="w0", ab="v1:50,v2:50"))
    got = workers(t)
    assert list(got) == ["w0", "w1"]
    assert (got["w1"]["version"], got["w1"]["ts"], got["w1"]["lag"]) == ("v2", 2_000, 7.0)
    assert got["w0"]["ab"] == "v1:50,v2:50"
