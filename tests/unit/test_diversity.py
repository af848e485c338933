"""Intra-list diversity: one definition (recstream.diversity) for the worker's online metric,
offline evaluation and the simulator."""

from __future__ import annotations

import math

import numpy as np
import pytest

from recstream.diversity import UNKNOWN, category_codes, category_diversity, embedding_diversity
from recstream.model import metrics
from recstream.sim.metrics import Tally
from recstream.sim.world import Reaction


def test_category_diversity_is_the_share_of_pairs_in_different_categories() -> None:
    cats = {"a1": "a", "a2": "a", "b1": "b", "c1": "c"}
    lists = [["a1", "a2", "b1"], ["a1", "b1", "c1"], ["a1", "a2"], ["a1"], ["a1", "new"]]
    div = category_diversity(*category_codes(lists, cats.get))
    assert div[0] == pytest.approx(2 / 3)  # (a1,b1), (a2,b1) of three pairs
    assert div[1] == 1.0
    assert div[2] == 0.0
    assert math.isnan(div[3])  # one item: no pair
    assert div[4] == 1.0  # an item without a category differs from every other


def test_embedding_diversity_matches_pairwise_cosines() -> None:
    rng = np.random.default_rng(0)
    lengths = [4, 2, 3, 1]
    table = rng.standard_normal((sum(lengths), 5))
    div = embedding_diversity(lengths, table)
    start = 0
    for b, n in enumerate(lengths):
        rows = table[start : start + n] / np.linalg.norm(table[start : start + n], axis=1)[:, None]
        start += n
        if n < 2:
            assert math.isnan(div[b])
            continue
        sims = [rows[i] @ rows[j] for i in range(n) for j in range(n) if i != j]
        assert div[b] == pytest.approx(1 - np.mean(sims))
    same = embedding_diversity([3], np.ones((3, 4)))
    assert same[0] == pytest.approx(0.0)
    assert embedding_diversity([], np.zeros((0, 4))).size == 0


def test_items_without_a_category_differ_from_each_other_too() -> None:
    codes = np.array([[UNKNOWN, UNKNOWN, 0], [1, 1, 1]])
    assert category_diversity(codes, [3, 2]).tolist() == [1.0, 0.0]


def test_offline_metric_is_the_mean_of_the_shared_definition() -> None:
    rng = np.random.default_rng(1)
    features = rng.standard_normal((20, 6))
    features[3] = 0.0  # an item without features: unlike every other
    top = rng.integers(0, 20, size=(7, 5))
    top[0, :2] = 3
    expected = embedding_diversity(np.full(7, 5), features[top.ravel()]).mean()
    assert metrics.intra_list_diversity(top, features) == pytest.approx(expected)
    assert metrics.intra_list_diversity(np.zeros((3, 1), dtype=np.int64), features) == 0.0


def test_simulator_lists_use_the_same_rule() -> None:
    tally = Tally(n_items=10)
    no_click = Reaction(position=None, bought=False)
    tally.add(np.array([1, 2, -1, -1]), np.array([0, 0, UNKNOWN, UNKNOWN]), no_click)
    tally.add(np.array([4]), np.array([2]), no_click)  # one item: no pair, not averaged
    expected = category_diversity(np.array([[0, 0, UNKNOWN, UNKNOWN]]), [4])[0]
    assert expected == pytest.approx(10 / 12)  # two foreign items are not alike
    assert tally.summary()["diversity"] == pytest.approx(expected)
