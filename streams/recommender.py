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
# History items named as the reasons for one recommended item, from the user's most recent
# distinct items: recent enough for the user to recognise, and a bound on the work per list.
REASONS = 3
REASON_WINDOW = 20


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

    def rows(self, item_ids: Sequence[str]) -> np.ndarray:
        """Catalogue rows of these ids, ``-1`` for unknown ones."""
        ...

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

    def explain(
        self, histories: Sequence[Sequence[str]], lists: Sequence[Sequence[str]]
    ) -> list[list[list[str]]]:
        """Per list, per item: the history items (at most :data:`REASONS`) that drove it most;
        empty where the model cannot say."""
        ...

    def similar(self, item_id: str, n: int, exclude: Collection[str]) -> Scored | None:
        """The ``n`` items nearest ``item_id`` by the model's item embeddings; None when it
        does not know the item."""
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

    def explain(
        self, histories: Sequence[Sequence[str]], lists: Sequence[Sequence[str]]
    ) -> list[list[list[str]]]:
        """The history items nearest each recommended item by the model's item embeddings
        (cosine, positive only), at most :data:`REASONS`, nearest first, among the user's
        :data:`REASON_WINDOW` most recent distinct items. The model scores an
        item by its embedding against the user's vector, which the encoder builds from these
        same embeddings: an item near a history item in that space is there because of it.
        (Attention weights would be closer still; the exported encoder does not give them.)"""
        if not lists:
            return []
        hist = [list(dict.fromkeys(reversed(h)))[:REASON_WINDOW] for h in histories]
        picked, past = self._padded_rows(lists), self._padded_rows(hist)
        unit = self.index.unit_vectors
        sims = unit(picked) @ unit(past).transpose(0, 2, 1)  # [B, k, L]; -1 rows give 0
        order = np.argsort(-sims, axis=2, kind="stable")[:, :, :REASONS]
        kept = np.take_along_axis(sims, order, axis=2) > 0
        # Names by one lookup in a table of every history's ids (None where not kept), not a
        # Python loop per item: this runs for every list the worker makes.
        lengths = np.fromiter(map(len, hist), np.int64, len(hist))
        starts = (np.cumsum(lengths) - lengths)[:, None, None]
        table = np.array([i for h in hist for i in h] + [None], dtype=object)
        names = table[np.where(kept, order + starts, len(table) - 1)].tolist()
        for b, i in zip(*np.nonzero(~kept.all(axis=2)), strict=True):
            names[b][i] = [x for x in names[b][i] if x is not None]
        return [names[b][: len(items)] for b, items in enumerate(lists)]

    def _padded_rows(self, groups: Sequence[Sequence[str]]) -> np.ndarray:
        """``[B, longest]`` catalogue rows of each group's ids, -1 for padding and unknown ids
        (one lookup for all groups)."""
        lengths = np.fromiter(map(len, groups), np.int64, len(groups))
        out = np.full((len(groups), max(1, int(lengths.max(initial=0)))), -1, np.int64)
        flat = [i for group in groups for i in group]
        if flat:
            starts = np.repeat(np.cumsum(lengths) - lengths, lengths)
            out[np.repeat(np.arange(len(groups)), lengths), np.arange(len(flat)) - starts] = (
                self.index.rows(flat)
            )
        return out

    def similar(self, item_id: str, n: int, exclude: Collection[str]) -> Scored | None:
        """By cosine of the model's item embeddings, every item compared (one matrix-vector
        product: a fraction of a millisecond for ten thousand items of d 64)."""
        row = int(self.index.rows([item_id])[0])
        if row < 0:
            return None
        unit = self.index.unit_vectors(np.arange(len(self.index)))
        sims = unit @ unit[row]
        banned = self.index.rows([item_id, *exclude])
        sims[banned[banned >= 0]] = -np.inf
        top = np.argsort(-sims, kind="stable")[:n]
        ids = self.index.item_ids
        return [(ids[r], float(sims[r])) for r in top.tolist() if np.isfinite(sims[r])]

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

    def explain(
        self, histories: Sequence[Sequence[str]], lists: Sequence[Sequence[str]]
    ) -> list[list[list[str]]]:
        return [[[] for _ in items] for items in lists]

    def similar(self, item_id: str, n: int, exclude: Collection[str]) -> Scored | None:
        return None
