"""Leave-one-out evaluation: full ranking over all items, sampled-100, beyond-accuracy figures.

The full ranking excludes the user's history items (but never the target) from the ranking, as
RecBole and most full-ranking papers do; the ``_unmasked`` figures keep them.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from recstream.cooccurrence import cosine, occurrences, window_pairs
from recstream.model import metrics
from recstream.model.sasrec import SASRec
from recstream.model.sequences import Split, pad_right

K = 10
SAMPLED_NEGATIVES = 100
# The co-occurrence baseline: items up to WINDOW positions apart co-occur; each item keeps its
# NEIGHBOURS most similar; a user's scores sum over the RECENT newest history items, the k-th
# newest weighted DECAY**k. Chosen on ML-1M's validation split (docs/model.md).
WINDOW = 5
NEIGHBOURS = 200
RECENT = 20
DECAY = 0.7


@dataclass(frozen=True)
class EvalTask:
    """The sequences fed to the model (also the history to exclude) and the item to find."""

    inputs: tuple[np.ndarray, ...]  # each [n_u] 1-based item indices
    targets: np.ndarray  # [U] 1-based
    n_items: int


def evaluation_task(split: Split, which: str, n_items: int, limit: int = 0) -> EvalTask:
    """``valid``: train -> second-to-last item; ``test``: train + valid -> last item."""
    rows = split.eval_rows[:limit] if limit else split.eval_rows
    train = tuple(split.train[u] for u in rows)
    count = len(rows)
    if which == "valid":
        return EvalTask(train, split.valid_targets[:count], n_items)
    if which == "test":
        inputs = tuple(np.r_[s, v] for s, v in zip(train, split.valid_targets, strict=False))
        return EvalTask(inputs, split.test_targets[:count], n_items)
    raise ValueError(f"unknown split {which!r}; expected valid or test")


def model_scores(
    model: SASRec, inputs: Sequence[np.ndarray], length: int, batch: int = 256
) -> Iterator[Any]:
    """Scores [b, n_items] (column j = item j + 1) for consecutive batches of ``inputs``, each
    read as its last ``length`` items (the served history length)."""
    model.eval()
    with torch.inference_mode():
        items = model.item_embeddings()  # [n_items, D]
        for start in range(0, len(inputs), batch):
            seq = pad_right(inputs[start : start + batch], length)  # [b, T]
            yield model.user_vectors(seq) @ items.T  # [b, n_items]


def popularity_scores(task: EvalTask, batch: int = 256) -> Iterator[Any]:
    """The most-popular recommender: the same ranking of all items for every user."""
    row = torch.from_numpy(_popularity_order(task))
    for start in range(0, len(task.inputs), batch):
        yield row.expand(min(batch, len(task.inputs) - start), -1).clone()


def _popularity_order(task: EvalTask) -> np.ndarray:
    """[n_items] float32 distinct scores n..1 by how often the inputs hold each item."""
    counts = np.zeros(task.n_items, dtype=np.int64)
    for history in task.inputs:
        np.add.at(counts, history - 1, 1)
    order = np.lexsort((np.arange(task.n_items), -counts))  # ties: lower index first
    score = np.empty(task.n_items, dtype=np.float32)
    score[order] = np.arange(task.n_items, 0, -1)  # distinct integers: no ties
    return score


def cooccurrence_scores(task: EvalTask, batch: int = 256) -> Iterator[Any]:
    """Item-to-item co-occurrence (item-kNN), the usual simple alternative to a sequential
    model: items within :data:`WINDOW` positions of each other in any user's history are
    similar by the cosine of their counts; an item's score for a user sums its similarity to
    the user's :data:`RECENT` newest items, newer ones weighted more (:data:`DECAY`), over the
    :data:`NEIGHBOURS` most similar of each."""
    starts, neighbours, similarity = _cooccurrence(task.inputs, task.n_items)
    # Far below any similarity (the smallest is 1 / the largest item count): it orders only
    # the items no recent item co-occurs with, by popularity, instead of leaving them tied.
    tiebreak = _popularity_order(task) / task.n_items * 1e-7
    for start in range(0, len(task.inputs), batch):
        histories = task.inputs[start : start + batch]
        out = np.tile(tiebreak, (len(histories), 1))
        for row, history in enumerate(histories):
            for age, item in enumerate(history[::-1][:RECENT] - 1):
                span = slice(starts[item], starts[item + 1])
                out[row, neighbours[span]] += similarity[span] * DECAY**age
        yield torch.from_numpy(out)


def _cooccurrence(
    histories: Sequence[np.ndarray], n_items: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Each item's :data:`NEIGHBOURS` most similar items, as CSR arrays over 0-based rows:
    ``neighbours[starts[i]:starts[i + 1]]`` and their cosine ``similarity``."""
    rows = [np.asarray(h, dtype=np.int64) - 1 for h in histories]
    a, b, counts = window_pairs(rows, n_items, WINDOW)
    similarity = cosine(a, b, counts, occurrences(rows, n_items))
    order = np.lexsort((-similarity, a))  # by item, most similar first
    a, b, similarity = a[order], b[order], similarity[order]
    first = np.searchsorted(a, np.arange(n_items))
    top = np.arange(len(a)) - first[a] < NEIGHBOURS
    a, b, similarity = a[top], b[top], similarity[top]
    starts = np.searchsorted(a, np.arange(n_items + 1))
    return starts, b, similarity.astype(np.float32)


def evaluate(
    scores: Iterator[Any], task: EvalTask, features: np.ndarray, seed: int = 0
) -> dict[str, float]:
    """All figures of ``evaluate --json`` for one recommender's ``scores`` batches."""
    return evaluate_ranks(scores, task, features, seed)[0]


def evaluate_ranks(
    scores: Iterator[Any], task: EvalTask, features: np.ndarray, seed: int = 0
) -> tuple[dict[str, float], np.ndarray]:
    """:func:`evaluate`'s figures and each user's 0-based rank of the target (history
    excluded), for paired comparisons."""
    rng = np.random.default_rng(seed)
    ranks, unmasked, sampled, tops = [], [], [], []
    start = 0
    for batch in scores:
        end = start + batch.shape[0]
        inputs, targets = task.inputs[start:end], torch.from_numpy(task.targets[start:end] - 1)
        target_scores = batch.gather(1, targets[:, None])  # [b, 1]
        unmasked.append((batch > target_scores).sum(1).numpy())
        _exclude_history(batch, inputs, targets, target_scores)
        ranks.append((batch > target_scores).sum(1).numpy())
        tops.append(torch.topk(batch, min(K, task.n_items), dim=1).indices.numpy())
        sampled.append(_sampled_ranks(batch, inputs, targets, target_scores, rng))
        start = end
    summary = _summary(task, ranks, unmasked, sampled, tops, features)
    return summary, np.concatenate(ranks) if ranks else np.zeros(0, dtype=np.int64)


def _exclude_history(
    batch: Any, inputs: Sequence[np.ndarray], targets: Any, target_scores: Any
) -> None:
    rows = np.repeat(np.arange(len(inputs)), [len(s) for s in inputs])
    cols = np.concatenate(inputs) - 1 if len(inputs) else np.zeros(0, dtype=np.int64)
    batch[torch.from_numpy(rows), torch.from_numpy(cols)] = float("-inf")
    batch.scatter_(1, targets[:, None], target_scores)  # a re-consumed target stays rankable


def _sampled_ranks(
    batch: Any, inputs: Sequence[np.ndarray], targets: Any, target_scores: Any, rng: Any
) -> np.ndarray:
    """Rank of the target among 100 uniform negatives the user never interacted with."""
    n_items = batch.shape[1]
    out = np.zeros(len(inputs), dtype=np.int64)
    for row, history in enumerate(inputs):
        seen = np.union1d(history - 1, [int(targets[row])])
        allowed = np.setdiff1d(np.arange(n_items), seen, assume_unique=True)
        size = min(SAMPLED_NEGATIVES, len(allowed))
        negatives = torch.from_numpy(rng.choice(allowed, size=size, replace=False))
        out[row] = int((batch[row, negatives] > target_scores[row]).sum())
    return out


def _summary(
    task: EvalTask,
    ranks: list[np.ndarray],
    unmasked: list[np.ndarray],
    sampled: list[np.ndarray],
    tops: list[np.ndarray],
    features: np.ndarray,
) -> dict[str, float]:
    r, u, s = (np.concatenate(x) if x else np.zeros(0, int) for x in (ranks, unmasked, sampled))
    top = np.concatenate(tops) if tops else np.zeros((0, K), dtype=np.int64)
    popularity = metrics.popularity_share(task.inputs, task.n_items)
    return {
        f"hr@{K}": metrics.hit_rate(r, K),
        f"ndcg@{K}": metrics.ndcg(r, K),
        f"hr@{K}_unmasked": metrics.hit_rate(u, K),
        f"ndcg@{K}_unmasked": metrics.ndcg(u, K),
        f"hr@{K}_sampled": metrics.hit_rate(s, K),
        f"ndcg@{K}_sampled": metrics.ndcg(s, K),
        f"coverage@{K}": metrics.coverage(top, task.n_items),
        f"ild@{K}": metrics.intra_list_diversity(top, features),
        f"novelty@{K}": metrics.novelty(top, popularity),
        "n_users": len(r),
    }


def masked_ndcg_hr(scores: Iterator[Any], task: EvalTask) -> tuple[float, float]:
    """NDCG@10 and HR@10 of the history-excluded full ranking only: the cheap validation."""
    ranks, start = [], 0
    for batch in scores:
        end = start + batch.shape[0]
        targets = torch.from_numpy(task.targets[start:end] - 1)
        target_scores = batch.gather(1, targets[:, None])  # [b, 1]
        _exclude_history(batch, task.inputs[start:end], targets, target_scores)
        ranks.append((batch > target_scores).sum(1).numpy())
        start = end
    r = np.concatenate(ranks) if ranks else np.zeros(0, dtype=np.int64)
    return metrics.ndcg(r, K), metrics.hit_rate(r, K)
