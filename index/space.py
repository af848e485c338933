"""The vector space faiss searches, and the exact scores the index reports.

The model scores an item by the inner product of the user vector and the item row; vectors are
not normalised. ``metric="cosine"`` means: normalise both sides, then inner product.

Some index families rank better in a transformed space. ``"l2-augment"`` is the standard
reduction of maximum inner product search to nearest-neighbour search (Bachrach et al., RecSys
2014): every item row x gets one extra coordinate sqrt(M^2 - |x|^2), where M is the largest row
norm, and every query gets a 0. Then |q - x'|^2 = |q|^2 + M^2 - 2 q.x, so the L2 order is the
inner-product order. Measured on clustered data (docs/index.md) this made IVF both faster and
more accurate per nprobe, and HNSW much worse, so it is used for IVF only.
"""

from __future__ import annotations

from typing import Literal

import numpy as np

from recstream.index.inputs import Metric
from recstream.vectors import unit_rows

Transform = Literal["none", "l2-augment"]


def normalise(rows: np.ndarray) -> np.ndarray:
    return unit_rows(rows).astype(np.float32)


def scoring_rows(embeddings: np.ndarray, metric: Metric) -> np.ndarray:
    """Rows whose inner product with a (prepared) query is the reported score."""
    return normalise(embeddings) if metric == "cosine" else embeddings


def prepare_queries(queries: np.ndarray, metric: Metric) -> np.ndarray:
    return normalise(queries) if metric == "cosine" else queries


def augment_items(rows: np.ndarray) -> np.ndarray:
    """``[n, d]`` -> ``[n, d + 1]``: pad every row to the same norm M (see module doc)."""
    squared = np.einsum("ij,ij->i", rows, rows, dtype=np.float64)
    extra = np.sqrt(np.maximum(squared.max() - squared, 0.0))
    return np.hstack([rows, extra[:, None]]).astype(np.float32)


def augment_queries(queries: np.ndarray) -> np.ndarray:
    zeros = np.zeros((queries.shape[0], 1), dtype=np.float32)
    return np.hstack([queries, zeros])


def to_index_space(queries: np.ndarray, transform: Transform) -> np.ndarray:
    return augment_queries(queries) if transform == "l2-augment" else queries


def items_to_index_space(rows: np.ndarray, transform: Transform) -> np.ndarray:
    return augment_items(rows) if transform == "l2-augment" else rows
