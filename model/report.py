"""The ``evaluate`` report: an artifact's model beside the most-popular baseline.

The data are split exactly as in training (leave-one-out over the same ordered rows), with
the artifact's item vocabulary; items the model never saw are dropped from the histories.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from recstream.model.artifact import LoadedModel
from recstream.model.data import Interactions, load_dataset, load_genres
from recstream.model.evaluate import (
    K,
    cooccurrence_scores,
    evaluate_ranks,
    evaluation_task,
    model_scores,
    popularity_scores,
)
from recstream.model.metrics import genre_features, ndcg_gains
from recstream.model.sequences import Vocabulary, build_sequences, leave_one_out
from recstream.stats import interval


def evaluate_artifact(
    loaded: LoadedModel,
    interactions: Interactions,
    *,
    event_weights: Mapping[str, float],
    genres: Mapping[str, tuple[str, ...]] | None = None,
    split: str = "test",
    users: int = 0,
    seed: int = 0,
) -> dict[str, Any]:
    """All ``evaluate --json`` figures for the model, ``"baseline"`` (most popular unseen) and
    ``"cooccurrence"`` (item-kNN), and ``"paired"``: the model minus each, user by user.

    ``users`` > 0 evaluates the first that many users only (a quick look; 0 = all).
    """
    vocab = Vocabulary(loaded.item_ids)
    sequences = build_sequences(interactions, event_weights, vocab=vocab)
    task = evaluation_task(leave_one_out(sequences), split, len(vocab), users)
    if len(task.targets) == 0:
        raise ValueError("no user has the 3 interactions leave-one-out evaluation needs")
    features, ild_by = _diversity_features(loaded, genres)
    scores = model_scores(loaded.model, task.inputs, loaded.config.inference_len)
    figures, ranks = evaluate_ranks(scores, task, features, seed)
    report: dict[str, Any] = dict(figures)
    report["baseline"], popular = evaluate_ranks(popularity_scores(task), task, features, seed)
    report["cooccurrence"], cooc = evaluate_ranks(cooccurrence_scores(task), task, features, seed)
    report["paired"] = {"popularity": paired(ranks, popular), "cooccurrence": paired(ranks, cooc)}
    report |= {"split": split, "version": loaded.path.name, "ild_by": ild_by}
    report["n_items"] = len(vocab)
    report["mean_history"] = float(np.mean([len(s) for s in task.inputs]))
    return report


def paired(ranks: np.ndarray, baseline: np.ndarray) -> dict[str, Any]:
    """The model minus a baseline on the same users: per user, NDCG@10 and hit@10 (0 or 1),
    then the mean difference with its 95% interval."""
    return {
        f"ndcg@{K}": interval(ndcg_gains(ranks, K) - ndcg_gains(baseline, K)).to_json(),
        f"hr@{K}": interval((ranks < K).astype(float) - (baseline < K)).to_json(),
    }


def load_for_artifact(
    loaded: LoadedModel, dataset: str | None, path: Path | None
) -> tuple[Interactions, dict[str, tuple[str, ...]] | None]:
    """The data to evaluate on: as given, else as recorded in the artifact's metrics."""
    if dataset is None or path is None:
        recorded = loaded.metrics.get("dataset", {})
        dataset = dataset or recorded.get("name")
        path = path or (Path(recorded["path"]) if recorded.get("path") else None)
    if not dataset or path is None:
        raise ValueError(
            f"{loaded.path}: no dataset recorded; pass --dataset NAME --data-dir DIR or --data FILE"
        )
    return load_dataset(dataset, path), load_genres(dataset, path)


def _diversity_features(
    loaded: LoadedModel, genres: Mapping[str, tuple[str, ...]] | None
) -> tuple[np.ndarray, str]:
    if genres:
        return genre_features(loaded.item_ids, genres), "genre"
    embeddings = loaded.model.item_embeddings().detach().numpy()
    return np.asarray(embeddings, dtype=np.float32), "embedding"
