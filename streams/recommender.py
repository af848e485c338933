"""The seam between streams/ and the model and index: two small Protocols, one composition.

streams/ never imports torch or faiss: the worker's entry point hands in objects that satisfy
:class:`Encoder` (recstream.model's encoder) and :class:`Index` (recstream.index's ItemIndex).
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Sequence
from dataclasses import dataclass
from typing import Protocol

import numpy as np

from recstream.streams.mmr import category_rows, cosine_rows, mmr

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
        allowed: Callable[[str], bool] | None = None,
    ) -> tuple[list[list[str]], list[list[float]]]: ...

    def vectors(self, item_ids: Sequence[str]) -> np.ndarray: ...


class Recommender(Protocol):
    """What the pipeline needs: lists for a batch of requests (empty = no usable history)."""

    @property
    def version(self) -> str: ...

    @property
    def max_len(self) -> int: ...

    def recommend(self, requests: Sequence[Request], k: int) -> list[Scored]: ...


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
        for row, i in enumerate(warm):
            lists[i] = self._diversify(ids[row], scores[row], k)
        return lists

    def _diversify(self, ids: list[str], scores: list[float], k: int) -> Scored:
        if self.mmr_lambda >= 1.0 or len(ids) <= 1:
            return list(zip(ids[:k], scores[:k], strict=True))
        if self.category_of is not None:
            similarity = category_rows([self.category_of(i) for i in ids])
        else:
            similarity = cosine_rows(self.index.vectors(ids))
        order = mmr(scores, similarity, k, self.mmr_lambda)
        return [(ids[j], scores[j]) for j in order]


class NoModel:
    """Serving before the first model exists: every user gets trending items."""

    version = "none"
    max_len = 200

    def recommend(self, requests: Sequence[Request], k: int) -> list[Scored]:
        return [[] for _ in requests]
