"""MMR against hand-checked cases."""

from __future__ import annotations

import numpy as np
import pytest

from recstream.streams.mmr import category_rows, cosine_rows, mmr, normalise_scores


def test_lambda_one_is_plain_relevance_order() -> None:
    same = category_rows(["a"] * 4)
    assert mmr([0.1, 0.9, 0.5, 0.7], same, 4, 1.0) == [1, 3, 2, 0]


def test_diversity_skips_near_duplicates() -> None:
    # 0 and 1 are the same kind of item; 2 is different and slightly less relevant.
    sim = category_rows(["a", "a", "b"])
    assert mmr([1.0, 0.95, 0.9], sim, 2, 0.5) == [0, 2]
    assert mmr([1.0, 0.95, 0.9], sim, 2, 1.0) == [0, 1]


def test_similarity_rows_and_normalisation() -> None:
    row = cosine_rows(np.array([[1.0, 0.0], [2.0, 0.0], [0.0, 3.0], [0.0, 0.0]]))
    assert row(0).tolist() == pytest.approx([1.0, 1.0, 0.0, 0.0])
    assert row(3).tolist() == [0.0, 0.0, 0.0, 0.0]
    assert category_rows(["a", None, "a"])(1).tolist() == [0.0, 0.0, 0.0]
    assert category_rows(["a", None, "a"])(0).tolist() == [1.0, 0.0, 1.0]
    assert normalise_scores([2.0, 4.0, 3.0]).tolist() == [0.0, 1.0, 0.5]
    assert normalise_scores([5.0, 5.0]).tolist() == [1.0, 1.0]


def test_k_larger_than_candidates_and_bad_lambda() -> None:
    rows = cosine_rows(np.eye(2))
    assert sorted(mmr([0.3, 0.2], rows, 10, 0.5)) == [0, 1]
    assert mmr([], cosine_rows(np.zeros((0, 2))), 3, 0.5) == []
    with pytest.raises(ValueError, match="lambda"):
        mmr([1.0], cosine_rows(np.eye(1)), 1, 1.5)
