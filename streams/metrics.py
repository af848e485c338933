"""Online metrics per model version: what each batch served and what users did with it.

The same numbers in three places:

- Redis: cluster-wide counters per version (one hash per version, incremented once per batch
  in the pipeline's batch script) and a HyperLogLog of the items shown, for catalogue coverage;
- Prometheus (``GET /metrics``): this process's counters and histograms;
- the ``metrics`` topic: a periodic JSON snapshot per worker, with the cluster-wide counters
  and this worker's latency percentiles since its previous snapshot (``snapshots.py``).

Intra-list diversity is computed in ``diversity.py``.

Everything here is computed once per batch with numpy (histograms are bucketed by
``np.searchsorted``), never with one call per event.
"""

from __future__ import annotations

from collections import Counter, deque
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np
from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    Metric,
)

from recstream.streams.attribution import Hit

LATENCY_BUCKETS_S = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0)
BATCH_BUCKETS_S = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5)
DIVERSITY_BUCKETS = (0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 1.0, 1.5)
# Latency samples kept between two snapshots, for exact percentiles (later ones are dropped).
INTERVAL_SAMPLES = 200_000
REFUSALS_KEPT = 8  # this worker's newest refused versions, in every snapshot


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
    users: int = 0  # users whose first event this batch applied

    def increments(self) -> dict[str, dict[str, int | float]]:
        """Redis hash increments per version (the fields of ``metrics:{version}``)."""
        serving: dict[str, int | float] = {"lists": self.lists, "items_shown": self.items_shown}
        if self.users:
            serving["users"] = self.users
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


def merge_increments(
    parts: Sequence[dict[str, dict[str, int | float]]],
) -> dict[str, dict[str, int | float]]:
    """Several batches' (or arms') increments per version, added field by field."""
    out: dict[str, dict[str, int | float]] = {}
    for part in parts:
        for version, fields in part.items():
            mine = out.setdefault(version, {})
            for name, amount in fields.items():
                mine[name] = mine.get(name, 0) + amount
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
        self.refused: deque[dict[str, str | int]] = deque(maxlen=REFUSALS_KEPT)
        self.serving = serving
        self.since_ms = since_ms
        self.ab: str | None = None  # the A/B test's split (RECSTREAM_AB), when one runs
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

    def refuse(self, version: str, reason: str, ts_ms: int) -> None:
        """An announced version this worker would not serve, and why."""
        self.swaps["failed"] += 1
        self.refused.append({"version": version, "reason": reason[:500], "ts": ts_ms})

    def record(self, m: BatchMetrics, seconds: float | None) -> None:
        """One batch's numbers (``seconds``: the batch's time; None for a second version's
        share of the same batch, which an A/B test makes)."""
        stats = self._stats(m.version)
        stats.lists += m.lists
        stats.items_shown += m.items_shown
        stats.diversity.add(m.diversity)
        stats.latency.add(m.latency_s)
        for hit in m.hits:
            self._stats(hit.version).hits[hit.type] += 1
        self.events["applied"] += m.applied
        self.events["replayed"] += m.lists - m.applied
        if seconds is not None:
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
        yield from self._per_version()
        yield from self._per_worker()

    def _per_version(self) -> Iterator[Metric]:
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
        yield from (lists, shown, hits, diversity, latency, coverage)

    def _per_worker(self) -> Iterator[Metric]:
        events = CounterMetricFamily(
            "recstream_events", "Valid events processed (replayed: replays and duplicates)",
            labels=["outcome"],
        )  # fmt: skip
        for outcome in ("applied", "replayed"):
            events.add_metric([outcome], self.events[outcome])
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
        yield from (events, batch, swaps, serving, since, lag)
