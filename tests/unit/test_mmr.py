"""MMR against hand-checked cases."""

from __future__ import annotations

import numpy as np
import pytest

from recstream.streams.mmr import category_matrix, cosine_matrix, mmr, normalise_scores


def test_lambda_one_is_plain_relevance_order() -> None:
    sim = np.ones((4, 4))
    assert mmr([0.1, 0.9, 0.5, 0.7], sim, 4, 1.0) == [1, 3, 2, 0]


def test_diversity_skips_near_duplicates() -> None:
    # 0 and 1 are the same kind of item; 2 is different and slightly less relevant.
    sim = category_matrix(["a", "a", "b"])
    assert mmr([1.0, 0.95, 0.9], sim, 2, 0.5) == [0, 2]
    assert mmr([1.0, 0.95, 0.9], sim, 2, 1.0) == [0, 1]


def test_cosine_matrix_and_normalisation() -> None:
    sim = cosine_matrix(np.array([[1.0, 0.0], [2.0, 0.0], [0.0, 3.0], [0.0, 0.0]]))
    assert sim[0, 1] == pytest.approx(1.0)
    assert sim[0, 2] == pytest.approx(0.0)
    assert sim[3, 3] == 0.0
    assert normalise_scores([2.0, 4.0, 3.0]).tolist() == [0.0, 1.0, 0.5]
    assert normalise_scores([5.0, 5.0]).tolist() == [1.0, 1.0]


def test_k_larger_than_candidates_and_bad_lambda() -> None:
    assert sorted(mmr([0.3, 0.2], np.eye(2), 10, 0.5)) == [0, 1]
    assert mmr([], np.zeros((0, 0)), 3, 0.5) == []
    with pytest.raises(ValueError, match="lambda"):
        mmr([1.0], np.eye(1), 1, 1.5)
