"""Maximal marginal relevance (Carbonell & Goldstein, SIGIR 1998): re-rank candidates so that
each next pick trades relevance against similarity to what is already picked."""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np


def normalise_scores(scores: Sequence[float]) -> np.ndarray:
    """Min-max to [0, 1] so that λ weighs relevance and similarity on the same scale."""
    arr = np.asarray(scores, dtype=np.float64)
    if arr.size == 0:
        return arr
    span = float(arr.max() - arr.min())
    return np.ones_like(arr) if span == 0 else (arr - arr.min()) / span


# Similarity of candidate i to every candidate, [N]; MMR needs only the rows of picked items,
# so k rows instead of an N×N matrix (also keeps BLAS on single matrix-vector products).
SimilarityRows = Callable[[int], np.ndarray]


def cosine_rows(vectors: np.ndarray) -> SimilarityRows:
    """Cosine similarity rows for ``[N, d]`` candidate vectors (zero vectors are similar to
    nothing)."""
    norms = np.linalg.norm(vectors, axis=1, keepdims=True)
    unit = (vectors / np.where(norms == 0, 1.0, norms)).astype(np.float64)
    return lambda i: unit @ unit[i]


def category_rows(categories: Sequence[str | None]) -> SimilarityRows:
    """1 where two candidates share a known category, else 0."""
    codes = {c: n for n, c in enumerate(sorted({c for c in categories if c is not None}))}
    arr = np.array([codes.get(c, -1) if c is not None else -1 for c in categories])
    return lambda i: ((arr == arr[i]) & (arr[i] >= 0)).astype(np.float64)


def mmr(relevance: Sequence[float], similarity: SimilarityRows, k: int, lam: float) -> list[int]:
    """Indices of ``k`` candidates in MMR order. ``lam`` = 1 is pure relevance, 0 pure diversity.

    relevance: ``[N]`` scores (any scale); similarity: row function, see :data:`SimilarityRows`.
    """
    if not 0.0 <= lam <= 1.0:
        raise ValueError(f"MMR lambda must be in [0, 1], got {lam}")
    rel = normalise_scores(relevance)
    n = rel.size
    if n == 0 or k <= 0:
        return []
    picked = [int(np.argmax(rel))]
    # Highest similarity of every candidate to anything picked so far.
    closest = similarity(picked[0]).copy()
    available = np.ones(n, dtype=bool)
    available[picked[0]] = False
    while len(picked) < min(k, n):
        gain = lam * rel - (1.0 - lam) * closest
        gain[~available] = -np.inf
        best = int(np.argmax(gain))
        picked.append(best)
        available[best] = False
        closest = np.maximum(closest, similarity(best))
    return picked
