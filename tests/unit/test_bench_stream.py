"""The stream benchmark's verdicts and its real-history workload (pure: no broker)."""

from __future__ import annotations

import numpy as np
import orjson
import pytest

from recstream.streams.bench import LAG_GROWTH_MS, Run, real_load


def _run(latency_of_scheduled_time, n: int = 4000, rate: float = 1000.0) -> Run:
    run = Run(rate, send_seconds=n / rate)
    for i in range(n):
        at = i / rate
        run.scheduled[(0, i)] = at
        latency = latency_of_scheduled_time(at)
        if latency is not None:
            run.arrived[(0, i)] = at + latency / 1000
    return run


def test_flat_latency_is_sustained_and_summarised():
    run = _run(lambda at: 10.0 + (at * 1000) % 7)  # jitter, no trend
    summary = run.summary()
    assert run.sustained()
    assert summary["delivered_fraction"] == 1.0 and summary["achieved_send_rate"] == 1000.0
    assert summary["missing"] == 0
    assert 10.0 <= summary["p50"] <= 17.0 and summary["p99"] < 17.0
    assert abs(summary["p50_last_quarter"] - summary["p50_first_quarter"]) < 1.0


def test_latency_growing_through_the_run_is_a_growing_backlog():
    # 2% overload: each second adds 20 ms of queue; every event is still delivered, p99 < 1 s.
    run = _run(lambda at: 10.0 + 20.0 * at)
    first, last = run.quarter_medians()
    assert last - first > LAG_GROWTH_MS - 10  # about 60 ms over a 4 s run
    assert run.summary()["p99"] < 1000 and run.summary()["delivered_fraction"] == 1.0
    longer = _run(lambda at: 10.0 + 20.0 * at, n=10_000)
    assert not longer.sustained()


def test_missing_lists_count_as_infinitely_late():
    # 2% of lists never come back: p50 is unaffected, p99 lands on a miss and has no value.
    run = _run(lambda at: None if round(at * 1000) % 50 == 0 else 10.0)
    summary = run.summary()
    assert summary["missing"] == 80 and summary["received"] == 3920
    assert summary["p50"] == 10.0
    assert summary["p99"] is None and summary["p999"] is None
    assert not run.sustained()
    # Half a percent missing: p99 is still a real latency, but the run is not sustained.
    few = _run(lambda at: None if round(at * 1000) % 200 == 0 else 10.0)
    assert few.summary()["p99"] == 10.0 and not few.sustained()


def test_a_slow_generator_is_not_sustained():
    slow = _run(lambda at: 10.0)
    slow.send_seconds *= 1.2  # the generator fell 20% behind the rate
    assert not slow.sustained()
    assert np.isclose(slow.summary()["achieved_send_rate"], 1000 / 1.2, rtol=1e-3)


def test_real_load_replays_each_users_history_in_order():
    histories = {
        "a": [(f"a{i}", "click") for i in range(6)],
        "b": [(f"b{i}", "purchase" if i == 4 else "click") for i in range(5)],
        "c": [("c0", "click"), ("c1", "click")],  # too short for a preload of 2 plus more
    }
    load = real_load(histories, n_users=10, preload=2, seed=3)
    first = [(u, e["item_id"]) for u, e in load.preload]
    assert sorted(first) == [("a", "a0"), ("a", "a1"), ("b", "b0"), ("b", "b1")]
    assert first.index(("a", "a0")) < first.index(("a", "a1"))
    rest = list(load.paced)
    assert [e["item_id"] for u, e in rest if u == "a"] == ["a2", "a3", "a4", "a5"]
    assert [(e["item_id"], e["type"]) for u, e in rest if u == "b"] == [
        ("b2", "click"),
        ("b3", "click"),
        ("b4", "purchase"),
    ]
    assert all(e["user_id"] == u for u, e in rest)


def test_real_load_needs_long_enough_histories():
    with pytest.raises(ValueError, match="more than 5"):
        real_load({"a": [("x", "click")] * 3}, n_users=5, preload=5, seed=0)


def test_pipeline_bench_messages_are_a_partitioned_replay():
    from recstream.streams.bench_pipeline import PipelinePlan, messages

    histories = {u: [(f"{u}-{i}", "click") for i in range(8)] for u in ("a", "b", "c")}
    load = real_load(histories, n_users=3, preload=2, seed=1)
    msgs = messages(load, PipelinePlan(events=12, batch=4, partitions=2))
    assert len(msgs) == 12
    for part in (0, 1):
        offsets = [m.offset for m in msgs if m.partition == part]
        assert offsets == list(range(len(offsets)))  # consecutive, as Kafka assigns them
    per_user = {u: [m for m in msgs if m.key == u.encode()] for u in histories}
    for user, mine in per_user.items():
        assert len({m.partition for m in mine}) <= 1  # a user's events share a partition
        items = [orjson.loads(m.value)["item_id"] for m in mine]
        assert items == [f"{user}-{i}" for i in range(len(items))]  # in history order


def test_gc_pauses_counts_the_collections_inside_the_block_only():
    import gc

    from recstream.streams.bench_pipeline import GcPauses

    pauses = GcPauses()
    with pauses:
        gc.collect(0)
        gc.collect()
    gc.collect()  # after the block: not counted
    summary = pauses.summary()
    assert summary["collections"] == 2
    assert 0 <= summary["pause_ms_max"] <= summary["pause_ms_total"]
    assert GcPauses().summary() == {"collections": 0, "pause_ms_total": 0.0, "pause_ms_max": 0.0}
