"""Vector arithmetic every layer shares (numpy only): one definition of a unit vector."""

from __future__ import annotations

import numpy as np


def unit_rows(vectors: np.ndarray) -> np.ndarray:
    """Rows scaled to length 1 along the last axis; a zero row stays zero (similar to nothing,
    scores 0 under cosine). Keeps a floating dtype."""
    norms = np.linalg.norm(vectors, axis=-1, keepdims=True)
    return vectors / np.where(norms == 0, 1.0, norms)
