"""Export a trained model as a versioned artifact directory, and load one back, verified.

A version directory holds ``weights.safetensors`` (the state dict; never a pickle),
``config.json`` (:class:`ModelConfig`), ``item_ids.json`` (item id strings in row order),
``item_embeddings.npy`` (float32 [n_items, d], row i is item_ids[i], no padding row),
``metrics.json``, ``encoder.onnx`` (the user encoder for ONNX Runtime, when the export
verified) and ``manifest.json`` with the sha256 of every file. Other rooms may add
files (index/ adds ``index/``); nothing here forbids that.
"""

from __future__ import annotations

import dataclasses
import json
import shutil
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file

from recstream.artifacts import (
    MANIFEST,
    ArtifactError,
    publish_version,
    resolve_version,
    staging_dir,
    verify_manifest,
    write_manifest,
)
from recstream.model.config import ModelConfig
from recstream.model.layout import (
    CONFIG,
    EMBEDDINGS,
    ENCODER_INT8,
    ENCODER_ONNX,
    ITEM_IDS,
    KIND,
    METRICS,
    MODEL_FILES,
    WEIGHTS,
    read_config,
    read_item_ids,
)
from recstream.model.onnx_export import export_encoders
from recstream.model.sasrec import SASRec
from recstream.model.training import Trained


@dataclass(frozen=True)
class LoadedModel:
    """A verified artifact: the model in eval mode, its config, item ids and metrics."""

    model: SASRec
    config: ModelConfig
    item_ids: tuple[str, ...]
    metrics: dict[str, Any]
    manifest: dict[str, Any]
    path: Path


def save_artifact(
    trained: Trained,
    root: Path,
    dataset: dict[str, Any],
    *,
    extra_files: Mapping[str, bytes] | None = None,
    before_publish: Callable[[Path], None] | None = None,
) -> Path:
    """Write ``trained`` as the next ``v<N>`` under ``root``; returns the version directory.

    ``dataset`` describes the data and how to reload it; it goes into metrics and manifest.
    ``extra_files`` (name -> bytes) are written beside the model files and covered by the
    manifest; ``before_publish`` gets the finished staging directory (e.g. to add an index),
    so that readers see the version only when it is complete.
    """
    extra = dict(extra_files or {})
    clash = sorted(set(extra) & {*MODEL_FILES, ENCODER_ONNX, ENCODER_INT8, MANIFEST})
    if clash:
        raise ValueError(f"extra files {clash} would replace the model's own files")
    staged = staging_dir(root)
    try:
        _write_files(trained, staged, dataset)
        for name, data in extra.items():
            (staged / name).write_bytes(data)
        # The encoder for ONNX Runtime: serving without torch, and faster (docs/streams.md).
        onnx = export_encoders(
            trained.model, staged, trained.split.train, trained.model_config.inference_len
        )
        write_manifest(
            staged,
            [*MODEL_FILES, *onnx, *extra],
            kind=KIND,
            created=_now(),
            dataset=dataset,
            format_model=1,
        )
        if before_publish is not None:
            before_publish(staged)
        return publish_version(root, staged)
    except BaseException:
        shutil.rmtree(staged, ignore_errors=True)
        raise


def load_artifact(path: Path) -> LoadedModel:
    """Load the newest version under a root, or one version directory; checksums first.

    Raises ArtifactError for a missing, truncated or altered file.
    """
    version_dir = resolve_version(path)
    manifest = verify_manifest(version_dir, MODEL_FILES)
    config = read_config(version_dir / CONFIG)
    item_ids = read_item_ids(version_dir / ITEM_IDS, config.n_items)
    model = SASRec(config)
    model.load_state_dict(_read_weights(version_dir / WEIGHTS, model))
    model.eval()
    metrics = json.loads((version_dir / METRICS).read_text())
    return LoadedModel(model, config, item_ids, metrics, manifest, version_dir)


def _write_files(trained: Trained, directory: Path, dataset: dict[str, Any]) -> None:
    model = trained.model
    state = {name: t.detach().contiguous().clone() for name, t in model.state_dict().items()}
    save_file(state, str(directory / WEIGHTS))
    trained.model_config.save(directory / CONFIG)
    (directory / ITEM_IDS).write_text(json.dumps(list(trained.vocab.item_ids)))
    embeddings = model.item_embeddings().detach().numpy().astype(np.float32)  # [n_items, D]
    np.save(directory / EMBEDDINGS, embeddings)
    (directory / METRICS).write_text(json.dumps(_metrics(trained, dataset), indent=2) + "\n")


def _metrics(trained: Trained, dataset: dict[str, Any]) -> dict[str, Any]:
    best = next((h for h in trained.history if h.get("epoch") == trained.best_epoch), {})
    return (
        {
            "valid": {k: v for k, v in best.items() if k.startswith("valid_")},
            "valid_popularity": {"valid_ndcg@10": trained.popularity_ndcg},
            "best_epoch": trained.best_epoch,
            "epochs": trained.epochs_run,
            "stopped": trained.stopped,
            "train_seconds": round(trained.train_seconds, 1),
            "seconds_per_epoch": round(trained.train_seconds / max(trained.epochs_run, 1), 3),
            "model_config": dataclasses.asdict(trained.model_config),
            "train_config": dataclasses.asdict(trained.train_config),
            "dataset": dataset,
            "history": trained.history,
        }
        | ({"warm_start": trained.warm_start} if trained.warm_start else {})
        | ({"adapted": trained.adapted} if trained.adapted else {})
    )


def _read_weights(path: Path, model: SASRec) -> dict[str, torch.Tensor]:
    try:
        state = load_file(str(path))
    except (SafetensorError, OSError) as exc:
        raise ArtifactError(f"{path}: unreadable weights ({exc})") from exc
    expected = {k: tuple(v.shape) for k, v in model.state_dict().items()}
    found = {k: tuple(v.shape) for k, v in state.items()}
    if found != expected:
        raise ArtifactError(f"{path}: weights do not match config.json (names or shapes differ)")
    return state


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")
