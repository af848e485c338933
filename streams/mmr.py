"""Maximal marginal relevance (Carbonell & Goldstein, SIGIR 1998): re-rank candidates so that
each next pick trades relevance against similarity to what is already picked.

Batched: a whole micro-batch of candidate lists is re-ranked with a few numpy operations per
pick, instead of a Python loop per user. Similarity is the cosine of per-candidate feature
vectors: item embeddings, or one-hot categories (same category = 1, else 0).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from recstream.vectors import unit_rows


def one_hot(categories: Sequence[str | None]) -> np.ndarray:
    """``[N, C]`` one-hot category features; unknown categories are zero rows."""
    names = sorted({c for c in categories if c is not None})
    column = {c: j for j, c in enumerate(names)}
    out = np.zeros((len(categories), max(len(names), 1)), dtype=np.float32)
    for i, c in enumerate(categories):
        if c is not None:
            out[i, column[c]] = 1.0
    return out


def normalise_scores(scores: np.ndarray) -> np.ndarray:
    """Min-max per row to [0, 1] over finite entries, so that λ weighs relevance and similarity
    on the same scale; padding (non-finite) stays -inf."""
    valid = np.isfinite(scores)
    lo = np.where(valid, scores, np.inf).min(axis=-1, keepdims=True)
    hi = np.where(valid, scores, -np.inf).max(axis=-1, keepdims=True)
    span = hi - lo
    with np.errstate(invalid="ignore", divide="ignore"):
        norm = np.where(span > 0, (scores - lo) / np.where(span > 0, span, 1.0), 1.0)
    return np.where(valid, norm, -np.inf)


def mmr_batch(
    relevance: np.ndarray, features: np.ndarray, k: int, lam: float, normalised: bool = False
) -> list[np.ndarray]:
    """MMR order for each row. ``lam`` = 1 is pure relevance, 0 pure diversity.

    relevance: ``[B, N]`` (``-inf`` pads rows with fewer candidates); features: ``[B, N, F]``,
    already of length 1 (or 0) when ``normalised``. Returns, per row, the indices of at most
    ``k`` candidates, best first.
    """
    if not 0.0 <= lam <= 1.0:
        raise ValueError(f"MMR lambda must be in [0, 1], got {lam}")
    relevance = np.asarray(relevance, dtype=np.float64)
    if relevance.shape[-1] == 0:  # no candidates at all
        return [np.zeros(0, dtype=np.int64) for _ in range(relevance.shape[0])]
    rel = normalise_scores(relevance)
    batch, n = rel.shape
    counts = np.minimum(np.isfinite(rel).sum(axis=1), max(k, 0))
    steps = int(counts.max()) if batch else 0
    # float32 and a batched matrix product: einsum in float64 was most of MMR's time.
    unit = np.asarray(features, dtype=np.float32)
    unit = unit if normalised else unit_rows(unit)
    rows = np.arange(batch)
    picked = np.zeros((batch, steps), dtype=np.int64)
    # λ·relevance, -inf for padding and (as the loop goes) for what is picked; the gain is
    # computed into one buffer in place: a fresh array per operation was most of a small
    # batch's time.
    weighted = np.where(np.isfinite(rel), lam * rel, -np.inf)
    closest = np.zeros((batch, n), dtype=np.float32)  # highest similarity to anything picked
    gain = np.empty((batch, n))
    for step in range(steps):
        if step == 0:
            best = rel.argmax(axis=1)  # the most relevant first, whatever λ
        else:
            np.multiply(closest, lam - 1.0, out=gain)
            gain += weighted
            best = gain.argmax(axis=1)
        picked[:, step] = best
        weighted[rows, best] = -np.inf
        similarity = np.matmul(unit, unit[rows, best][:, :, None])[:, :, 0]  # [B, N]
        np.maximum(closest, similarity, out=closest)
    return [picked[b, : counts[b]] for b in range(batch)]
