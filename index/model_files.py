"""The model's files an index is built from: ``item_embeddings.npy`` and ``item_ids.json``."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from recstream.artifacts import EMBEDDINGS, ITEM_IDS, ArtifactError, load_npy, verify_manifest


def read_model_arrays(version_dir: Path) -> tuple[np.ndarray, list[str]]:
    """The model's verified item embeddings ``[n_items, d]`` and item ids of a version."""
    verify_manifest(version_dir, [EMBEDDINGS, ITEM_IDS])
    embeddings = _load_embeddings(version_dir / EMBEDDINGS)
    ids = _load_ids(version_dir / ITEM_IDS)
    if len(ids) != embeddings.shape[0]:
        raise ArtifactError(f"{version_dir}: {len(ids)} item ids for {embeddings.shape[0]} rows")
    return embeddings, ids


def _load_embeddings(path: Path) -> np.ndarray:
    try:
        array = load_npy(path)
    except (OSError, ValueError, EOFError) as exc:
        raise ArtifactError(f"{path}: not a readable .npy file ({exc})") from exc
    if array.dtype != np.float32 or array.ndim != 2:
        raise ArtifactError(
            f"{path}: expected float32 [n_items, d], got {array.dtype} {array.shape}"
        )
    return array


def _load_ids(path: Path) -> list[str]:
    try:
        ids = json.loads(path.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ArtifactError(f"{path}: unreadable item ids ({exc})") from exc
    if not isinstance(ids, list) or not all(isinstance(i, str) for i in ids):
        raise ArtifactError(f"{path}: expected a JSON list of item-id strings")
    return ids
