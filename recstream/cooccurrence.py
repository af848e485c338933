"""Item-to-item co-occurrence, the usual simple alternative to a sequential model: two items
are similar when they sit close together in users' histories. numpy only; the evaluation's
baseline (model/evaluate.py) and the simulator's item_knn arm keep their own storage of it."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np


def window_pairs(
    histories: Sequence[np.ndarray], n_items: int, window: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Every pair of different items at most ``window`` positions apart in some history,
    counted in both directions: ``(a, b, counts)``, sorted by ``a`` then ``b``. Items are
    0-based rows below ``n_items``."""
    codes = []
    for history in histories:
        h = np.asarray(history, dtype=np.int64)
        for lag in range(1, min(window, len(h) - 1) + 1):
            codes += [h[:-lag] * n_items + h[lag:], h[lag:] * n_items + h[:-lag]]
    joined = np.concatenate(codes) if codes else np.zeros(0, np.int64)
    unique, counts = np.unique(joined, return_counts=True)
    a, b = np.divmod(unique, n_items)
    keep = a != b
    return a[keep], b[keep], counts[keep]


def cosine(a: np.ndarray, b: np.ndarray, counts: np.ndarray, occurrences: np.ndarray) -> np.ndarray:
    """``counts / sqrt(n_a n_b)``, float64, with ``occurrences[i]`` how often item i occurs
    (an item that co-occurs occurs, so the root is never 0)."""
    frequency = occurrences.astype(np.float64)
    return counts / np.sqrt(frequency[a] * frequency[b])


def occurrences(histories: Sequence[np.ndarray], n_items: int) -> np.ndarray:
    """[n_items] how often each 0-based item occurs over all histories."""
    every = [np.asarray(h, dtype=np.int64) for h in histories]
    return np.bincount(np.concatenate([np.zeros(0, np.int64), *every]), minlength=n_items)
