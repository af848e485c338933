"""A model version's files (names from recstream.artifacts, the contract) and the readers that
need no torch: the ONNX Runtime encoder serves from the same files as the torch one."""

from __future__ import annotations

import json
from pathlib import Path

from recstream.artifacts import (
    CONFIG,
    EMBEDDINGS,
    ENCODER_INT8,
    ENCODER_ONNX,
    INT8_SCALES,
    ITEM_IDS,
    METRICS,
    MODEL_FILES,
    WEIGHTS,
    ArtifactError,
)
from recstream.model.config import ModelConfig

__all__ = [
    "CONFIG",
    "EMBEDDINGS",
    "ENCODER_INT8",
    "ENCODER_ONNX",
    "INT8_SCALES",
    "ITEM_IDS",
    "KIND",
    "METRICS",
    "MODEL_FILES",
    "WEIGHTS",
    "read_config",
    "read_item_ids",
]
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
