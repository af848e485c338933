"""Filtered top-k: over-fetch from faiss, drop what a row may not see, refill, fall back to exact.

Each round asks faiss for ``fetch`` candidates per still-unfinished row; a row is finished once
``k`` candidates survive its filter. ``fetch`` starts at k + (the most excluded items of any
row) — enough when only exclusions apply, since they can push at most that many items above
the k-th — is multiplied by 4 up front when an allow-filter's selectivity is unknown, and by 4
per round. Rows still short after ``MAX_FETCH`` candidates get an exact scan of their eligible
items, so a row gets exactly k items whenever the catalogue has k eligible ones.
Every reported score is recomputed exactly from the embedding rows, whatever the index family.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from dataclasses import dataclass

import faiss
import numpy as np

from recstream.index.filters import RowFilter, eligible_mask, keep_mask
from recstream.index.params import Family, faiss_threads, search_params
from recstream.index.space import Transform, to_index_space

# Beyond a few thousand candidates, an exact scan of the eligible rows (about 7 ms at 10^6
# items on one thread) is cheaper than widening the graph or probe search, and it is exact.
MAX_FETCH = 4096
GROWTH = 4
SAMPLE_STEP = 8  # see top_k_columns
SAMPLE_ROWS = 2  # fewer rows: the sample's fixed cost exceeds what it saves

Hits = tuple[np.ndarray, np.ndarray]  # (catalogue rows int64 [m], scores float32 [m]), best first


@dataclass(frozen=True)
class SearchCore:
    """What a search needs: the faiss index, its knob, and the exact scoring rows."""

    index: faiss.Index
    family: Family
    knob: int | None
    transform: Transform
    rows: np.ndarray  # [n, d] float32; inner product with a prepared query = score
    item_ids: Sequence[str]
    row_of: dict[str, int]
    threads: int = 1

    @functools.cached_property
    def columns(self) -> np.ndarray:
        """``rows.T`` as its own contiguous [d, n] array: BLAS multiplies a few queries by it
        2.5 times faster than by the transposed view (docs/streams.md)."""
        return np.ascontiguousarray(self.rows.T)

    def scores(self, queries: np.ndarray) -> np.ndarray:
        """Exact scores of every catalogue row for each prepared query, [B, n]."""
        return queries @ self.columns

    def candidates(self, queries: np.ndarray, fetch: int) -> np.ndarray:
        """Approximate top-``fetch`` catalogue rows ``[B, fetch]`` (-1 where faiss ran short)."""
        if self.family == "flat":
            return _exact_candidates(self, queries, fetch)
        params = search_params(self.family, self.knob, fetch)
        with faiss_threads(self.threads):
            _, labels = self.index.search(
                to_index_space(queries, self.transform), fetch, params=params
            )
        return np.asarray(labels)


def _exact_candidates(core: SearchCore, queries: np.ndarray, fetch: int) -> np.ndarray:
    """The top-``fetch`` rows by exact score, unordered: one matrix product and a partial sort
    beat faiss's per-query heaps for a flat index (3.5 vs 8.4 ms for 256 queries over 3,706
    items with fetch 110, one thread); the caller orders the survivors by exact score."""
    n = core.rows.shape[0]
    if fetch >= n:
        return np.broadcast_to(np.arange(n, dtype=np.int64), (queries.shape[0], n)).copy()
    scores = core.scores(queries)  # [B, n]
    return np.argpartition(-scores, fetch - 1, axis=1)[:, :fetch].astype(np.int64)


def search_rows(
    core: SearchCore, queries: np.ndarray, k: int, filters: list[RowFilter]
) -> list[Hits]:
    """Top-k eligible rows for each prepared query ``[B, d]``; see the module doc."""
    if not filters:
        return []  # an empty batch
    if _flat_exclusions_only(core, filters):
        return _flat_masked(core, queries, k, filters)
    n = len(core.item_ids)
    results: dict[int, Hits] = {}
    pending = np.arange(len(filters))
    limit = min(n, MAX_FETCH)
    fetch = min(n, _first_fetch(k, filters))
    while pending.size and fetch <= limit:
        pending = _round(core, queries, pending, fetch, k, filters, results)
        if fetch == limit:
            break
        fetch = min(limit, fetch * GROWTH)
    for i in pending:
        results[int(i)] = _exact(core, queries[i], k, filters[i])
    return [results[i] for i in range(len(filters))]


def search_rows_padded(
    core: SearchCore, queries: np.ndarray, k: int, filters: list[RowFilter]
) -> tuple[np.ndarray, np.ndarray]:
    """:func:`search_rows` as arrays: rows ``[B, k]`` padded with -1, scores padded with -inf
    (the flat index with exclusions only makes them directly, without per-row lists)."""
    if filters and _flat_exclusions_only(core, filters):
        return flat_masked_padded(core, queries, k, filters)
    hits = search_rows(core, queries, k, filters)
    rows = np.full((len(hits), k), -1, dtype=np.int64)
    scores = np.full((len(hits), k), -np.inf, dtype=np.float32)
    for b, (found, score) in enumerate(hits):
        rows[b, : found.size] = found
        scores[b, : found.size] = score
    return rows, scores


def _flat_exclusions_only(core: SearchCore, filters: list[RowFilter]) -> bool:
    return core.family == "flat" and all(f.allowed is None for f in filters)


def _flat_masked(
    core: SearchCore, queries: np.ndarray, k: int, filters: list[RowFilter]
) -> list[Hits]:
    rows, scores = flat_masked_padded(core, queries, k, filters)
    keep = np.isfinite(scores)  # fewer than k eligible items: the rest were masked
    return [(r[m], sc[m]) for r, sc, m in zip(rows, scores, keep, strict=True)]


def flat_masked_padded(
    core: SearchCore, queries: np.ndarray, k: int, filters: list[RowFilter]
) -> tuple[np.ndarray, np.ndarray]:
    """Flat index, exclusions only: score everything, mask each row's excluded items, take
    the top k. The cost no longer grows with the largest exclusion set in the batch, which
    over-fetching made every row of a batch pay for. Rows ``[B, k]`` best first, padded with
    -1 (score -inf) where fewer than k items are eligible."""
    scores = core.scores(queries)  # [B, n] exact
    sizes = [f.excluded.size for f in filters]
    if sum(sizes):
        rows = np.repeat(np.arange(len(filters)), sizes)
        scores[rows, np.concatenate([f.excluded for f in filters])] = -np.inf
    top = top_k_columns(scores, k)
    best = np.take_along_axis(scores, top, axis=1)
    order = np.argsort(-best, axis=1, kind="stable")
    top, best = np.take_along_axis(top, order, axis=1), np.take_along_axis(best, order, axis=1)
    top = np.where(np.isfinite(best), top, -1).astype(np.int64)
    pad = k - top.shape[1]  # k beyond the catalogue: pad to k columns
    if pad > 0:
        top = np.pad(top, ((0, 0), (0, pad)), constant_values=-1)
        best = np.pad(best, ((0, 0), (0, pad)), constant_values=-np.inf)
    return top, best.astype(np.float32)


def top_k_columns(scores: np.ndarray, k: int) -> np.ndarray:
    """Each row's ``min(k, n)`` largest columns of ``scores`` ``[B, n]``, unordered.

    A partial sort of whole rows was most of a flat search's time. Instead, every
    ``SAMPLE_STEP``-th score gives each row a threshold that about ``2k`` of its scores pass;
    one comparison keeps those, and only they are partially sorted (docs/streams.md has the
    figures). Exact: when a row keeps at least k scores at or above its threshold, its top k
    are among them; a row that keeps fewer is partially sorted whole."""
    b, n = scores.shape
    if k >= n:
        return np.tile(np.arange(n), (b, 1))
    if n < 8 * k or b < SAMPLE_ROWS:  # too few scores or rows for the sample to pay
        return np.argpartition(scores, n - k, axis=1)[:, n - k :]
    sample = scores[:, ::SAMPLE_STEP]
    rank = sample.shape[1] - -(-2 * k // SAMPLE_STEP)  # the sample's ~2k/STEP-th largest
    threshold = np.partition(sample, rank, axis=1)[:, rank]
    passed = scores >= threshold[:, None]
    counts = passed.sum(axis=1)
    width = max(int(counts.max()), k)
    flat = np.flatnonzero(passed)
    rows, cols = np.divmod(flat, n)
    place = np.arange(flat.size) - np.repeat(np.cumsum(counts) - counts, counts)
    kept = np.zeros((b, width), dtype=np.int64)
    kept_scores = np.full((b, width), -np.inf, dtype=scores.dtype)
    kept[rows, place], kept_scores[rows, place] = cols, scores[rows, cols]
    best = np.argpartition(kept_scores, width - k, axis=1)[:, width - k :]
    top = np.take_along_axis(kept, best, axis=1)
    short = np.flatnonzero(counts < k)
    if short.size:
        top[short] = np.argpartition(scores[short], n - k, axis=1)[:, n - k :]
    return top


def _first_fetch(k: int, filters: list[RowFilter]) -> int:
    fetch = k + max(f.excluded.size for f in filters)
    return fetch * GROWTH if any(f.allowed is not None for f in filters) else fetch


def _round(
    core: SearchCore,
    queries: np.ndarray,
    pending: np.ndarray,
    fetch: int,
    k: int,
    filters: list[RowFilter],
    results: dict[int, Hits],
) -> np.ndarray:
    """One over-fetch round; fills ``results`` for finished rows, returns the unfinished ones."""
    labels = core.candidates(queries[pending], fetch)  # [P, fetch]
    keep = keep_mask(labels, [filters[i] for i in pending], core.item_ids)
    counts = keep.sum(axis=1)
    # Flat search asked for every item has seen all of them: short rows are final.
    exhaustive = core.family == "flat" and fetch >= len(core.item_ids)
    done = (counts >= k) | exhaustive
    if done.any():
        rows = np.where(keep, labels, 0)[done]  # [D, fetch]; dropped slots scored -inf below
        scores = np.einsum("pfd,pd->pf", core.rows[rows], queries[pending[done]])
        scores[~keep[done]] = -np.inf
        order = np.argsort(-scores, axis=1, kind="stable")[:, :k]
        for j, (i, count) in enumerate(zip(pending[done], counts[done], strict=True)):
            best = order[j, : min(k, int(count))]
            results[int(i)] = (rows[j, best], scores[j, best])
    return pending[~done]


def _exact(core: SearchCore, query: np.ndarray, k: int, f: RowFilter) -> Hits:
    """Exact top-k over this row's eligible items."""
    mask = eligible_mask(f, core.item_ids, core.row_of)
    rows = np.flatnonzero(mask)
    few = rows.size <= mask.size // 4  # then gathering the eligible rows beats a full scan
    scores = core.rows[rows] @ query if few else (core.rows @ query)[rows]
    top = np.argsort(-scores, kind="stable")[:k]
    return rows[top], scores[top].astype(np.float32)
