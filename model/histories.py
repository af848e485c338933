"""Item-id histories → the model's index rows, and grouped encoding: numpy only, shared by the
torch and the ONNX Runtime encoders so that both read a history the same way."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence

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
