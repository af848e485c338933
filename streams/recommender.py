"""The seam between streams/ and the model and index: two small Protocols, one composition.

streams/ never imports torch or faiss: the worker's entry point hands in objects that satisfy
:class:`Encoder` (recstream.model's encoder) and :class:`Index` (recstream.index's ItemIndex).
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Sequence
from dataclasses import dataclass
from typing import Protocol

import numpy as np

from recstream.streams.mmr import mmr_batch, one_hot

Scored = list[tuple[str, float]]


class Encoder(Protocol):
    @property
    def version(self) -> str: ...

    @property
    def max_len(self) -> int: ...

    def encode(self, sequences: Sequence[Sequence[str]]) -> np.ndarray:
        """``B`` item-id sequences (oldest first) → float32 user vectors ``[B, d]``."""
        ...

    def has_history(self, sequences: Sequence[Sequence[str]]) -> np.ndarray:
        """``[B]`` bool: whether the model knows any item of each sequence (else it cannot
        encode it)."""
        ...


class Index(Protocol):
    @property
    def item_ids(self) -> Sequence[str]: ...

    def search_rows(
        self,
        vectors: np.ndarray,
        k: int,
        exclude: Sequence[Collection[str] | None] | None = None,
    ) -> tuple[np.ndarray, np.ndarray]:
        """Top-k catalogue rows ``[B, k]`` (-1 padding) and scores (-inf padding)."""
        ...

    def unit_vectors(self, rows: np.ndarray) -> np.ndarray: ...

    def vectors(self, item_ids: Sequence[str]) -> np.ndarray: ...

    def __len__(self) -> int: ...


class Recommender(Protocol):
    """What the pipeline needs: lists for a batch of requests (empty = no usable history),
    and, for the online metrics, the catalogue size and item features (None: unknown)."""

    @property
    def version(self) -> str: ...

    @property
    def max_len(self) -> int: ...

    def recommend(self, requests: Sequence[Request], k: int) -> list[Scored]: ...

    @property
    def catalog_size(self) -> int | None:
        """How many items it can recommend: the denominator of catalogue coverage."""
        ...

    def item_features(self, item_ids: Sequence[str]) -> np.ndarray | None:
        """``[N, F]`` vectors for intra-list diversity, or None when it has none for them."""
        ...


@dataclass(frozen=True)
class Request:
    """One list to make: the user's recent items and what must not be shown (seen, bought,
    unavailable)."""

    history: Sequence[str]
    exclude: Collection[str]


class ModelRecommender:
    """Encode users → over-fetch candidates from the index → MMR re-rank → top k."""

    def __init__(
        self,
        encoder: Encoder,
        index: Index,
        candidates: int = 100,
        mmr_lambda: float = 0.7,
        category_of: Callable[[str], str | None] | None = None,
    ) -> None:
        self.encoder = encoder
        self.index = index
        self.candidates = candidates
        self.mmr_lambda = mmr_lambda
        self.category_of = category_of

    @property
    def version(self) -> str:
        return self.encoder.version

    @property
    def max_len(self) -> int:
        return self.encoder.max_len

    def with_categories(self, category_of: Callable[[str], str | None]) -> ModelRecommender:
        """The same model and index, diversifying by category (MMR's one-hot similarity)."""
        return ModelRecommender(
            self.encoder, self.index, self.candidates, self.mmr_lambda, category_of
        )

    @property
    def catalog_size(self) -> int:
        return len(self.index)

    def item_features(self, item_ids: Sequence[str]) -> np.ndarray | None:
        try:
            return self.index.vectors(item_ids)
        except (KeyError, ValueError):  # an item the model does not know (trending)
            return None

    def recommend(self, requests: Sequence[Request], k: int) -> list[Scored]:
        """One list per request, best first; an empty list for a request without usable
        history (the caller falls back to trending items)."""
        known = self.encoder.has_history([r.history for r in requests])
        warm = np.flatnonzero(known).tolist()
        lists: list[Scored] = [[] for _ in requests]
        if not warm:
            return lists
        vectors = self.encoder.encode([requests[i].history for i in warm])
        pool = max(k, self.candidates)
        exclude = [requests[i].exclude for i in warm]
        # Rows, not ids, until the final k: string ids for every candidate cost more than MMR.
        rows, scores = self.index.search_rows(vectors, pool, exclude=exclude)
        orders = self._diversify(rows, scores, k)
        ids = self.index.item_ids
        for i, row, score, order in zip(warm, rows, scores, orders, strict=True):
            picked = [ids[r] for r in row[order].tolist()]
            lists[i] = list(zip(picked, score[order].tolist(), strict=True))
        return lists

    def _diversify(self, rows: np.ndarray, scores: np.ndarray, k: int) -> list[np.ndarray]:
        """Per user, the candidate positions to keep, best first (MMR over every row at once)."""
        if self.mmr_lambda >= 1.0:
            counts = np.minimum(np.isfinite(scores).sum(axis=1), k)
            return [np.arange(n) for n in counts.tolist()]
        if self.category_of is None:
            features = self.index.unit_vectors(rows)  # [B, pool, d]; padding rows are zero
            return mmr_batch(scores, features, k, self.mmr_lambda, normalised=True)
        ids = self.index.item_ids
        categories = [self.category_of(ids[r]) if r >= 0 else None for r in rows.ravel().tolist()]
        return mmr_batch(scores, one_hot(categories).reshape(*rows.shape, -1), k, self.mmr_lambda)


class NoModel:
    """Serving before the first model exists: every user gets trending items."""

    version = "none"
    max_len = 200
    catalog_size = None

    def recommend(self, requests: Sequence[Request], k: int) -> list[Scored]:
        return [[] for _ in requests]

    def item_features(self, item_ids: Sequence[str]) -> np.ndarray | None:
        return None
