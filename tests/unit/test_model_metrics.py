"""Metric functions against hand-computed cases, and the evaluation's masking rules."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from recstream.model import metrics
from recstream.model.evaluate import EvalTask, cooccurrence_scores, evaluate, popularity_scores
from recstream.model.report import paired


def test_hit_rate_and_ndcg_by_hand() -> None:
    ranks = np.array([0, 1, 9, 10, 50])
    assert metrics.hit_rate(ranks, 10) == pytest.approx(3 / 5)
    expected = (1.0 + 1 / math.log2(3) + 1 / math.log2(11)) / 5
    assert metrics.ndcg(ranks, 10) == pytest.approx(expected)
    assert metrics.hit_rate(np.array([], dtype=int), 10) == 0.0


def test_coverage_counts_distinct_items() -> None:
    top = np.array([[0, 1], [1, 2]])
    assert metrics.coverage(top, 10) == pytest.approx(0.3)


def test_intra_list_diversity_by_genre() -> None:
    features = np.array([[1, 0], [1, 0], [0, 1], [1, 1]], dtype=np.float32)
    assert metrics.intra_list_diversity(np.array([[0, 1]]), features) == pytest.approx(0.0)
    assert metrics.intra_list_diversity(np.array([[0, 2]]), features) == pytest.approx(1.0)
    # cos([1,0],[1,1]) = 1/sqrt(2); two lists averaged.
    both = metrics.intra_list_diversity(np.array([[0, 3], [0, 2]]), features)
    assert both == pytest.approx(((1 - 1 / math.sqrt(2)) + 1.0) / 2)


def test_novelty_and_popularity_share() -> None:
    histories = [np.array([1, 2]), np.array([1]), np.array([1, 3]), np.array([1])]
    share = metrics.popularity_share(histories, 4)
    assert share.tolist() == [1.0, 0.25, 0.25, 0.125]  # item 4: nobody, half a user
    assert metrics.novelty(np.array([[0, 1]]), share) == pytest.approx((0 + 2) / 2)


def test_genre_features_follow_vocabulary_order() -> None:
    out = metrics.genre_features(["a", "b", "c"], {"a": ("x",), "b": ("x", "y")})
    assert out.tolist() == [[1, 0], [1, 1], [0, 0]]


def _task() -> EvalTask:
    # Two users over 5 items; user 0 saw items 1 and 2, user 1 saw item 5.
    return EvalTask((np.array([1, 2]), np.array([5])), np.array([3, 4]), n_items=5)


def test_evaluate_masks_history_but_not_the_target() -> None:
    scores = torch.tensor([[9.0, 8.0, 7.0, 1.0, 0.0], [0.0, 1.0, 2.0, 3.0, 9.0]])
    report = evaluate(iter([scores.clone()]), _task(), np.eye(5, dtype=np.float32))
    # Unmasked, user 0's target (item 3) is third and user 1's (item 4) second...
    assert report["ndcg@10_unmasked"] == pytest.approx((1 / 2 + 1 / math.log2(3)) / 2)
    # ...with the history excluded both are first.
    assert report["ndcg@10"] == pytest.approx(1.0)
    assert report["hr@10_sampled"] == pytest.approx(1.0)
    assert report["n_users"] == 2


def test_a_target_already_in_the_history_stays_rankable() -> None:
    # The user saw items 1 and 3 and comes back to item 3: the rest of the history (item 1)
    # is excluded, the target itself is not.
    task = EvalTask((np.array([1, 3]),), np.array([3]), n_items=5)
    scores = torch.tensor([[9.0, 8.0, 7.0, 1.0, 0.0]])
    report = evaluate(iter([scores]), task, np.eye(5, dtype=np.float32))
    assert report["ndcg@10_unmasked"] == pytest.approx(1 / math.log2(4))  # items 1, 2 above
    assert report["ndcg@10"] == pytest.approx(1 / math.log2(3))  # only item 2 above


def test_popularity_baseline_ranks_by_count_with_stable_ties() -> None:
    task = EvalTask((np.array([2, 3]), np.array([3])), np.array([1, 1]), n_items=4)
    (scores,) = popularity_scores(task)
    order = torch.argsort(scores[0], descending=True).tolist()
    assert order == [2, 1, 0, 3]  # item 3 (twice), item 2, then ties by index


def test_cooccurrence_ranks_what_follows_the_newest_items() -> None:
    # Item 2 always follows item 1, item 4 follows item 3; item 6 is the most popular and
    # co-occurs with nothing but itself (which does not count); item 7 nobody has.
    histories = [np.array([1, 2]), np.array([1, 2]), np.array([3, 4]), np.array([6, 6, 6])] * 5
    task = EvalTask((*histories, np.array([5, 1]), np.array([5, 3])),
                    np.zeros(22, dtype=np.int64) + 1, n_items=7)  # fmt: skip
    scores = np.concatenate([b.numpy() for b in cooccurrence_scores(task, batch=4)])
    assert scores.shape == (22, 7)
    assert int(np.argmax(scores[20])) == 1  # after item 1: item 2 (0-based row 1)
    assert int(np.argmax(scores[21])) == 3  # after item 3: item 4
    never = [i for i in range(7) if scores[20, i] < 1e-6]  # co-occurs with neither 1 nor 5
    assert sorted(never, key=lambda i: -scores[20, i]) == [5, 3, 6]  # by popularity, no ties


def test_paired_differences_by_hand() -> None:
    better, worse = np.array([0, 0, 0, 0]), np.array([20, 20, 20, 20])
    exact = paired(better, worse)
    assert exact["ndcg@10"] == {"diff": 1.0, "low": 1.0, "high": 1.0, "n": 4}
    assert exact["hr@10"]["diff"] == 1.0
    swapped = paired(np.array([0, 20]), np.array([20, 0]))  # one user each way: no difference
    assert swapped["hr@10"]["diff"] == 0.0
    assert swapped["hr@10"]["low"] < 0.0 < swapped["hr@10"]["high"]
