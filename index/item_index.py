"""``ItemIndex``: the object streams/ searches — top-k item ids and scores for user vectors."""

from __future__ import annotations

import itertools
from collections.abc import Collection, Sequence
from pathlib import Path

import numpy as np

from recstream.index.filters import Allowed, RowFilter, row_filters
from recstream.index.info import IndexInfo
from recstream.index.inputs import Metric, check_k, check_matrix
from recstream.index.search import Hits, SearchCore, search_rows, search_rows_padded
from recstream.index.space import prepare_queries
from recstream.vectors import unit_rows


class ItemIndex:
    """Searchable item embeddings. Thread-safe for concurrent searches; never mutated."""

    def __init__(
        self, core: SearchCore, embeddings: np.ndarray, info: IndexInfo, version: str | None = None
    ) -> None:
        self.core = core
        self.info = info
        self._embeddings = embeddings
        self._version = version
        self._unit: np.ndarray | None = None  # see unit_vectors

    @property
    def item_ids(self) -> Sequence[str]:
        """Item ids in embedding-row order."""
        return self.core.item_ids

    @property
    def dim(self) -> int:
        return self.info.d

    @property
    def version(self) -> str | None:
        """Artifact version directory name (``"v3"``) when loaded from disk, else None."""
        return self._version

    @property
    def metric(self) -> Metric:
        return self.info.metric

    def __len__(self) -> int:
        return self.info.n_items

    def __repr__(self) -> str:
        info = self.info
        knob = f", {info.search_param}={info.search_value}" if info.search_param else ""
        return f"ItemIndex({info.factory!r}, {info.metric}, n={info.n_items}, d={info.d}{knob})"

    def search(
        self,
        vectors: np.ndarray,
        k: int,
        exclude: Sequence[Collection[str] | None] | None = None,
        allowed: Allowed | Sequence[Allowed | None] | None = None,
    ) -> tuple[list[list[str]], list[list[float]]]:
        """Top-``k`` items for each user vector, best first.

        ``vectors``: float32 ``[B, d]``. ``exclude``: per row, item ids never to return (or
        None). ``allowed``: None, one set of item ids / predicate ``item_id -> bool`` for the
        whole batch, or a list of those (or None) per row — see ``recstream.index.filters``.
        Returns ``(ids, scores)``, each a list of ``B`` lists; a row has exactly ``k`` entries
        when the catalogue has ``k`` eligible items, else all of them. Scores are the exact
        inner products (cosine similarities for ``metric="cosine"``).
        """
        hits = self._hits(vectors, k, exclude, allowed)
        ids = self.core.item_ids
        return [[ids[r] for r in rows.tolist()] for rows, _ in hits], [s.tolist() for _, s in hits]

    def search_rows(
        self,
        vectors: np.ndarray,
        k: int,
        exclude: Sequence[Collection[str] | None] | None = None,
        allowed: Allowed | Sequence[Allowed | None] | None = None,
    ) -> tuple[np.ndarray, np.ndarray]:
        """:meth:`search` as arrays, for callers that work on rows (ids via :attr:`item_ids`):
        ``rows`` int64 ``[B, k]`` padded with -1 and ``scores`` float32 ``[B, k]`` padded with
        -inf, for rows with fewer than ``k`` eligible items."""
        k = check_k(k)
        queries, filters = self._prepare(vectors, exclude, allowed)
        return search_rows_padded(self.core, queries, k, filters)

    def _hits(
        self,
        vectors: np.ndarray,
        k: int,
        exclude: Sequence[Collection[str] | None] | None,
        allowed: Allowed | Sequence[Allowed | None] | None,
    ) -> list[Hits]:
        k = check_k(k)
        queries, filters = self._prepare(vectors, exclude, allowed)
        return search_rows(self.core, queries, k, filters)

    def _prepare(
        self,
        vectors: np.ndarray,
        exclude: Sequence[Collection[str] | None] | None,
        allowed: Allowed | Sequence[Allowed | None] | None,
    ) -> tuple[np.ndarray, list[RowFilter]]:
        """Checked, metric-prepared queries and one filter per query row."""
        queries = prepare_queries(check_matrix(vectors, "query vectors", self.dim), self.metric)
        return queries, row_filters(exclude, allowed, queries.shape[0], self.core.row_of)

    def unit_vectors(self, rows: np.ndarray) -> np.ndarray:
        """Length-1 embedding rows for an array of rows (-1 → a zero vector), ``[*rows, d]``:
        the similarity features of MMR, normalised once per index rather than per call."""
        if self._unit is None:
            unit = np.asarray(unit_rows(self._embeddings), np.float32)
            self._unit = np.vstack([unit, np.zeros((1, self.dim), np.float32)])  # row -1
        return self._unit[rows]

    def rows(self, item_ids: Sequence[str]) -> np.ndarray:
        """Catalogue rows of these ids, ``-1`` for an id the index does not hold (int64)."""
        found = map(self.core.row_of.get, item_ids, itertools.repeat(-1))  # in C, no generator
        return np.fromiter(found, dtype=np.int64, count=len(item_ids))

    def vectors(self, item_ids: Sequence[str]) -> np.ndarray:
        """Embedding rows ``[len(item_ids), d]`` (as the model produced them) for these ids."""
        if isinstance(item_ids, str):
            raise ValueError("vectors() takes a sequence of item ids, got one string")
        row_of = self.core.row_of
        try:
            # map() in C: a per-id Python generator was most of this call's time.
            rows = np.fromiter(
                map(row_of.__getitem__, item_ids), dtype=np.int64, count=len(item_ids)
            )
        except KeyError:
            missing = [i for i in item_ids if i not in row_of]
            raise ValueError(f"{len(missing)} unknown item ids, e.g. {missing[0]!r}") from None
        return np.asarray(self._embeddings[rows], dtype=np.float32).reshape(len(rows), self.dim)

    @property
    def embeddings(self) -> np.ndarray:
        """All embedding rows ``[n_items, d]``, read-only view."""
        view = self._embeddings.view()
        view.flags.writeable = False
        return view

    @classmethod
    def load(cls, path: Path | str, *, threads: int = 1) -> ItemIndex:
        """Load and verify the index of an artifact version (or the newest under a root)."""
        from recstream.index.artifact import read_parts  # artifact imports this module

        core, embeddings, info, version = read_parts(Path(path), threads)
        return cls(core, embeddings, info, version)

    def save(self, version_dir: Path | str, *, force: bool = False) -> Path:
        """Publish this index into a model version directory; see ``recstream.index.save``."""
        from recstream.index.artifact import write_parts  # artifact imports this module

        parts = (self.core.index, self.info, self.embeddings, self.item_ids)
        return write_parts(*parts, Path(version_dir), force)
