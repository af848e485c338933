"""The arms: ways of making the list for the same user at the same moment. ``model_retrain``
is the worker's served list; the others are counterfactual — made in-process right after the
round's organic event (the state the worker saw), judged with the same random numbers as the
served list, and never shown: they do not move the world.

:class:`Counterfactuals` makes the counterfactual lists from the policies in
:mod:`recstream.sim.policies`; :class:`Scoreboard` tallies every arm per round and keeps each
user's outcome for the paired differences (:mod:`recstream.sim.paired`). The frozen model is
injected as a :class:`FrozenModel` (the CLI builds it from a model version): no torch here.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from recstream.sim.catalogue import Catalogue
from recstream.sim.metrics import SUMMARY_KEYS, Popularity, Tally, mean_of
from recstream.sim.paired import Outcomes, compare
from recstream.sim.policies import CategoryTrending, ItemKNN, WorkerStates, oracle_top
from recstream.sim.world import Reaction, World

SERVED = "model_retrain"
# Display and JSON order: the served arm, the other learned ones, the heuristics, the ceiling.
ARMS = (SERVED, "model_frozen", "item_knn", "category_trending", "popularity", "oracle")

# A request as the worker makes it: the user's recent items (oldest first) and the exclusions.
FrozenRequest = tuple[Sequence[str], Collection[str]]


@dataclass(frozen=True)
class FrozenModel:
    """A model version run in-process: ``recommend(requests, k)`` → item ids per request,
    best first; an empty list for a user it cannot encode (a cold user)."""

    version: str
    max_len: int
    recommend: Callable[[Sequence[FrozenRequest], int], list[list[str]]]


def rows_of(catalogue: Catalogue, ids: Sequence[Any]) -> np.ndarray:
    """Catalogue rows of item ids; -1 for an id the simulated catalogue lacks."""
    row = catalogue.row
    return np.array([row.get(i, -1) if isinstance(i, str) else -1 for i in ids], np.int64)


class Counterfactuals:
    """Every counterfactual arm's policy, fed every event the simulator publishes."""

    def __init__(
        self,
        world: World,
        user_ids: Sequence[str],
        weights: Mapping[str, float],
        keep_states: bool,
    ) -> None:
        n_items, n_users = len(world.catalogue), world.n_users
        self.world = world
        self.popularity = Popularity(n_items)
        self.trending = CategoryTrending(world.catalogue, n_users, weights)
        self.knn = ItemKNN(n_items, n_users)
        # The worker's user states serve the frozen model only: they cost a pydantic event per
        # event, and must start with the warm-up, before there is a model.
        self.states = WorkerStates(user_ids, world.catalogue, weights) if keep_states else None
        self.frozen: FrozenModel | None = None

    def observe(self, user: int, item: int, kind: str) -> None:
        self.popularity.add(item)
        self.trending.observe(user, item, kind)
        self.knn.observe(user, item, kind)
        if self.states is not None:
            self.states.observe(user, item, kind)

    def refresh(self) -> None:
        """At the start of a round: the model has just been retrained on the log, so is kNN."""
        self.knn.refresh()

    def lists(self, k: int) -> dict[str, list[np.ndarray]]:
        """Every counterfactual arm's list of ``k`` rows per user, now."""
        world = self.world
        users, seen = range(world.n_users), world.seen
        popular = self.popularity.ranking()
        trending = self.trending.ranking()
        lists = {
            "popularity": [Popularity.top(popular, seen[u], k) for u in users],
            "category_trending": [self.trending.top(u, seen[u], k, trending) for u in users],
            "item_knn": [self.knn.top(u, seen[u], k, popular) for u in users],
            "oracle": [oracle_top(world, u, k) for u in users],
        }
        if self.frozen is not None:
            lists["model_frozen"] = self._frozen_lists(k, lists["category_trending"])
        return lists

    def _frozen_lists(self, k: int, cold: list[np.ndarray]) -> list[np.ndarray]:
        """The frozen model's lists for the worker's states; a user it cannot encode gets the
        category_trending list, as the worker fills such users with trending items."""
        if self.frozen is None or self.states is None:
            raise ValueError("the frozen model needs the worker's states from the start")
        frozen, states = self.frozen, self.states
        requests = [states.request(u, frozen.max_len) for u in range(self.world.n_users)]
        made = frozen.recommend(requests, k)
        catalogue = self.world.catalogue
        return [rows_of(catalogue, ids) if ids else cold[u] for u, ids in enumerate(made)]


class Scoreboard:
    """Every arm's per-round summaries and each user's clicks and purchases."""

    def __init__(self, catalogue: Catalogue) -> None:
        self.catalogue = catalogue
        self.summaries: dict[str, list[dict[str, Any]]] = {}
        self.outcomes: dict[str, list[tuple[np.ndarray, np.ndarray]]] = {}

    def add(
        self,
        arm: str,
        lists: list[np.ndarray],
        reactions: list[Reaction],
        served: list[np.ndarray],
        versions: list[str] | None = None,
    ) -> dict[str, Any]:
        """One arm's round: its lists, one per user in user order, and the reactions to them;
        ``served``: the served lists, ``versions``: the model version of each list."""
        tally = Tally(len(self.catalogue))
        category = self.catalogue.category
        for u, (rows, reaction) in enumerate(zip(lists, reactions, strict=True)):
            categories = np.where(rows >= 0, category[rows], -1)
            tally.add(rows, categories, reaction, versions[u] if versions else None)
        clicks = np.array([r.position is not None for r in reactions], dtype=np.int64)
        purchases = np.array([r.bought for r in reactions], dtype=np.int64)
        self.outcomes.setdefault(arm, []).append((clicks, purchases))
        summary = tally.summary()
        if arm != SERVED:  # how often the arm would have shown exactly the served list
            same = [np.array_equal(a, b) for a, b in zip(lists, served, strict=True)]
            summary["same_as_served"] = float(np.mean(same)) if same else 0.0
        self.summaries.setdefault(arm, []).append(summary)
        return summary

    def arms(self, absent: str) -> dict[str, Any]:
        """Per arm its per-round summaries and their mean; an arm not run says ``absent``."""
        out: dict[str, Any] = {}
        for arm in ARMS:
            rounds = self.summaries.get(arm)
            out[arm] = (
                {"rounds": rounds, "mean": mean_of(rounds, SUMMARY_KEYS)}
                if rounds
                else {"absent": absent}
            )
        return out

    def per_user(self) -> dict[str, Outcomes]:
        return {
            arm: Outcomes(np.stack([c for c, _ in rounds]), np.stack([p for _, p in rounds]))
            for arm, rounds in self.outcomes.items()
        }

    def paired(self) -> dict[str, Any]:
        """``model_retrain`` minus every other arm that ran, per user."""
        per_user = self.per_user()
        if SERVED not in per_user:
            return {}
        served = per_user[SERVED]
        return {arm: compare(served, per_user[arm]) for arm in ARMS[1:] if arm in per_user}
