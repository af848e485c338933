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

    def known_counts(self, sequences: Sequence[Sequence[str]]) -> np.ndarray:
        """``[B]`` how many items of each sequence the model knows (0: cannot encode)."""
        ...


class Index(Protocol):
    def search(
        self,
        vectors: np.ndarray,
        k: int,
        exclude: Sequence[Collection[str] | None] | None = None,
    ) -> tuple[list[list[str]], list[list[float]]]: ...

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
        known = self.encoder.known_counts([r.history for r in requests])
        warm = [i for i, n in enumerate(known) if n > 0]
        lists: list[Scored] = [[] for _ in requests]
        if not warm:
            return lists
        vectors = self.encoder.encode([requests[i].history for i in warm])
        pool = max(k, self.candidates)
        exclude = [requests[i].exclude for i in warm]
        ids, scores = self.index.search(vectors, pool, exclude=exclude)
        for i, items in zip(warm, self._diversify(ids, scores, k), strict=True):
            lists[i] = items
        return lists

    def _diversify(self, ids: list[list[str]], scores: list[list[float]], k: int) -> list[Scored]:
        """MMR over every row at once; rows are padded to the longest candidate list."""
        if self.mmr_lambda >= 1.0:
            return [list(zip(r[:k], s[:k], strict=True)) for r, s in zip(ids, scores, strict=True)]
        width = max((len(r) for r in ids), default=0)
        rel = np.full((len(ids), width), -np.inf)
        for b, row in enumerate(scores):
            rel[b, : len(row)] = row
        features = self._features(ids, width)
        orders = mmr_batch(rel, features, k, self.mmr_lambda)
        return [
            # tolist(): indexing with numpy integers costs microseconds per item
            [(r[j], s[j]) for j in order.tolist()]
            for r, s, order in zip(ids, scores, orders, strict=True)
        ]

    def _features(self, ids: list[list[str]], width: int) -> np.ndarray:
        """``[B, width, F]`` similarity features; padding slots are zero."""
        flat = [item for row in ids for item in row]
        if self.category_of is not None:
            table = one_hot([self.category_of(i) for i in flat])
        else:
            table = self.index.vectors(flat)
        out = np.zeros((len(ids), width, table.shape[1]), dtype=np.float32)
        start = 0
        for b, row in enumerate(ids):
            out[b, : len(row)] = table[start : start + len(row)]
            start += len(row)
        return out


class NoModel:
    """Serving before the first model exists: every user gets trending items."""

    version = "none"
    max_len = 200
    catalog_size = None

    def recommend(self, requests: Sequence[Request], k: int) -> list[Scored]:
        return [[] for _ in requests]

    def item_features(self, item_ids: Sequence[str]) -> np.ndarray | None:
        return None
