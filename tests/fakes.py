"""Tiny, exact stand-ins for the model's encoder and the FAISS index (pure unit tests only)."""

from __future__ import annotations

from collections.abc import Collection, Sequence

import numpy as np


class MeanEncoder:
    """A user is the mean of the embeddings of the items they touched (unknown ids skipped)."""

    def __init__(self, item_ids: Sequence[str], vectors: np.ndarray, version: str = "v1") -> None:
        self.row = {item: i for i, item in enumerate(item_ids)}
        self.table = np.asarray(vectors, dtype=np.float32)
        self.version = version
        self.max_len = 50

    def has_history(self, sequences: Sequence[Sequence[str]]) -> np.ndarray:
        return np.array([any(i in self.row for i in s) for s in sequences], dtype=bool)

    def encode(self, sequences: Sequence[Sequence[str]]) -> np.ndarray:
        out = np.zeros((len(sequences), self.table.shape[1]), dtype=np.float32)
        for b, seq in enumerate(sequences):
            rows = [self.row[i] for i in seq[-self.max_len :] if i in self.row]
            if rows:
                out[b] = self.table[rows].mean(axis=0)
        return out


class ExactIndex:
    """Brute-force inner-product search honouring ``exclude``."""

    def __init__(self, item_ids: Sequence[str], vectors: np.ndarray) -> None:
        self.item_ids = list(item_ids)
        self.table = np.asarray(vectors, dtype=np.float32)
        self.row = {item: i for i, item in enumerate(item_ids)}

    def __len__(self) -> int:
        return len(self.item_ids)

    def search(
        self,
        vectors: np.ndarray,
        k: int,
        exclude: Sequence[Collection[str] | None] | None = None,
    ) -> tuple[list[list[str]], list[list[float]]]:
        scores = vectors @ self.table.T
        ids_out, scores_out = [], []
        for b in range(len(vectors)):
            banned = set(exclude[b] or ()) if exclude else set()
            order = np.argsort(-scores[b], kind="stable")
            picked = [r for r in order if self.item_ids[r] not in banned][:k]
            ids_out.append([self.item_ids[r] for r in picked])
            scores_out.append([float(scores[b, r]) for r in picked])
        return ids_out, scores_out

    def search_rows(
        self,
        vectors: np.ndarray,
        k: int,
        exclude: Sequence[Collection[str] | None] | None = None,
    ) -> tuple[np.ndarray, np.ndarray]:
        ids, scores = self.search(vectors, k, exclude)
        rows = np.full((len(ids), k), -1, dtype=np.int64)
        out = np.full((len(ids), k), -np.inf, dtype=np.float32)
        for b, (row_ids, row_scores) in enumerate(zip(ids, scores, strict=True)):
            rows[b, : len(row_ids)] = [self.row[i] for i in row_ids]
            out[b, : len(row_scores)] = row_scores
        return rows, out

    def rows(self, item_ids: Sequence[str]) -> np.ndarray:
        return np.array([self.row.get(i, -1) for i in item_ids], dtype=np.int64)

    def unit_vectors(self, rows: np.ndarray) -> np.ndarray:
        norms = np.linalg.norm(self.table, axis=1, keepdims=True)
        unit = np.vstack(
            [self.table / np.where(norms == 0, 1, norms), np.zeros_like(self.table[:1])]
        )
        return unit[rows]

    def vectors(self, item_ids: Sequence[str]) -> np.ndarray:
        return self.table[[self.row[i] for i in item_ids]]  # KeyError for an unknown item


def genre_world(n_genres: int = 4, per_genre: int = 10, d: int = 8, seed: int = 0):
    """Items in ``n_genres`` well-separated clusters: ids ``g{genre}-{n}``."""
    rng = np.random.default_rng(seed)
    centres = np.eye(n_genres, d, dtype=np.float32) * 3
    ids, rows = [], []
    for g in range(n_genres):
        for n in range(per_genre):
            ids.append(f"g{g}-{n}")
            rows.append(centres[g] + 0.3 * rng.standard_normal(d).astype(np.float32))
    return ids, np.stack(rows)
