"""A model version directory's file names and the readers that need no torch: the ONNX Runtime
encoder serves from the same files as the torch one."""

from __future__ import annotations

import json
from pathlib import Path

from recstream.artifacts import ArtifactError
from recstream.model.config import ModelConfig

WEIGHTS = "weights.safetensors"
CONFIG = "config.json"
ITEM_IDS = "item_ids.json"
EMBEDDINGS = "item_embeddings.npy"
METRICS = "metrics.json"
ENCODER_ONNX = "encoder.onnx"  # optional: versions published before it lack it
MODEL_FILES = (WEIGHTS, CONFIG, ITEM_IDS, EMBEDDINGS, METRICS)
KIND = "sasrec"


def read_config(path: Path) -> ModelConfig:
    try:
        return ModelConfig.load(path)
    except (ValueError, TypeError) as exc:
        raise ArtifactError(f"{path}: not a valid model config ({exc})") from exc


def read_item_ids(path: Path, n_items: int) -> tuple[str, ...]:
    try:
        ids = json.loads(path.read_text())
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ArtifactError(f"{path}: unreadable item ids ({exc})") from exc
    if not isinstance(ids, list) or not all(isinstance(i, str) for i in ids):
        raise ArtifactError(f"{path}: expected a JSON list of item id strings")
    if len(ids) != n_items:
        raise ArtifactError(f"{path}: {len(ids)} item ids, but the model has {n_items} items")
    return tuple(ids)
