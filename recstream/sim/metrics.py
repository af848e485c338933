"""What a round of lists achieved (CTR, conversion, coverage, diversity), and the popularity
ranking of the ``popularity`` arm (the historical baseline)."""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from typing import Any

import numpy as np

from recstream.diversity import category_diversity
from recstream.sim.world import Reaction

# The keys docs/contract.md fixes for each round and for the baseline.
METRICS = ("ctr", "conversion", "coverage", "diversity")
# Averaged over the rounds for each arm.
SUMMARY_KEYS = (*METRICS, "ctr@k")


class Tally:
    """Counts of one round's lists (or one round's baseline lists) and the user reactions."""

    def __init__(self, n_items: int) -> None:
        self.n_items = n_items
        self.lists = 0
        self.slots = 0  # items shown, all lists together
        self.clicks = 0
        self.purchases = 0
        self.foreign = 0  # items shown that the simulated catalogue does not have
        self.shown: set[int] = set()
        self.diversity: list[float] = []
        self.versions: Counter[str] = Counter()

    def add(
        self,
        items: np.ndarray,
        categories: np.ndarray,
        reaction: Reaction,
        version: str | None = None,
    ) -> None:
        """One list of catalogue rows (-1 for foreign items) with their categories (-1 for
        foreign) and what the user did with it."""
        self.lists += 1
        self.slots += len(items)
        self.clicks += int(reaction.position is not None)
        self.purchases += int(reaction.bought)
        self.foreign += int((items < 0).sum())
        self.shown.update(int(i) for i in items if i >= 0)
        ild = float(category_diversity(categories[None, :], [len(categories)])[0])
        if not np.isnan(ild):  # lists of fewer than two items have none
            self.diversity.append(ild)
        if version is not None:
            self.versions[version] += 1

    def summary(self) -> dict[str, Any]:
        lists = max(self.lists, 1)
        out: dict[str, Any] = {
            "ctr": self.clicks / lists,
            "conversion": self.purchases / lists,
            "coverage": len(self.shown) / self.n_items,
            "diversity": float(np.mean(self.diversity)) if self.diversity else 0.0,
            "ctr@k": self.clicks / max(self.slots, 1),
            "lists": self.lists,
            "clicks": self.clicks,
            "purchases": self.purchases,
            "distinct_items": len(self.shown),
            "foreign_items": self.foreign,
        }
        if self.versions:
            out["model_version"] = self.versions.most_common(1)[0][0]
            out["model_versions"] = dict(self.versions)
        return out


def mean_of(summaries: Sequence[dict[str, Any]], keys: Sequence[str]) -> dict[str, float]:
    """Average of ``keys`` over the rounds' summaries."""
    return {k: float(np.mean([s[k] for s in summaries])) if summaries else 0.0 for k in keys}


class Popularity:
    """Most interacted-with so far, counted from every event the simulator published."""

    def __init__(self, n_items: int) -> None:
        self.counts = np.zeros(n_items, dtype=np.int64)

    def add(self, item: int) -> None:
        self.counts[item] += 1

    def ranking(self) -> np.ndarray:
        """All rows, most popular first (ties by row, so the order is reproducible)."""
        return np.argsort(-self.counts, kind="stable")

    @staticmethod
    def top(ranking: np.ndarray, seen: np.ndarray, k: int) -> np.ndarray:
        """The first ``k`` rows of ``ranking`` the user has not seen (``seen``: [n_items])."""
        return ranking[~seen[ranking]][:k]
