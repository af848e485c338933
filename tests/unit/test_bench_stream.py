"""The stream benchmark's verdict on one fixed-rate run (pure: no broker)."""

from __future__ import annotations

import numpy as np

from recstream.streams.bench import LAG_GROWTH_MS, Run


def _run(latency_of_send_time, n: int = 4000, rate: float = 1000.0) -> Run:
    run = Run(rate, send_seconds=n / rate)
    for i in range(n):
        at = i / rate
        run.sent[(0, i)] = at
        run.sent_at.append(at)
        run.latencies_ms.append(latency_of_send_time(at))
    return run


def test_flat_latency_is_sustained_and_summarised():
    run = _run(lambda at: 10.0 + (at * 1000) % 7)  # jitter, no trend
    summary = run.summary()
    assert run.sustained()
    assert summary["delivered_fraction"] == 1.0 and summary["achieved_send_rate"] == 1000.0
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


def test_lost_lists_or_a_slow_generator_are_not_sustained():
    lossy = _run(lambda at: 10.0)
    for key in list(lossy.sent)[:10]:
        lossy.sent[(1, key[1])] = 0.0  # ten events that never got a list
    assert not lossy.sustained()
    slow = _run(lambda at: 10.0)
    slow.send_seconds *= 1.2  # the generator fell 20% behind the rate
    assert not slow.sustained()
    assert np.isclose(slow.summary()["achieved_send_rate"], 1000 / 1.2, rtol=1e-3)
