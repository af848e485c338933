"""Intra-list diversity, the one definition every layer uses (numpy only): per list, the mean
dissimilarity over the ordered pairs of two different items of that list — by category (1 when
two items' categories differ, else 0) or by item vectors (1 − their cosine). An item without a
category or without features (a zero vector) is unlike every other item, another such item
included. A list of fewer than two items has no pairs: NaN."""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np

from recstream.vectors import unit_rows

UNKNOWN = -1  # the category code of an item without a category


def category_codes(
    lists: Sequence[Sequence[str]], category_of: Callable[[str], str | None]
) -> tuple[np.ndarray, np.ndarray]:
    """Item-id lists → ``[B, K]`` category codes (``UNKNOWN`` for none, and as padding) and
    ``[B]`` lengths, for :func:`category_diversity`."""
    width = max((len(r) for r in lists), default=0)
    codes = np.full((len(lists), width), UNKNOWN, dtype=np.int64)
    names: dict[str, int] = {}
    for b, row in enumerate(lists):
        for j, item in enumerate(row):
            cat = category_of(item)
            if cat is not None:
                codes[b, j] = names.setdefault(cat, len(names))
    lengths = np.fromiter((len(r) for r in lists), dtype=np.int64, count=len(lists))
    return codes, lengths


def category_diversity(codes: np.ndarray, lengths: Sequence[int] | np.ndarray) -> np.ndarray:
    """Per list, the share of its item pairs whose categories differ. ``codes`` ``[B, K]``:
    non-negative category numbers, ``UNKNOWN`` for an item without one; slots past a list's
    length are ignored."""
    codes = np.asarray(codes, dtype=np.int64).reshape(len(lengths), -1)
    sizes = np.asarray(lengths, dtype=np.int64)
    width = codes.shape[1]
    same = (codes[:, :, None] == codes[:, None, :]) & (codes[:, :, None] != UNKNOWN)
    slots = np.arange(width)[None, :] < sizes[:, None]
    pairs = slots[:, :, None] & slots[:, None, :] & ~np.eye(width, dtype=bool)
    return _one_minus_mean(np.where(pairs, same, False).sum(axis=(1, 2)), sizes)


def embedding_diversity(lengths: Sequence[int] | np.ndarray, table: np.ndarray) -> np.ndarray:
    """Per list, 1 − the mean cosine similarity of its item pairs. ``table``: the item
    vectors of all lists, concatenated in order (``sum(lengths)`` rows)."""
    sizes = np.asarray(lengths, dtype=np.int64)
    if not sizes.size:
        return np.empty(0)
    width = int(sizes.max())
    slots = np.arange(width)[None, :] < sizes[:, None]
    unit = np.zeros((len(sizes), width, table.shape[1]), dtype=np.float32)
    unit[slots] = unit_rows(np.asarray(table, dtype=np.float32))  # fills list by list
    # Sum over ordered pairs i != j of u_i·u_j = |sum_i u_i|^2 - sum_i |u_i|^2: no K×K matrix.
    total = unit.sum(axis=1)
    similar = (total * total).sum(axis=1) - (unit * unit).sum(axis=(1, 2))
    return _one_minus_mean(similar, sizes)


def _one_minus_mean(similar: np.ndarray, sizes: np.ndarray) -> np.ndarray:
    """1 − (summed similarity over a list's ordered pairs) / (its number of pairs)."""
    pairs = sizes * (sizes - 1)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(pairs > 0, 1.0 - similar / np.maximum(pairs, 1), np.nan)
