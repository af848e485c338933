"""Item-id histories → the model's index rows, and grouped encoding: numpy only, shared by the
torch and the ONNX Runtime encoders so that both read a history the same way."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

GROUP = 64  # users per forward pass inside one encode() call (fewer, larger products)


def history_indices(sequence: Sequence[str], index: Mapping[str, int], max_len: int) -> list[int]:
    """The last ``max_len`` known items of a history as model indices, oldest first. Walks back
    from the newest item: a long history costs ``max_len`` lookups, not its length."""
    found: list[int] = []
    for item in reversed(sequence):
        row = index.get(item)
        if row is not None:
            found.append(row)
            if len(found) == max_len:
                break
    found.reverse()
    return found


def known_counts(sequences: Sequence[Sequence[str]], index: Mapping[str, int]) -> np.ndarray:
    """How many of each user's items the model knows, [B] int64 (0 means cold start)."""
    return np.array([sum(i in index for i in s) for s in sequences], dtype=np.int64)


def encode_grouped(
    rows: Sequence[list[int]], dim: int, forward: Callable[[np.ndarray], np.ndarray]
) -> np.ndarray:
    """``[B, dim]`` float32 user vectors; ``forward`` maps a right-padded int64 batch
    ``[b, t]`` to ``[b, dim]``. Rows without items stay zero. Similar lengths share a forward
    pass: padding to the longest in a group is cheap and never changes a row's result."""
    out = np.zeros((len(rows), dim), dtype=np.float32)
    known = sorted((r for r, seq in enumerate(rows) if seq), key=lambda r: len(rows[r]))
    for start in range(0, len(known), GROUP):
        group = known[start : start + GROUP]
        batch = np.zeros((len(group), max(len(rows[r]) for r in group)), dtype=np.int64)
        for row, r in enumerate(group):
            batch[row, : len(rows[r])] = rows[r]  # right-padded, as in training
        out[group] = forward(batch)
    return out


class HistoryEncoder:
    """What both encoders share: the served item ids, length and dimension, the item
    embeddings, and history → indices → grouped forward passes. Subclasses set the fields in
    their constructor and implement :meth:`_forward` (``[b, t]`` int64 → ``[b, dim]``)."""

    _path: Path
    _dim: int
    _max_len: int
    _item_ids: tuple[str, ...]
    _index: dict[str, int]
    _embeddings: np.ndarray
    _metrics: dict[str, Any]

    def _init_vocabulary(self, path: Path, dim: int, max_len: int, item_ids: tuple[str, ...],
                         embeddings: np.ndarray, metrics: dict[str, Any]) -> None:  # fmt: skip
        self._path, self._dim, self._max_len = path, dim, max_len
        self._item_ids = item_ids
        self._index = {item: i + 1 for i, item in enumerate(item_ids)}  # 0 pads
        self._embeddings = np.ascontiguousarray(embeddings, dtype=np.float32)
        self._metrics = metrics

    @property
    def version(self) -> str:
        """The artifact version directory's name, e.g. ``v3``."""
        return self._path.name

    @property
    def max_len(self) -> int:
        """The served history length."""
        return self._max_len

    @property
    def dim(self) -> int:
        return self._dim

    @property
    def metrics(self) -> dict[str, Any]:
        """The artifact's ``metrics.json`` (training figures, config, dataset)."""
        return self._metrics

    @property
    def item_ids(self) -> tuple[str, ...]:
        return self._item_ids

    def item_embeddings(self) -> np.ndarray:
        """float32 [n_items, dim]; row i belongs to ``item_ids[i]``."""
        return self._embeddings

    def known_counts(self, sequences: Sequence[Sequence[str]]) -> np.ndarray:
        """How many of each user's items the model knows, [B] int64 (0 means cold start)."""
        return known_counts(sequences, self._index)

    def has_history(self, sequences: Sequence[Sequence[str]]) -> np.ndarray:
        """[B] bool: False where ``encode`` returns a zero vector (nothing known). Stops at
        each history's first known item, where counting read all of them."""
        known = self._index.keys()
        return np.fromiter((not known.isdisjoint(s) for s in sequences), bool, len(sequences))

    def encode(self, sequences: Sequence[Sequence[str]]) -> np.ndarray:
        """User vectors [B, dim] float32 from item-id histories, oldest first.

        Unknown ids are skipped, only the last ``max_len`` known items count, and a user
        with no known item gets a zero vector (see :meth:`has_history`).
        """
        rows = [history_indices(s, self._index, self._max_len) for s in sequences]
        return encode_grouped(rows, self._dim, self._forward)

    def _forward(self, batch: np.ndarray) -> np.ndarray:
        raise NotImplementedError
