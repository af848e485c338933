"""A scenario's catalogue: categories of uneven size, Zipf popularity, latent item vectors and,
where the domain has them, chains (series, course tracks) consumed in order."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from recstream.sim.scenarios import Scenario
from recstream.vectors import unit_rows

LATENT_DIM = 16
# How far a series/product line strays from its category, and an item from its series.
GROUP_NOISE = 3.0
ITEM_NOISE = 0.3
# Each later episode/course of a chain keeps this share of the previous one's audience.
CHAIN_ATTRITION = 0.8


@dataclass(frozen=True)
class Catalogue:
    ids: tuple[str, ...]
    titles: tuple[str, ...]
    category_names: tuple[str, ...]
    category: np.ndarray  # [n_items] category index
    log_pop: np.ndarray  # [n_items] standardised log popularity
    vectors: np.ndarray  # [n_items, d] unit latent vectors
    centroids: np.ndarray  # [C, d] unit category centroids
    next_item: np.ndarray  # [n_items] next row of the item's chain, -1 at the end or none
    members: tuple[np.ndarray, ...]  # per category, its rows
    row: dict[str, int]  # item id → row

    def __len__(self) -> int:
        return len(self.ids)

    def records(self) -> list[dict[str, Any]]:
        """The catalogue as ``items`` topic values (docs/contract.md)."""
        return [
            {"item_id": i, "title": t, "category": self.category_names[c], "available": True}
            for i, t, c in zip(self.ids, self.titles, self.category.tolist(), strict=True)
        ]


def build_catalogue(s: Scenario, seed: int, rng: np.random.Generator) -> Catalogue:
    """Items come in groups (a chain, or a single item when the domain has no chains); every
    category gets at least one group and a few categories get most of them."""
    n_cats, size = len(s.categories), max(s.chain_len, 1)
    n_groups = s.n_items // size
    if n_groups < n_cats:
        raise ValueError(f"{s.name}: {s.n_items} items cannot fill {n_cats} categories")
    share = rng.permutation(1.0 / np.arange(1, n_cats + 1) ** 0.7)
    extra = rng.choice(n_cats, size=n_groups - n_cats, p=share / share.sum())
    group_cat = rng.permutation(np.concatenate([np.arange(n_cats), extra]))
    position = np.tile(np.arange(size), n_groups)  # place of each item in its chain
    category = np.repeat(group_cat, size)

    pop = np.repeat((rng.permutation(n_groups) + 1.0) ** -s.zipf, size)
    log_pop = np.log(pop * CHAIN_ATTRITION**position)
    log_pop = (log_pop - log_pop.mean()) / max(float(log_pop.std()), 1e-9)

    centroids = unit_rows(rng.standard_normal((n_cats, LATENT_DIM)))
    noise = rng.standard_normal((n_groups, LATENT_DIM)) / np.sqrt(LATENT_DIM)
    groups = unit_rows(centroids[group_cat] + GROUP_NOISE * noise)
    noise = rng.standard_normal((len(category), LATENT_DIM)) / np.sqrt(LATENT_DIM)
    vectors = unit_rows(np.repeat(groups, size, axis=0) + ITEM_NOISE * noise)

    rows = np.arange(len(category))
    next_item = np.where(position < size - 1, rows + 1, -1) if s.chain_len else rows * 0 - 1
    ids = tuple(f"{s.prefix}{seed}-i{n:05d}" for n in rows)
    return Catalogue(
        ids=ids,
        titles=tuple(_title(s, int(c), int(n), size) for n, c in enumerate(category)),
        category_names=s.categories,
        category=category,
        log_pop=log_pop,
        vectors=vectors.astype(np.float64),
        centroids=centroids,
        next_item=next_item,
        members=tuple(np.flatnonzero(category == c) for c in range(n_cats)),
        row={item: n for n, item in enumerate(ids)},
    )


def _title(s: Scenario, category: int, n: int, size: int) -> str:
    name = s.categories[category].replace("-", " ").title()
    if s.chain_len:
        return f"{name} {s.chain_name} {n // size + 1} · {s.unit} {n % size + 1}"
    return f"{name} {s.unit} {n + 1}"
