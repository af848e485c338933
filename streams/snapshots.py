"""Snapshots for the ``metrics`` topic: the cluster-wide counters of each version read from
Redis and summarised as rates, with this worker's latency percentiles since its last one."""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from typing import Any

import numpy as np

from recstream.artifacts import version_number
from recstream.stats import percentiles
from recstream.streams.keys import Keys
from recstream.streams.metrics import LATENCY_BUCKETS_S, OnlineMetrics
from recstream.streams.store import RedisClient

SNAPSHOT_VERSIONS = 8  # newest versions reported in a snapshot
LATENCY_LE_MS = [round(b * 1000, 3) for b in LATENCY_BUCKETS_S]
EVENT_COUNTS = ("valid", "applied", "rejected")  # of the stats hash, cluster-wide


def percentiles_ms(samples_s: np.ndarray) -> dict[str, float | int | None]:
    if not samples_s.size:
        return {"n": 0}
    out: dict[str, float | int | None] = dict(percentiles(samples_s, (50, 95, 99), 1000))
    return out | {"max": round(float(samples_s.max()) * 1000, 3), "n": int(samples_s.size)}


def bucket_counts(samples_s: np.ndarray) -> list[int]:
    """How many samples fall at or under each of ``LATENCY_LE_MS`` (and above the last):
    per bucket, not cumulative, so workers' and intervals' counts add."""
    slots = np.searchsorted(np.asarray(LATENCY_BUCKETS_S), samples_s, side="left")
    return [int(n) for n in np.bincount(slots, minlength=len(LATENCY_BUCKETS_S) + 1)]


def version_summary(fields: Mapping[str, float], distinct: int) -> dict[str, Any]:
    """Rates of one version from its cluster-wide counters (``metrics:{version}``)."""
    lists = int(fields.get("lists", 0))
    shown = int(fields.get("items_shown", 0))
    hits = {k[4:]: int(v) for k, v in fields.items() if k.startswith("hit:")}
    clicks, purchases = hits.get("click", 0), hits.get("purchase", 0)
    positions: dict[int, int] = {}
    for name, n in fields.items():
        if name.startswith("pos:click:"):
            positions[int(name[10:])] = int(n)
    by_position = [positions.get(p, 0) for p in range(max(positions, default=-1) + 1)]
    catalog = int(fields.get("catalog_size", 0)) or None
    div_n, lat_n = fields.get("diversity_n", 0), fields.get("latency_n", 0)
    return {
        "impressions": lists,
        "users": int(fields.get("users", 0)),
        "items_shown": shown,
        "clicks": clicks,
        "purchases": purchases,
        "hits": hits,
        "ctr": clicks / lists if lists else 0.0,
        "ctr@k": clicks / shown if shown else 0.0,
        "conversion": purchases / lists if lists else 0.0,
        "clicks_by_position": by_position,
        "distinct_items": distinct,
        "catalog_size": catalog,
        "coverage": distinct / catalog if catalog else None,
        "diversity": fields.get("diversity_sum", 0.0) / div_n if div_n else None,
        "diversity_n": int(div_n),
        "latency_ms_mean": fields.get("latency_ms_sum", 0.0) / lat_n if lat_n else None,
    }


async def read_cluster(
    redis: RedisClient, keys: Keys, newest: int = SNAPSHOT_VERSIONS
) -> dict[str, tuple[dict[str, float], int]]:
    """Counters and distinct items shown of the newest versions, as all workers wrote them."""
    members = await redis.smembers(keys.metrics_versions())
    names = sorted((_text(v) for v in members), key=lambda v: version_number(v) or -1)[-newest:]
    if not names:
        return {}
    # Concurrent commands, not a pipeline: redis-py's cluster pipelines refuse PFCOUNT.
    items = [redis.pfcount(keys.metrics_items(version)) for version in names]
    counters = await version_counters(redis, keys, names)
    counts: list[int] = await asyncio.gather(*items)
    return {v: (counters[v], int(n)) for v, n in zip(names, counts, strict=True)}


async def read_events(redis: RedisClient, keys: Keys) -> dict[str, int]:
    """The cluster-wide event counts (``EVENT_COUNTS`` of the stats hash)."""
    fields = {_text(k): v for k, v in (await redis.hgetall(keys.stats())).items()}
    return {name: int(fields.get(name, 0)) for name in EVENT_COUNTS}


async def version_counters(
    redis: RedisClient, keys: Keys, versions: list[str]
) -> dict[str, dict[str, float]]:
    """The cluster-wide counters of these versions (``metrics:<version>``), as numbers."""
    hashes: list[dict[Any, Any]] = await asyncio.gather(
        *(redis.hgetall(keys.metrics(version)) for version in versions)
    )
    return {
        version: {_text(k): float(v) for k, v in fields.items()}
        for version, fields in zip(versions, hashes, strict=True)
    }


def snapshot(
    worker: str,
    ts: int,
    metrics: OnlineMetrics,
    cluster: Mapping[str, tuple[Mapping[str, float], int]],
    events: Mapping[str, int] | None = None,
) -> dict[str, Any]:
    """One record for the ``metrics`` topic; takes this worker's interval samples."""
    latency, batch = metrics.take_interval()
    versions: dict[str, Any] = {}
    for version in sorted({*cluster, *latency}, key=lambda v: version_number(v) or -1):
        fields, distinct = cluster.get(version, ({}, 0))
        summary = version_summary(fields, distinct)
        samples = latency.get(version, np.empty(0))
        summary["latency_ms"] = percentiles_ms(samples) | {"counts": bucket_counts(samples)}
        versions[version] = summary
        if summary["coverage"] is not None:
            metrics.coverage[version] = summary["coverage"]
    return {
        "worker": worker,
        "ts": ts,
        "serving": {"version": metrics.serving, "since_ms": metrics.since_ms},
        "ab": metrics.ab,
        "versions": versions,
        "batch_ms": percentiles_ms(batch),
        "swaps": {"ok": metrics.swaps["ok"], "failed": metrics.swaps["failed"]},
        "refused": list(metrics.refused),
        "lag": {str(p): n for p, n in sorted(metrics.lag.items())},
        "events": dict(events or {}),
        "latency_le_ms": LATENCY_LE_MS,
    }


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value
