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

from recstream.model import metrics
from recstream.model.sasrec import SASRec
from recstream.model.sequences import Split, pad_right

K = 10
SAMPLED_NEGATIVES = 100


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
    counts = np.zeros(task.n_items, dtype=np.int64)
    for history in task.inputs:
        np.add.at(counts, history - 1, 1)
    order = np.lexsort((np.arange(task.n_items), -counts))  # ties: lower index first
    score = np.empty(task.n_items, dtype=np.float32)
    score[order] = np.arange(task.n_items, 0, -1)  # distinct integers: no ties
    row = torch.from_numpy(score)
    for start in range(0, len(task.inputs), batch):
        yield row.expand(min(batch, len(task.inputs) - start), -1).clone()


def evaluate(
    scores: Iterator[Any], task: EvalTask, features: np.ndarray, seed: int = 0
) -> dict[str, float]:
    """All figures of ``evaluate --json`` for one recommender's ``scores`` batches."""
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
    return _summary(task, ranks, unmasked, sampled, tops, features)


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
