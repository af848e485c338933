"""``recstream bench soak``: one worker at a steady rate for minutes, sampling its resident
memory and Redis's used memory; the slopes say whether either grows without bound.

Each interval is an ordinary paced run (latency from the scheduled time, late and lost lists
counted); the slopes are least-squares fits over the second half of the run, after the
caches and the users' states have had time to fill.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from dataclasses import dataclass
from typing import Any

import numpy as np
import redis

from recstream.streams.bench import (
    BenchPlan,
    cpu_seconds,
    free_port,
    measure,
    prepare,
    spawn,
    status_mb,
    stop,
    worker_command,
)


@dataclass(frozen=True)
class SoakPlan:
    bench: BenchPlan
    rate: float = 1000.0
    minutes: float = 10.0
    interval_s: float = 10.0


def slope_per_minute(t_s: list[float], values: list[float]) -> float | None:
    """Least-squares slope over the second half of the samples, per minute."""
    half = len(t_s) // 2
    if len(t_s) - half < 3:
        return None
    x, y = np.asarray(t_s[half:]) / 60, np.asarray(values[half:])
    return round(float(np.polyfit(x, y, 1)[0]), 3)


def run_soak(plan: SoakPlan) -> dict[str, Any]:
    from recstream.streams.connection import KafkaConnection
    from recstream.streams.topics import TopicSpec, ensure_topics

    b = plan.bench
    tag = uuid.uuid4().hex[:8]
    topics = {n: f"soak-{n}-{tag}" for n in ("events", "recs", "dlq")}
    events, recs = topics["events"], topics["recs"]
    ensure_topics(KafkaConnection(b.bootstrap), [TopicSpec(t, 4) for t in (events, recs)])
    args, env = worker_command(b, topics, tag, "soak")
    env["RECSTREAM_WEB_PORT"] = str(free_port())
    worker = spawn(args, env, b.log_dir / f"soak-worker-{tag}.log")
    client = redis.Redis.from_url(b.redis_url)
    samples: list[dict[str, Any]] = []
    try:
        load = b.load()
        catch = prepare(b, events, recs, load, worker)
        start, cpu0 = time.monotonic(), cpu_seconds(worker.pid)
        while time.monotonic() - start < plan.minutes * 60:
            paced = measure(b.bootstrap, events, recs, load.paced, plan.rate, plan.interval_s)
            run = asyncio.run(paced)
            s = run.summary()
            samples.append(
                {
                    "t_s": round(time.monotonic() - start, 1),
                    "rss_mb": round(status_mb(worker.pid, "VmRSS"), 1),
                    "redis_mb": round(int(client.info("memory")["used_memory"]) / 2**20, 2),
                    "users": len(client.keys(f"soak:{tag}:user:*")),  # a few ms
                    "p50_ms": s.get("p50"),
                    "p99_ms": s.get("p99"),
                    "delivered_fraction": s.get("delivered_fraction"),
                    "sustained": run.sustained(),
                }
            )
        cpu = cpu_seconds(worker.pid) - cpu0
    finally:
        stop(worker)
        client.close()
    t = [x["t_s"] for x in samples]
    return {
        "rate": plan.rate,
        "minutes": plan.minutes,
        "interval_s": plan.interval_s,
        "catch_up": catch,
        "rss_mb_per_min": slope_per_minute(t, [x["rss_mb"] for x in samples]),
        "redis_mb_per_min": slope_per_minute(t, [x["redis_mb"] for x in samples]),
        "cpu_us_per_event": round(cpu / max(1, plan.rate * t[-1]) * 1e6, 1) if t else None,
        "intervals_sustained": sum(x["sustained"] for x in samples),
        "samples": samples,
    }
