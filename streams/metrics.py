"""Online metrics per model version: what each batch served and what users did with it.

The same numbers in three places:

- Redis: cluster-wide counters per version (one hash per version, incremented once per batch
  in the pipeline's batch script) and a HyperLogLog of the items shown, for catalogue coverage;
- Prometheus (``GET /metrics``): this process's counters and histograms;
- the ``metrics`` topic: a periodic JSON snapshot per worker, with the cluster-wide counters
  and this worker's latency percentiles since its previous snapshot.

Everything here is computed once per batch with numpy (histograms are bucketed by
``np.searchsorted``), never with one call per event.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    Metric,
)
from redis.asyncio import Redis

from recstream.streams.attribution import Hit
from recstream.streams.keys import Keys
from recstream.streams.mmr import unit_rows

LATENCY_BUCKETS_S = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0)
BATCH_BUCKETS_S = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5)
DIVERSITY_BUCKETS = (0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 1.0, 1.5)
# Latency samples kept between two snapshots, for exact percentiles (later ones are dropped).
INTERVAL_SAMPLES = 200_000
SNAPSHOT_VERSIONS = 8  # newest versions reported in a snapshot


def version_number(version: str) -> int | None:
    """``"v12"`` → 12; anything else (``"none"``) → None."""
    if version.startswith("v") and version[1:].isdigit():
        return int(version[1:])
    return None


# ---- intra-list diversity (mean dissimilarity of the pairs of one list) ----


def _pairs(lengths: np.ndarray, width: int) -> np.ndarray:
    """``[B, K, K]`` True for each ordered pair of two different real slots."""
    slots = np.arange(width)[None, :] < lengths[:, None]
    return slots[:, :, None] & slots[:, None, :] & ~np.eye(width, dtype=bool)


def _mean_over_pairs(similarity: np.ndarray, pairs: np.ndarray) -> np.ndarray:
    n = pairs.sum(axis=(1, 2))
    total = np.where(pairs, similarity, 0.0).sum(axis=(1, 2))
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(n > 0, 1.0 - total / np.maximum(n, 1), np.nan)


def category_diversity(
    lists: Sequence[Sequence[str]], category_of: Callable[[str], str | None]
) -> np.ndarray:
    """Per list, the share of item pairs whose categories differ (an item without a category
    differs from every other); NaN for a list of fewer than two items."""
    width = max((len(r) for r in lists), default=0)
    codes = np.full((len(lists), width), -1, dtype=np.int64)
    names: dict[str, int] = {}
    for b, row in enumerate(lists):
        for j, item in enumerate(row):
            cat = category_of(item)
            if cat is not None:
                codes[b, j] = names.setdefault(cat, len(names))
    same = (codes[:, :, None] == codes[:, None, :]) & (codes[:, :, None] >= 0)
    lengths = np.fromiter((len(r) for r in lists), dtype=np.int64, count=len(lists))
    return _mean_over_pairs(same.astype(np.float64), _pairs(lengths, width))


def embedding_diversity(lengths: Sequence[int], table: np.ndarray) -> np.ndarray:
    """Per list, 1 − the mean cosine similarity of its item pairs. ``table``: the item
    vectors of all lists, concatenated in order (``sum(lengths)`` rows)."""
    sizes = np.asarray(lengths, dtype=np.int64)
    if not sizes.size:
        return np.empty(0)
    width = int(sizes.max())
    slots = np.arange(width)[None, :] < sizes[:, None]
    unit = np.zeros((len(sizes), width, table.shape[1]), dtype=np.float32)
    unit[slots] = unit_rows(np.asarray(table, dtype=np.float32))  # fills list by list
    # Sum over ordered pairs i != j of u_i·u_j = |sum_i u_i|^2 - sum_i |u_i|^2: no K×K matrix.
    total = unit.sum(axis=1)
    pair_sum = (total * total).sum(axis=1) - (unit * unit).sum(axis=(1, 2))
    pairs = sizes * (sizes - 1)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(pairs > 0, 1.0 - pair_sum / np.maximum(pairs, 1), np.nan)


# ---- one batch ----


@dataclass
class BatchMetrics:
    """What one batch served (all with one model version) and the hits it attributed (to the
    versions of the lists hit, which may be older)."""

    version: str
    applied: int  # events applied (the others were replays or duplicates)
    lists: int  # one per event
    items_shown: int
    shown: set[str]  # distinct items shown in this batch
    catalog_size: int | None
    diversity: np.ndarray  # per list; NaN where a list cannot be measured
    latency_s: np.ndarray  # event time → list made, for applied events
    hits: list[Hit] = field(default_factory=list)

    def increments(self) -> dict[str, dict[str, int | float]]:
        """Redis hash increments per version (the fields of ``metrics:{version}``)."""
        serving: dict[str, int | float] = {"lists": self.lists, "items_shown": self.items_shown}
        div = self.diversity[np.isfinite(self.diversity)]
        if div.size:
            serving["diversity_sum"] = float(div.sum())
            serving["diversity_n"] = int(div.size)
        if self.latency_s.size:
            serving["latency_ms_sum"] = float(self.latency_s.sum() * 1000)
            serving["latency_n"] = int(self.latency_s.size)
        out = {self.version: serving}
        for hit in self.hits:
            fields = out.setdefault(hit.version, {})
            for name in (f"hit:{hit.type}", f"pos:{hit.type}:{hit.position}"):
                fields[name] = fields.get(name, 0) + 1
        return out


def increment_args(fields: Mapping[str, int | float]) -> list[str]:
    """Field/amount pairs for the pipeline's batch script, which sends an amount with a '.' to
    HINCRBYFLOAT and any other to HINCRBY; floats always carry a '.'."""
    args: list[str] = []
    for name, amount in fields.items():
        args += [name, f"{amount:.6f}" if isinstance(amount, float) else str(amount)]
    return args


# ---- this process ----


class Buckets:
    """A histogram's bucket counts and sum, added to a whole array at a time."""

    def __init__(self, bounds: Sequence[float]) -> None:
        self.bounds = np.asarray(bounds, dtype=np.float64)
        self.counts = np.zeros(len(bounds) + 1, dtype=np.int64)
        self.sum = 0.0

    def add(self, values: np.ndarray) -> None:
        values = values[np.isfinite(values)]
        if values.size:
            slots = np.searchsorted(self.bounds, values, side="left")  # le semantics
            self.counts += np.bincount(slots, minlength=self.counts.size)
            self.sum += float(values.sum())

    def cumulative(self) -> list[tuple[str, float]]:
        totals = np.cumsum(self.counts)
        labels = [repr(float(b)) for b in self.bounds] + ["+Inf"]
        return [(le, float(n)) for le, n in zip(labels, totals, strict=True)]


@dataclass
class VersionStats:
    lists: int = 0
    items_shown: int = 0
    hits: Counter[str] = field(default_factory=Counter)
    diversity: Buckets = field(default_factory=lambda: Buckets(DIVERSITY_BUCKETS))
    latency: Buckets = field(default_factory=lambda: Buckets(LATENCY_BUCKETS_S))


class OnlineMetrics:
    """This process's metrics; also a Prometheus collector (``collect``)."""

    def __init__(self, serving: str = "none", since_ms: int = 0) -> None:
        self.versions: dict[str, VersionStats] = {}
        self.batch = Buckets(BATCH_BUCKETS_S)
        self.events: Counter[str] = Counter()
        self.swaps: Counter[str] = Counter()
        self.serving = serving
        self.since_ms = since_ms
        self.coverage: dict[str, float] = {}  # cluster-wide, as of the last snapshot
        # Records behind the end of each events partition this worker reads, as of its last
        # fetch from it (set by the consumer; a partition that moves away is dropped).
        self.lag: dict[int, int] = {}
        self._latency: dict[str, list[np.ndarray]] = {}
        self._kept = 0  # latency samples in _latency
        self._batch_s: list[float] = []

    def _stats(self, version: str) -> VersionStats:
        stats = self.versions.get(version)
        if stats is None:
            stats = self.versions[version] = VersionStats()
        return stats

    def serve(self, version: str, since_ms: int) -> None:
        self.serving, self.since_ms = version, since_ms

    def record(self, m: BatchMetrics, seconds: float) -> None:
        stats = self._stats(m.version)
        stats.lists += m.lists
        stats.items_shown += m.items_shown
        stats.diversity.add(m.diversity)
        stats.latency.add(m.latency_s)
        for hit in m.hits:
            self._stats(hit.version).hits[hit.type] += 1
        self.events["applied"] += m.applied
        self.events["replayed"] += m.lists - m.applied
        self.batch.add(np.array([seconds]))
        if len(self._batch_s) < INTERVAL_SAMPLES:
            self._batch_s.append(seconds)
        if m.latency_s.size and self._kept < INTERVAL_SAMPLES:
            self._latency.setdefault(m.version, []).append(m.latency_s)
            self._kept += m.latency_s.size

    def take_interval(self) -> tuple[dict[str, np.ndarray], np.ndarray]:
        """Latency samples per version and batch times since the last call; starts afresh."""
        latency = {v: np.concatenate(c) for v, c in self._latency.items() if c}
        batch = np.asarray(self._batch_s)
        self._latency, self._batch_s, self._kept = {}, [], 0
        return latency, batch

    def collect(self) -> Iterator[Metric]:
        events = CounterMetricFamily(
            "recstream_events", "Valid events processed (replayed: replays and duplicates)",
            labels=["outcome"],
        )  # fmt: skip
        for outcome in ("applied", "replayed"):
            events.add_metric([outcome], self.events[outcome])
        lists = CounterMetricFamily(
            "recstream_lists", "Recommendation lists served", labels=["version"]
        )
        shown = CounterMetricFamily(
            "recstream_items_shown", "Items shown in served lists", labels=["version"]
        )
        hits = CounterMetricFamily(
            "recstream_attributed",
            "Interactions attributed to a served list, by the list's version and event type",
            labels=["version", "type"],
        )
        diversity = HistogramMetricFamily(
            "recstream_list_diversity", "Intra-list diversity of served lists", labels=["version"]
        )
        latency = HistogramMetricFamily(
            "recstream_event_to_list_seconds",
            "Event time to list made, for applied events",
            labels=["version"],
        )
        coverage = GaugeMetricFamily(
            "recstream_catalog_coverage",
            "Distinct items shown / catalogue size, cluster-wide (as of the last snapshot)",
            labels=["version"],
        )
        for version, s in sorted(self.versions.items()):
            lists.add_metric([version], s.lists)
            shown.add_metric([version], s.items_shown)
            for kind, n in sorted(s.hits.items()):
                hits.add_metric([version, kind], n)
            diversity.add_metric([version], s.diversity.cumulative(), s.diversity.sum)
            latency.add_metric([version], s.latency.cumulative(), s.latency.sum)
        for version, value in sorted(self.coverage.items()):
            coverage.add_metric([version], value)
        batch = HistogramMetricFamily(
            "recstream_batch_seconds",
            "Processing time of a micro-batch (Redis read to Redis write)",
            buckets=self.batch.cumulative(),
            sum_value=self.batch.sum,
        )
        swaps = CounterMetricFamily(
            "recstream_model_swaps", "Model hot swaps by result", labels=["result"]
        )
        for result in ("ok", "failed"):
            swaps.add_metric([result], self.swaps[result])
        serving = GaugeMetricFamily(
            "recstream_model_serving", "1 for the model version this worker serves",
            labels=["version"],
        )  # fmt: skip
        serving.add_metric([self.serving], 1)
        since = GaugeMetricFamily(
            "recstream_model_serving_since_seconds",
            "Unix time since which this worker serves its model version",
            value=self.since_ms / 1000,
        )
        lag = GaugeMetricFamily(
            "recstream_consumer_lag",
            "Events not yet read in each partition of the events topic, as of the last fetch",
            labels=["partition"],
        )
        for partition, behind in sorted(self.lag.items()):
            lag.add_metric([str(partition)], behind)
        yield from (events, lists, shown, hits, diversity, latency, coverage, batch, swaps)
        yield from (serving, since, lag)


# ---- snapshots (the ``metrics`` topic) ----


def percentiles_ms(samples_s: np.ndarray) -> dict[str, float | int]:
    if not samples_s.size:
        return {"n": 0}
    ms = samples_s * 1000
    p50, p95, p99 = np.percentile(ms, [50, 95, 99])
    return {
        "p50": round(float(p50), 3),
        "p95": round(float(p95), 3),
        "p99": round(float(p99), 3),
        "max": round(float(ms.max()), 3),
        "n": int(ms.size),
    }


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
        "latency_ms_mean": fields.get("latency_ms_sum", 0.0) / lat_n if lat_n else None,
    }


async def read_cluster(
    redis: Redis, keys: Keys, newest: int = SNAPSHOT_VERSIONS
) -> dict[str, tuple[dict[str, float], int]]:
    """Counters and distinct items shown of the newest versions, as all workers wrote them."""
    raw = await redis.smembers(keys.metrics_versions())
    names = sorted((_text(v) for v in raw), key=lambda v: version_number(v) or -1)[-newest:]
    if not names:
        return {}
    async with redis.pipeline(transaction=False) as pipe:
        for version in names:
            pipe.hgetall(keys.metrics(version))
            pipe.pfcount(keys.metrics_items(version))
        replies = await pipe.execute()
    out = {}
    for i, version in enumerate(names):
        fields = {_text(k): float(v) for k, v in replies[2 * i].items()}
        out[version] = (fields, int(replies[2 * i + 1]))
    return out


def snapshot(
    worker: str,
    ts: int,
    metrics: OnlineMetrics,
    cluster: Mapping[str, tuple[Mapping[str, float], int]],
) -> dict[str, Any]:
    """One record for the ``metrics`` topic; takes this worker's interval samples."""
    latency, batch = metrics.take_interval()
    versions: dict[str, Any] = {}
    for version in sorted({*cluster, *latency}, key=lambda v: version_number(v) or -1):
        fields, distinct = cluster.get(version, ({}, 0))
        summary = version_summary(fields, distinct)
        summary["latency_ms"] = percentiles_ms(latency.get(version, np.empty(0)))
        versions[version] = summary
        if summary["coverage"] is not None:
            metrics.coverage[version] = summary["coverage"]
    return {
        "worker": worker,
        "ts": ts,
        "serving": {"version": metrics.serving, "since_ms": metrics.since_ms},
        "versions": versions,
        "batch_ms": percentiles_ms(batch),
        "swaps": {"ok": metrics.swaps["ok"], "failed": metrics.swaps["failed"]},
        "lag": {str(p): n for p, n in sorted(metrics.lag.items())},
    }


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value
