"""Seeded, clustered stand-ins for item embeddings and user vectors, for benchmarks and tests.

Items sit around ``n_clusters`` taste centres with a spread as large as the centres
themselves (clusters overlap; nearest-neighbour structure is not trivially separable), and
their norms vary log-normally, as popularity makes learned embedding norms vary. A user vector
mixes two tastes (one strong, one weak) plus noise: near the items, never one of them.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

ITEM_SPREAD = 1.0  # within-cluster noise, relative to the norm of a centre
NORM_SIGMA = 0.25  # log-normal sigma of the item norms
QUERY_NOISE = 1.0
SECOND_TASTE = 0.5


@dataclass(frozen=True)
class Catalogue:
    embeddings: np.ndarray  # [n_items, d] float32
    item_ids: list[str]
    centres: np.ndarray  # [n_clusters, d] float32


def clustered_catalogue(n_items: int, d: int = 64, seed: int = 0) -> Catalogue:
    """``n_items`` item vectors around ~sqrt(n_items) centres of norm ~1."""
    if n_items < 1 or d < 1:
        raise ValueError(f"need n_items >= 1 and d >= 1, got {n_items}, {d}")
    rng = np.random.default_rng(seed)
    n_clusters = max(8, round(math.sqrt(n_items)))
    centres = _gaussian(rng, (n_clusters, d), 1.0 / math.sqrt(d))
    items = centres[rng.integers(0, n_clusters, size=n_items)]
    items += _gaussian(rng, (n_items, d), ITEM_SPREAD / math.sqrt(d))
    items *= rng.lognormal(0.0, NORM_SIGMA, size=(n_items, 1)).astype(np.float32)
    return Catalogue(items, [f"item-{row}" for row in range(n_items)], centres)


def user_queries(catalogue: Catalogue, n: int, seed: int) -> np.ndarray:
    """``[n, d]`` float32 user vectors: strong taste + weak taste + noise."""
    rng = np.random.default_rng(seed)
    centres = catalogue.centres
    strong = centres[rng.integers(0, len(centres), size=n)]
    weak = centres[rng.integers(0, len(centres), size=n)]
    noise = _gaussian(rng, strong.shape, QUERY_NOISE / math.sqrt(centres.shape[1]))
    return (strong + SECOND_TASTE * weak + noise).astype(np.float32)


def _gaussian(rng: np.random.Generator, shape: tuple[int, int], scale: float) -> np.ndarray:
    return rng.standard_normal(shape, dtype=np.float32) * np.float32(scale)
