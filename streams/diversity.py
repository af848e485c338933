"""Intra-list diversity: the mean dissimilarity over the pairs of items of one list, for whole
batches of lists at once (by category, or by the cosine of item embeddings)."""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np

from recstream.vectors import unit_rows


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
