"""Build-time recall measurement: approximate top-10 against exact top-10 on sample queries."""

from __future__ import annotations

import logging

import faiss
import numpy as np

from recstream.index.params import Family, knob_steps, search_params

log = logging.getLogger(__name__)

RECALL_K = 10


def proxy_queries(embeddings: np.ndarray, n: int, seed: int) -> np.ndarray:
    """Stand-ins for user vectors when none are given: item rows plus Gaussian noise.

    User vectors live in the span of the item embeddings but are not items themselves; half
    the per-dimension spread of the catalogue keeps each query near, not on, an item.
    """
    rng = np.random.default_rng(seed)
    rows = embeddings[rng.integers(0, embeddings.shape[0], size=n)]
    noise = rng.standard_normal(rows.shape) * (0.5 * embeddings.std(axis=0))
    return (rows + noise).astype(np.float32)


def exact_top(rows: np.ndarray, queries: np.ndarray, k: int) -> np.ndarray:
    """Row numbers ``[B, k]`` of the exact top-k by inner product (no index copy of ``rows``)."""
    _, labels = faiss.knn(queries, rows, k, metric=faiss.METRIC_INNER_PRODUCT)
    return np.asarray(labels)


def recall_per_query(found: np.ndarray, truth: np.ndarray) -> np.ndarray:
    """|found ∩ truth| / |truth| per query row (``[B, k]`` each; -1 never matches)."""
    hits = [len(set(f.tolist()) & set(t.tolist())) for f, t in zip(found, truth, strict=True)]
    return np.asarray(hits, dtype=np.float64) / truth.shape[1]


def recall(found: np.ndarray, truth: np.ndarray) -> float:
    return float(recall_per_query(found, truth).mean())


def lower_bound(per_query: np.ndarray) -> float:
    """Mean minus two standard errors: the tuner's target must hold on unseen queries too."""
    spread = per_query.std() / np.sqrt(per_query.size) if per_query.size > 1 else 0.0
    return float(per_query.mean() - 2.0 * spread)


def measure(
    index: faiss.Index, family: Family, knob: int | None, queries: np.ndarray, truth: np.ndarray
) -> np.ndarray:
    params = search_params(family, knob, truth.shape[1])
    _, labels = index.search(queries, truth.shape[1], params=params)
    return recall_per_query(labels, truth)


def tune(
    index: faiss.Index,
    family: Family,
    nlist: int,
    queries: np.ndarray,
    truth: np.ndarray,
    target: float,
) -> tuple[int | None, float]:
    """Smallest efSearch/nprobe whose recall@10, less two standard errors, reaches ``target``;
    else the largest tried. Returns ``(knob, mean recall@10)``; exact search: ``(None, 1.0)``.
    """
    steps = knob_steps(family, nlist)
    if not steps:
        return None, 1.0
    achieved = 0.0
    for knob in steps:
        per_query = measure(index, family, knob, queries, truth)
        achieved = float(per_query.mean())
        log.info("tuning %s: %d -> recall@%d %.4f", family, knob, RECALL_K, achieved)
        if lower_bound(per_query) >= target:
            return knob, achieved
    log.warning("recall@%d target %.2f not reached; best %.4f", RECALL_K, target, achieved)
    return steps[-1], achieved
