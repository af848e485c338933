"""The co-occurrence counts and cosine that both item-to-item baselines use."""

from __future__ import annotations

import numpy as np

from recstream.cooccurrence import cosine, occurrences, window_pairs


def test_pairs_within_the_window_both_ways_without_self_pairs() -> None:
    histories = [np.array([0, 1, 2, 0]), np.array([1, 2]), np.array([3])]
    a, b, counts = window_pairs(histories, n_items=4, window=2)
    got = {(int(x), int(y)): int(c) for x, y, c in zip(a, b, counts, strict=True)}
    # 0-1, 1-2, 2-0 at lag 1; 0-2, 1-0 at lag 2 (0-0 at lag 3 is outside, and a self-pair).
    assert got == {(0, 1): 2, (1, 0): 2, (1, 2): 2, (2, 1): 2, (0, 2): 2, (2, 0): 2}
    assert list(a) == sorted(a)
    assert occurrences(histories, 5).tolist() == [2, 2, 2, 1, 0]


def test_cosine_divides_by_the_root_of_both_items_occurrences() -> None:
    a, b, counts = np.array([0, 1]), np.array([1, 0]), np.array([2, 2])
    np.testing.assert_allclose(cosine(a, b, counts, np.array([4, 1])), [1.0, 1.0])
    np.testing.assert_allclose(cosine(a, b, counts, np.array([8, 2])), [0.5, 0.5])


def test_no_history_gives_no_pairs() -> None:
    a, b, counts = window_pairs([], n_items=3, window=5)
    assert len(a) == len(b) == len(counts) == 0
    assert occurrences([], 3).tolist() == [0, 0, 0]
