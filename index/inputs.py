"""Checks on what callers hand the index: embeddings, item ids, query vectors, k.

Every check raises ``ValueError`` saying what was wrong; nothing here uses ``assert``, so the
checks survive ``python -O``.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Literal

import numpy as np

Metric = Literal["ip", "cosine"]
METRICS: tuple[str, ...] = ("ip", "cosine")


def check_metric(metric: str) -> Metric:
    if metric not in METRICS:
        raise ValueError(f"metric must be one of {list(METRICS)}, got {metric!r}")
    return "ip" if metric == "ip" else "cosine"


def check_matrix(array: object, name: str, dim: int | None = None) -> np.ndarray:
    """A finite, C-contiguous float32 ``[rows, d]`` view of ``array`` (float64 is converted)."""
    if not isinstance(array, np.ndarray):
        raise ValueError(f"{name} must be a numpy array, got {type(array).__name__}")
    if array.ndim != 2:
        raise ValueError(f"{name} must be 2-D [rows, d], got shape {array.shape}")
    if not np.issubdtype(array.dtype, np.floating):
        raise ValueError(f"{name} must be a float32 array, got dtype {array.dtype}")
    if array.shape[1] < 1:
        raise ValueError(f"{name} has no columns (shape {array.shape})")
    if dim is not None and array.shape[1] != dim:
        raise ValueError(f"{name} have d={array.shape[1]}, the index has d={dim}")
    out = np.ascontiguousarray(array, dtype=np.float32)
    if not np.isfinite(out).all():
        bad = int(np.flatnonzero(~np.isfinite(out).all(axis=1))[0])
        raise ValueError(f"{name} row {bad} contains NaN or infinity")
    return out


def check_item_ids(item_ids: Sequence[str], n_rows: int) -> tuple[str, ...]:
    """Item ids as a tuple of unique, non-empty strings, one per embedding row."""
    if isinstance(item_ids, str):
        raise ValueError("item_ids must be a sequence of strings, got one string")
    ids = tuple(item_ids)
    if len(ids) != n_rows:
        raise ValueError(f"{len(ids)} item ids for {n_rows} embedding rows")
    for row, item in enumerate(ids):
        if not isinstance(item, str) or not item:
            raise ValueError(f"item id at row {row} must be a non-empty string, got {item!r}")
    if len(set(ids)) != len(ids):
        raise ValueError(f"duplicate item id {_first_duplicate(ids)!r}")
    return ids


def _first_duplicate(ids: Sequence[str]) -> str:
    seen: set[str] = set()
    for item in ids:
        if item in seen:
            return item
        seen.add(item)
    return ""


def check_k(k: object) -> int:
    if isinstance(k, bool) or not isinstance(k, (int, np.integer)) or k < 1:
        raise ValueError(f"k must be an integer >= 1, got {k!r}")
    return int(k)
