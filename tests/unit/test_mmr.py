"""MMR against hand-checked cases, single and batched."""

from __future__ import annotations

import numpy as np
import pytest

from recstream.streams.mmr import mmr_batch, normalise_scores, one_hot
from recstream.vectors import unit_rows


def mmr(relevance: list[float], features: np.ndarray, k: int, lam: float) -> list[int]:
    """One list through the batched MMR."""
    rel = np.asarray(relevance, dtype=np.float64)[None, :]
    feats = np.asarray(features, dtype=np.float64)[None, :, :]
    return mmr_batch(rel, feats, k, lam)[0].tolist()


def test_lambda_one_is_plain_relevance_order() -> None:
    same = one_hot(["a"] * 4)
    assert mmr([0.1, 0.9, 0.5, 0.7], same, 4, 1.0) == [1, 3, 2, 0]


def test_diversity_skips_near_duplicates() -> None:
    # 0 and 1 are the same kind of item; 2 is different and slightly less relevant.
    cats = one_hot(["a", "a", "b"])
    assert mmr([1.0, 0.95, 0.9], cats, 2, 0.5) == [0, 2]
    assert mmr([1.0, 0.95, 0.9], cats, 2, 1.0) == [0, 1]


def test_embedding_similarity_spreads_picks() -> None:
    vecs = np.array([[1.0, 0.0], [0.99, 0.1], [0.0, 1.0]])
    assert mmr([1.0, 0.9, 0.5], vecs, 2, 0.5) == [0, 2]


def test_features_and_normalisation() -> None:
    unit = unit_rows(np.array([[3.0, 4.0], [0.0, 0.0]]))
    assert unit.tolist() == [[0.6, 0.8], [0.0, 0.0]]
    assert one_hot(["b", None, "a"]).tolist() == [[0.0, 1.0], [0.0, 0.0], [1.0, 0.0]]
    norm = normalise_scores(np.array([[2.0, 4.0, 3.0], [5.0, 5.0, -np.inf]]))
    assert norm[0].tolist() == [0.0, 1.0, 0.5]
    assert norm[1].tolist() == [1.0, 1.0, -np.inf]


def test_batch_rows_are_independent_and_padding_is_never_picked() -> None:
    rel = np.array([[0.3, 0.9, 0.5], [0.7, 0.2, -np.inf]])
    feats = np.zeros((2, 3, 2))
    feats[:, :, 0] = 1.0
    orders = mmr_batch(rel, feats, 3, 1.0)
    assert orders[0].tolist() == [1, 2, 0]
    assert orders[1].tolist() == [0, 1]


def test_small_inputs_and_bad_lambda() -> None:
    assert sorted(mmr([0.3, 0.2], np.eye(2), 10, 0.5)) == [0, 1]
    assert mmr([], np.zeros((0, 2)), 3, 0.5) == []
    with pytest.raises(ValueError, match="lambda"):
        mmr([1.0], np.eye(1), 1, 1.5)
