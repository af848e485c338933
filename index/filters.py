"""Per-query filters: items a user must not see (``exclude``) and items that may be shown
(``allowed``), turned into row numbers and boolean masks over candidate rows.

``exclude`` is one collection of item ids per query row (history, purchases), or None.
``allowed`` is None, one filter for the whole batch, or a list with one filter (or None) per
query row. A filter is either a set of item ids (``set``, ``frozenset``, ``dict.keys()``) or a
predicate ``item_id -> bool``. Sets are preferred: when a filter is so selective that the
index has to fall back to an exact scan, a set costs O(len(set)) and a predicate O(n_items)
Python calls. Ids the catalogue does not know are ignored in both.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Mapping, Sequence
from collections.abc import Set as AbstractSet
from dataclasses import dataclass
from itertools import repeat

import numpy as np

Allowed = AbstractSet[str] | Callable[[str], bool]

_NO_ROWS = np.zeros(0, dtype=np.int64)


@dataclass(frozen=True)
class RowFilter:
    """One query row's filter: excluded catalogue rows (any order, may repeat) and an
    allow-filter."""

    excluded: np.ndarray
    allowed: Allowed | None

    def test(self, item_id: str) -> bool:
        if self.allowed is None:
            return True
        if isinstance(self.allowed, AbstractSet):
            return item_id in self.allowed
        return bool(self.allowed(item_id))


def row_filters(
    exclude: Sequence[Collection[str] | None] | None,
    allowed: Allowed | Sequence[Allowed | None] | None,
    batch: int,
    row_of: Mapping[str, int],
) -> list[RowFilter]:
    """Validate ``exclude``/``allowed`` for a batch of ``batch`` queries (see module doc)."""
    excluded = _excluded_rows(exclude, batch, row_of)
    return [
        RowFilter(e, a) for e, a in zip(excluded, _per_row_allowed(allowed, batch), strict=True)
    ]


def _excluded_rows(
    exclude: Sequence[Collection[str] | None] | None, batch: int, row_of: Mapping[str, int]
) -> list[np.ndarray]:
    if exclude is None:
        return [_NO_ROWS] * batch
    if isinstance(exclude, (str, AbstractSet)) or not isinstance(exclude, Sequence):
        raise ValueError("exclude must be a list with one collection of item ids per query row")
    if len(exclude) != batch:
        raise ValueError(f"exclude has {len(exclude)} rows for {batch} query vectors")
    return [_rows_of(items, i, row_of) for i, items in enumerate(exclude)]


def _rows_of(items: Collection[str] | None, i: int, row_of: Mapping[str, int]) -> np.ndarray:
    if items is None:
        return _NO_ROWS
    if isinstance(items, str) or not isinstance(items, Collection):
        raise ValueError(f"exclude[{i}] must be a collection of item ids, got {type(items)}")
    try:  # one lookup per item in C, -1 for unknown ids (ids that are not strings included)
        rows = np.fromiter(map(row_of.get, items, repeat(-1)), np.int64, len(items))
    except TypeError:  # an unhashable "id"
        rows = np.array([row_of.get(i, -1) for i in items if isinstance(i, str)], np.int64)
    # Neither sorted nor deduplicated: masking needs neither, and sorting cost more than
    # the mask (a long history repeats an item only when it was also bought).
    return rows[rows >= 0]


def _is_filter(value: object) -> bool:
    return isinstance(value, AbstractSet) or callable(value)


def _per_row_allowed(
    allowed: Allowed | Sequence[Allowed | None] | None, batch: int
) -> list[Allowed | None]:
    if allowed is None or _is_filter(allowed):
        return [allowed] * batch  # type: ignore[list-item]
    if isinstance(allowed, str) or not isinstance(allowed, Sequence):
        raise ValueError("allowed must be a set of item ids, a predicate, or one per query row")
    if len(allowed) != batch:
        raise ValueError(f"allowed has {len(allowed)} rows for {batch} query vectors")
    for i, one in enumerate(allowed):
        if one is not None and not _is_filter(one):
            raise ValueError(f"allowed[{i}] must be a set of item ids or a predicate, got {one!r}")
    return list(allowed)


def keep_mask(
    labels: np.ndarray, filters: Sequence[RowFilter], item_ids: Sequence[str]
) -> np.ndarray:
    """``[P, F]`` candidate rows -> bool ``[P, F]``: real, not excluded, allowed."""
    keep = labels >= 0
    n = len(item_ids)
    if any(f.excluded.size for f in filters):
        # One vectorised membership test for the whole batch: key = query * n + item row.
        keys = np.arange(len(filters), dtype=np.int64)[:, None] * n + labels
        banned = np.concatenate([i * n + f.excluded for i, f in enumerate(filters)])
        keep &= ~np.isin(keys, banned)
    for i, f in enumerate(filters):
        if f.allowed is not None:
            candidates = np.flatnonzero(keep[i])
            ok = [f.test(item_ids[r]) for r in labels[i, candidates]]
            keep[i, candidates[~np.asarray(ok, dtype=bool)]] = False
    return keep


def eligible_mask(f: RowFilter, item_ids: Sequence[str], row_of: Mapping[str, int]) -> np.ndarray:
    """bool ``[n_items]``: every catalogue row this query may return."""
    n = len(item_ids)
    if f.allowed is None:
        mask = np.ones(n, dtype=bool)
    elif isinstance(f.allowed, AbstractSet) and len(f.allowed) < n:
        mask = np.zeros(n, dtype=bool)
        mask[[row_of[i] for i in f.allowed if isinstance(i, str) and i in row_of]] = True
    else:
        mask = np.fromiter((f.test(i) for i in item_ids), dtype=bool, count=n)
    mask[f.excluded] = False
    return mask
