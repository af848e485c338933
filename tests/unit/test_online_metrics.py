"""Online metrics: diversity, per-batch increments, the process's Prometheus view and the
snapshot's rates."""

from __future__ import annotations

import numpy as np
import pytest
from prometheus_client import CollectorRegistry, generate_latest

from recstream.streams.attribution import Hit
from recstream.streams.metrics import BatchMetrics, Buckets, OnlineMetrics, increment_args
from recstream.streams.snapshots import snapshot, version_summary


def batch(version: str = "v2", hits: list[Hit] | None = None) -> BatchMetrics:
    return BatchMetrics(
        version=version,
        applied=3,
        lists=4,
        items_shown=38,
        shown={"i1", "i2"},
        catalog_size=100,
        diversity=np.array([0.5, np.nan, 0.25, 0.75]),
        latency_s=np.array([0.01, 0.02, 0.03]),
        hits=hits or [],
    )


def test_increments_per_version_with_hits_on_older_lists() -> None:
    hits = [Hit("r1", "v1", "click", 0), Hit("r2", "v2", "click", 3), Hit("r3", "v1", "click", 0)]
    inc = batch(hits=hits).increments()
    assert inc["v1"] == {"hit:click": 2, "pos:click:0": 2}
    v2 = inc["v2"]
    assert (v2["lists"], v2["items_shown"], v2["hit:click"], v2["pos:click:3"]) == (4, 38, 1, 1)
    assert v2["diversity_sum"] == pytest.approx(1.5)
    assert v2["diversity_n"] == 3  # the NaN list is not measured
    assert v2["latency_ms_sum"] == pytest.approx(60.0)
    assert v2["latency_n"] == 3
    args = increment_args({"lists": 4, "diversity_sum": 2.0})
    assert args == ["lists", "4", "diversity_sum", "2.000000"]  # floats always with a '.'


def test_buckets_use_le_semantics_and_ignore_nan() -> None:
    b = Buckets([0.1, 1.0])
    b.add(np.array([0.05, 0.1, 0.5, 2.0, np.nan]))
    assert b.cumulative() == [("0.1", 2.0), ("1.0", 3.0), ("+Inf", 4.0)]
    assert b.sum == pytest.approx(2.65)


def test_prometheus_text_has_the_process_counters() -> None:
    metrics = OnlineMetrics("v2", 1_764_000_000_000)
    metrics.record(batch(hits=[Hit("r1", "v1", "purchase", 1)]), 0.004)
    metrics.swaps["failed"] += 1
    registry = CollectorRegistry()
    registry.register(metrics)
    text = generate_latest(registry).decode()
    for line in (
        'recstream_lists_total{version="v2"} 4.0',
        'recstream_items_shown_total{version="v2"} 38.0',
        'recstream_attributed_total{type="purchase",version="v1"} 1.0',
        'recstream_events_total{outcome="applied"} 3.0',
        'recstream_events_total{outcome="replayed"} 1.0',
        'recstream_event_to_list_seconds_count{version="v2"} 3.0',
        'recstream_list_diversity_bucket{le="0.5",version="v2"} 2.0',
        "recstream_batch_seconds_count 1.0",
        'recstream_model_swaps_total{result="failed"} 1.0',
        'recstream_model_serving{version="v2"} 1.0',
    ):
        assert line in text, line


def test_version_summary_rates() -> None:
    fields = {
        "lists": 200.0,
        "items_shown": 2000.0,
        "hit:click": 30.0,
        "hit:purchase": 5.0,
        "hit:add_to_cart": 2.0,
        "pos:click:0": 20.0,
        "pos:click:2": 10.0,
        "diversity_sum": 120.0,
        "diversity_n": 200.0,
        "latency_ms_sum": 1000.0,
        "latency_n": 100.0,
        "catalog_size": 500.0,
    }
    s = version_summary(fields, distinct=125)
    assert (s["impressions"], s["clicks"], s["purchases"]) == (200, 30, 5)
    assert s["hits"] == {"click": 30, "purchase": 5, "add_to_cart": 2}
    assert s["ctr"] == pytest.approx(0.15)
    assert s["ctr@k"] == pytest.approx(0.015)
    assert s["conversion"] == pytest.approx(0.025)
    assert s["clicks_by_position"] == [20, 0, 10]
    assert s["coverage"] == pytest.approx(0.25)
    assert s["diversity"] == pytest.approx(0.6)
    assert s["latency_ms_mean"] == pytest.approx(10.0)
    empty = version_summary({}, 0)
    assert (empty["ctr"], empty["coverage"], empty["diversity"]) == (0.0, None, None)


def test_snapshot_takes_the_interval_samples() -> None:
    metrics = OnlineMetrics("v2", 5)
    metrics.record(batch(), 0.004)
    cluster = {"v2": ({"lists": 4.0, "catalog_size": 100.0}, 2), "none": ({"lists": 1.0}, 1)}
    snap = snapshot("w1", 99, metrics, cluster)
    assert (snap["worker"], snap["ts"], snap["serving"]) == (
        "w1",
        99,
        {"version": "v2", "since_ms": 5},
    )
    assert list(snap["versions"]) == ["none", "v2"]
    assert snap["versions"]["v2"]["coverage"] == pytest.approx(0.02)
    assert snap["versions"]["v2"]["latency_ms"]["n"] == 3
    assert snap["versions"]["v2"]["latency_ms"]["p50"] == pytest.approx(20.0)
    # 10, 20 and 30 ms: at or under 10, 25 and 50 ms; per bucket, so intervals add.
    assert snap["latency_le_ms"][:4] == [5.0, 10.0, 25.0, 50.0]
    assert snap["versions"]["v2"]["latency_ms"]["counts"][:5] == [0, 1, 1, 1, 0]
    assert sum(snap["versions"]["v2"]["latency_ms"]["counts"]) == 3
    assert snap["batch_ms"]["n"] == 1
    assert (snap["events"], snap["refused"]) == ({}, [])
    assert metrics.coverage == {"v2": pytest.approx(0.02)}
    metrics.refuse("v3", "sha256 differs", 120)
    again = snapshot("w1", 100, metrics, cluster, {"valid": 5, "applied": 4, "rejected": 1})
    assert again["versions"]["v2"]["latency_ms"] == {"n": 0, "counts": [0] * 14}
    assert again["events"] == {"valid": 5, "applied": 4, "rejected": 1}
    assert again["refused"] == [{"version": "v3", "reason": "sha256 differs", "ts": 120}]
    assert again["swaps"]["failed"] == 1
