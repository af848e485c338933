"""``recstream bench index``: build, recall and single-thread throughput, chosen index vs exact.

Throughput is measured with one faiss OpenMP thread (which also pins faiss' bundled BLAS), on
the raw faiss indexes (``*_qps_*``: the same call for both) and end to end through
``ItemIndex.search`` (``search_qps_*``: validation, exact re-scoring, id mapping included).
Recall@10 is measured through ``ItemIndex.search`` on queries the tuner never saw.
"""

from __future__ import annotations

import logging
import os
import resource
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import faiss
import numpy as np

from recstream.artifacts import read_manifest
from recstream.index.builder import build
from recstream.index.item_index import ItemIndex
from recstream.index.model_files import read_model_arrays
from recstream.index.params import faiss_threads, search_params
from recstream.index.space import to_index_space
from recstream.index.synthetic import clustered_catalogue, user_queries
from recstream.index.tuning import RECALL_K, exact_top, proxy_queries, recall
from recstream.stats import percentiles

log = logging.getLogger(__name__)

MIN_SECONDS = 1.0  # repeat fast searches for at least this long, for stable figures
MAX_SECONDS = 5.0  # and stop slow ones (exact search at 10^6) after this long


def run(
    sizes: Sequence[int],
    *,
    d: int = 64,
    seed: int = 0,
    n_queries: int = 1000,
    kind: str = "auto",
    build_threads: int = 2,
    artifact: Path | None = None,
    min_seconds: float = MIN_SECONDS,
) -> dict[str, Any]:
    """The ``bench index`` JSON: one row for ``artifact``'s embeddings (if given), one per size."""
    load_before = os.getloadavg()
    results = []
    if artifact is not None:
        results.append(
            bench_artifact(
                artifact,
                seed=seed,
                n_queries=n_queries,
                kind=kind,
                build_threads=build_threads,
                min_seconds=min_seconds,
            )
        )
    for n in sizes:
        results.append(
            bench_synthetic(
                n,
                d=d,
                seed=seed,
                n_queries=n_queries,
                kind=kind,
                build_threads=build_threads,
                min_seconds=min_seconds,
            )
        )
    return {
        "results": results,
        "faiss_version": faiss.__version__,
        "cpu_count": os.cpu_count(),
        "loadavg_before": [round(x, 2) for x in load_before],
        "loadavg_after": [round(x, 2) for x in os.getloadavg()],
    }


def bench_artifact(
    version_dir: Path,
    *,
    seed: int,
    n_queries: int,
    kind: str,
    build_threads: int,
    min_seconds: float = MIN_SECONDS,
) -> dict[str, Any]:
    """One row on a model version's real item embeddings.

    Without user vectors (index/ does not run the model), queries are item rows plus noise.
    """
    embeddings, ids = read_model_arrays(version_dir)
    tuning = proxy_queries(embeddings, n_queries, seed + 1)
    queries = proxy_queries(embeddings, n_queries, seed + 2)
    row = bench_catalogue(embeddings, ids, queries, tuning, kind, seed, build_threads, min_seconds)
    source = _dataset_name(read_manifest(version_dir).get("dataset"))
    return {**row, "source": source, "artifact": str(version_dir), "queries": "items+noise"}


def _dataset_name(recorded: object) -> str:
    """model/ records ``{"dataset": "ml-1m", "path": ...}``; a bare name is accepted too."""
    name = recorded.get("dataset") if isinstance(recorded, dict) else recorded
    return f"{name}-sasrec" if isinstance(name, str) else "model-artifact"


def bench_synthetic(
    n_items: int,
    *,
    d: int,
    seed: int,
    n_queries: int,
    kind: str,
    build_threads: int,
    min_seconds: float = MIN_SECONDS,
) -> dict[str, Any]:
    """One result row on a seeded clustered catalogue; tuning and evaluation queries differ."""
    catalogue = clustered_catalogue(n_items, d, seed)
    tuning = user_queries(catalogue, n_queries, seed + 1)
    queries = user_queries(catalogue, n_queries, seed + 2)
    row = bench_catalogue(
        catalogue.embeddings,
        catalogue.item_ids,
        queries,
        tuning,
        kind,
        seed,
        build_threads,
        min_seconds,
    )
    return {**row, "source": "synthetic-clustered", "queries": "two-taste users"}


def bench_catalogue(
    embeddings: np.ndarray,
    item_ids: Sequence[str],
    queries: np.ndarray,
    tuning: np.ndarray | None,
    kind: str,
    seed: int,
    build_threads: int,
    min_seconds: float = MIN_SECONDS,
) -> dict[str, Any]:
    """Build the index ``kind`` picks over ``embeddings`` and measure it against exact search."""
    log.info("bench: %d items, d=%d", *embeddings.shape)
    index = build(
        embeddings, item_ids, kind=kind, tuning_queries=tuning, seed=seed, threads=build_threads
    )
    info = index.info
    with faiss_threads(build_threads):  # ground truth only; timings below use one thread
        truth = exact_top(embeddings, queries, RECALL_K)
    found, _ = index.search(queries, RECALL_K)
    found_rows = np.array([[index.core.row_of[i] for i in row] for row in found])
    exact = faiss.IndexFlatIP(embeddings.shape[1])
    exact.add(embeddings)
    speed = _throughput(index, exact, queries, min_seconds)
    return {
        "n_items": info.n_items,
        "d": info.d,
        "index": info.factory,
        "metric": info.metric,
        "transform": info.transform,
        "build_s": info.build_s,
        "memory_mb": _mb(faiss.serialize_index(index.core.index).nbytes),
        "exact_memory_mb": _mb(faiss.serialize_index(exact).nbytes),
        "recall@10": round(recall(found_rows, truth), 4),
        "tuning_recall@10": info.recall_at_10,
        **({info.search_param: info.search_value} if info.search_param else {}),
        **speed,
        "speedup_batch1": round(speed["index_qps_batch1"] / speed["exact_qps_batch1"], 1),
        "speedup_batch64": round(speed["index_qps_batch64"] / speed["exact_qps_batch64"], 1),
        "n_queries": queries.shape[0],
        "query_threads": 1,
        "build_threads": build_threads,
        "seed": seed,
        "peak_rss_mb": _mb(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024),
    }


def _throughput(
    index: ItemIndex, exact: faiss.Index, queries: np.ndarray, min_seconds: float
) -> dict[str, Any]:
    core = index.core
    params = search_params(core.family, core.knob, RECALL_K)
    calls: dict[str, tuple[Callable[[np.ndarray], object], np.ndarray]] = {
        "exact": (lambda q: exact.search(q, RECALL_K), queries),
        "index": (
            lambda q: core.index.search(q, RECALL_K, params=params),
            to_index_space(queries, core.transform),
        ),
        "search": (lambda q: index.search(q, RECALL_K), queries),
    }
    out: dict[str, Any] = {}
    with faiss_threads(1):
        for batch in (1, 64):
            for name, (call, data) in calls.items():
                seconds = _timed(call, _batches(data, batch), min_seconds)
                out[f"{name}_qps_batch{batch}"] = _qps(seconds, batch)
                if batch == 1:
                    out[f"{name}_latency_us_batch1"] = percentiles(seconds, (50, 99), 1e6, digits=1)
    return out


def _batches(queries: np.ndarray, size: int) -> list[np.ndarray]:
    if queries.shape[0] < size:
        queries = np.resize(queries, (size, queries.shape[1]))  # repeat a short query set
    usable = queries.shape[0] - queries.shape[0] % size
    return [queries[i : i + size] for i in range(0, usable, size)]


def _timed(
    call: Callable[[np.ndarray], object], batches: list[np.ndarray], min_seconds: float
) -> np.ndarray:
    """Seconds per call; cycles through ``batches`` for ``min_seconds``, at most MAX_SECONDS."""
    call(batches[0])  # warm caches and faiss' lazy allocations
    times: list[float] = []
    started = time.perf_counter()
    while True:
        for batch in batches:
            t0 = time.perf_counter()
            call(batch)
            times.append(time.perf_counter() - t0)
            if time.perf_counter() - started > MAX_SECONDS and len(times) >= 10:
                return np.asarray(times)
        if time.perf_counter() - started > min_seconds:
            return np.asarray(times)


def _qps(seconds: np.ndarray, batch: int) -> float:
    return round(batch * seconds.size / float(seconds.sum()), 1)


def _mb(n_bytes: int) -> float:
    return round(n_bytes / 2**20, 1)
