"""``recstream bench pipeline``: the worker's per-batch work alone — validation, the Redis read,
state updates, encoding, search, MMR, attribution, the Redis write — on a replay of real
histories against the real Redis, without Kafka. CPU per event at a fixed batch size, so that a
change to the hot path can be measured without a broker's noise (a batch of 1 shows the fixed
cost of a batch, a batch of 256 the cost per event of a busy worker)."""

from __future__ import annotations

import asyncio
import gc
import time
import uuid
import zlib
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import orjson

from recstream.streams.batches import RawMessage, split_batch
from recstream.streams.bench import Load
from recstream.streams.decoding import Limits
from recstream.streams.keys import Keys
from recstream.streams.pipeline import Pipeline, PipelineConfig
from recstream.streams.recommender import Recommender
from recstream.streams.store import RedisClient


@dataclass(frozen=True)
class PipelinePlan:
    events: int = 60_000
    batch: int = 256
    partitions: int = 4


def messages(load: Load, plan: PipelinePlan) -> list[RawMessage]:
    """The preload, then paced events, as Kafka would hand them over (one topic, the user's
    partition, consecutive offsets per partition)."""
    pairs = load.preload[: plan.events]
    while len(pairs) < plan.events:
        pairs.append(next(load.paced))
    now = int(time.time() * 1000)
    offsets = [0] * plan.partitions
    out = []
    for user, payload in pairs:
        part = zlib.crc32(user.encode()) % plan.partitions  # stable across runs
        value = orjson.dumps({**payload, "ts": now})
        out.append(RawMessage("events", part, offsets[part], now, user.encode(), value))
        offsets[part] += 1
    return out


async def run_pipeline_bench(
    redis: RedisClient,
    recommender: Recommender,
    config: PipelineConfig,
    load: Load,
    plan: PipelinePlan,
) -> dict[str, Any]:
    """Process the replay in batches of ``plan.batch``; wall and CPU time of this process."""
    msgs = messages(load, plan)
    prefix = f"bench-pipeline:{uuid.uuid4().hex[:8]}"
    pipeline = Pipeline(redis, Keys(prefix), recommender, config)
    # Last batch first, popped as processed: a message is garbage once handled, as in the worker.
    batches = [msgs[start : start + plan.batch] for start in range(0, len(msgs), plan.batch)][::-1]
    n_events, n_users = len(msgs), len({m.key for m in msgs})
    del msgs
    pauses = GcPauses()
    wall, cpu = time.perf_counter(), time.process_time()
    with pauses:
        while batches:
            valid, _ = split_batch(batches.pop(), int(time.time() * 1000), Limits())
            await pipeline.process(valid, behind=True)  # as the worker does
        await pipeline.settle()
    wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
    memory = await redis_bytes(redis, prefix, n_users)
    await _delete(redis, prefix)
    return {
        "redis": memory,
        "events": n_events,
        "batch": plan.batch,
        "events_per_s": round(n_events / wall, 1),
        "cpu_us_per_event": round(cpu / n_events * 1e6, 1),
        "wall_us_per_event": round(wall / n_events * 1e6, 1),
        "gc": pauses.summary(),
    }


class GcPauses:
    """The cyclic garbage collector's pauses while in the ``with`` block: each one stalls the
    worker's only thread, so their length is a latency tail, not an average."""

    def __init__(self) -> None:
        self.pauses_ms: list[float] = []
        self._started = 0.0

    def _callback(self, phase: str, info: dict[str, int]) -> None:
        if phase == "start":
            self._started = time.perf_counter()
        else:
            self.pauses_ms.append((time.perf_counter() - self._started) * 1000)

    def __enter__(self) -> GcPauses:
        gc.callbacks.append(self._callback)
        return self

    def __exit__(self, *_: object) -> None:
        gc.callbacks.remove(self._callback)

    def summary(self) -> dict[str, Any]:
        """``collections``, and the pauses' total and longest in milliseconds."""
        return {
            "collections": len(self.pauses_ms),
            "pause_ms_total": round(sum(self.pauses_ms, 0.0), 1),
            "pause_ms_max": round(max(self.pauses_ms, default=0.0), 1),
        }


async def redis_bytes(redis: RedisClient, prefix: str, users: int) -> dict[str, Any]:
    """What the replay left in Redis, per user: ``MEMORY USAGE`` of every key under the
    prefix (the key, its value and Redis's own bookkeeping), the users' keys apart from the
    keys all users share (watermarks, counters, trending, metrics)."""
    keys = [key async for key in redis.scan_iter(match=f"{prefix}:*", count=1000)]
    per_kind: dict[str, int] = {}
    for start in range(0, len(keys), 500):
        chunk = keys[start : start + 500]
        async with redis.pipeline(transaction=False) as pipe:
            for key in chunk:
                pipe.memory_usage(key, samples=0)
            sizes = await pipe.execute()
        for key, size in zip(chunk, sizes, strict=True):
            kind = _kind(key.decode(), prefix)
            per_kind[kind] = per_kind.get(kind, 0) + int(size or 0)
    shared = sum(n for kind, n in per_kind.items() if kind == "shared")
    return {
        "users": users,
        "bytes_per_user": round(sum(per_kind.values()) / users, 1),
        "by_kind_per_user": {k: round(n / users, 1) for k, n in sorted(per_kind.items())},
        "shared_bytes": shared,
    }


def _kind(key: str, prefix: str) -> str:
    """``user:state`` etc. for a user's keys (by the last segment), ``eid``, or ``shared``."""
    rest = key[len(prefix) + 1 :]
    if rest.startswith("user:"):
        return "user:" + rest.rpartition("}")[2].lstrip(":") if "}:" in rest else "user"
    return "eid" if rest.startswith("eid:") else "shared"


async def _delete(redis: RedisClient, prefix: str) -> None:
    keys = [key async for key in redis.scan_iter(match=f"{prefix}:*", count=1000)]
    for start in range(0, len(keys), 1000):
        await redis.delete(*keys[start : start + 1000])


def run(
    redis_factory: Callable[[], RedisClient],
    recommender: Recommender,
    config: PipelineConfig,
    load: Load,
    plan: PipelinePlan,
) -> dict[str, Any]:
    async def main() -> dict[str, Any]:
        redis = redis_factory()
        try:
            return await run_pipeline_bench(redis, recommender, config, load, plan)
        finally:
            await redis.aclose()

    return asyncio.run(main())
