"""Ranking and beyond-accuracy metrics on plain arrays.

``ranks`` are 0-based positions of each user's target in a ranking (0 = ranked first);
``top`` [U, k] holds each user's top-k list as 0-based item rows.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np

from recstream.diversity import embedding_diversity


def hit_rate(ranks: np.ndarray, k: int) -> float:
    """Share of users whose target is in the top ``k``."""
    return float(np.mean(ranks < k)) if len(ranks) else 0.0


def ndcg(ranks: np.ndarray, k: int) -> float:
    """Mean NDCG@k with one relevant item per user (see :func:`ndcg_gains`)."""
    return float(np.mean(ndcg_gains(ranks, k))) if len(ranks) else 0.0


def ndcg_gains(ranks: np.ndarray, k: int) -> np.ndarray:
    """Each user's NDCG@k with one relevant item: 1 / log2(rank + 2) inside the top k, else 0."""
    return np.where(ranks < k, 1.0 / np.log2(np.asarray(ranks, np.float64) + 2.0), 0.0)


def coverage(top: np.ndarray, n_items: int) -> float:
    """Distinct recommended items over the catalogue size."""
    return float(len(np.unique(top)) / n_items) if n_items else 0.0


def intra_list_diversity(top: np.ndarray, features: np.ndarray) -> float:
    """Intra-list diversity (``recstream.diversity``: 1 − mean pairwise cosine, an item
    without features unlike every other) by ``features`` [n_items, F] (genre indicators or
    embeddings), averaged over the lists ``top`` [U, k]; 0.0 when no list has two items."""
    if top.shape[0] == 0 or top.shape[1] < 2:
        return 0.0
    lengths = np.full(top.shape[0], top.shape[1])
    return float(np.mean(embedding_diversity(lengths, features[top.ravel()])))


def novelty(top: np.ndarray, popularity: np.ndarray) -> float:
    """Mean self-information -log2(p) of recommended items, p = an item's popularity share."""
    return float(np.mean(-np.log2(popularity[top]))) if top.size else 0.0


def popularity_share(histories: Sequence[np.ndarray], n_items: int) -> np.ndarray:
    """Share of users who interacted with each item ([n_items], 0-based rows).

    Items nobody touched get half a user, so their self-information stays finite.
    """
    counts = np.zeros(n_items, dtype=np.float64)
    for history in histories:
        counts[np.unique(history) - 1] += 1.0
    return np.maximum(counts, 0.5) / max(len(histories), 1)


def genre_features(item_ids: Sequence[str], genres: Mapping[str, Sequence[str]]) -> np.ndarray:
    """Multi-hot genre indicators [n_items, n_genres] in the vocabulary's row order."""
    names = sorted({g for item in item_ids for g in genres.get(item, ())})
    column = {g: j for j, g in enumerate(names)}
    out = np.zeros((len(item_ids), len(names)), dtype=np.float32)
    for row, item in enumerate(item_ids):
        for g in genres.get(item, ()):
            out[row, column[g]] = 1.0
    return out
