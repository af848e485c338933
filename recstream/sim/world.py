"""A synthetic domain: a catalogue, users with hidden tastes that drift, their organic browsing
and how they react to a recommended list. Pure numpy, no I/O.

Every draw comes from streams spawned from one ``numpy.random.default_rng(seed)``: the
catalogue, the users, organic browsing, drift and reactions each have their own. Reactions use
common random numbers: once per round, :meth:`World.reaction_draws` draws one uniform vector per
user, and every list shown to that user in that round (the served one and each counterfactual
arm's) is judged with exactly those numbers by :meth:`World.respond`, which draws nothing
itself. Differences between arms are then paired, and judging a counterfactual list never moves
the world or its randomness.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from recstream.sim.catalogue import Catalogue, build_catalogue
from recstream.sim.scenarios import Scenario
from recstream.vectors import unit_rows

# Weights of the hidden appeal (a logit): category taste, item-level latent match, popularity,
# and the session: likeness to the item the user is looking at now (docs/simulator.md,
# "Calibration", argues each against real logs).
TASTE_WEIGHT = 0.5
LATENT_WEIGHT = 2.0
POPULARITY_WEIGHT = 0.5
SESSION_WEIGHT = 8.0
# A purchase depends on appeal less steeply than a click: price, need and budget also decide.
BUY_SLOPE = 0.5
# A category the user does not care for still has some appeal (log of this share × C).
TASTE_FLOOR = 0.05
# Latent noise around the taste mix: users of the same categories still differ item by item.
USER_NOISE = 0.8


@dataclass(frozen=True)
class Action:
    """One organic step: ``user`` touched catalogue row ``item`` (``kind``: click or purchase)."""

    user: int
    item: int
    kind: str


@dataclass(frozen=True)
class Reaction:
    """What a user did with a list: the clicked position (or None) and whether they bought."""

    position: int | None
    bought: bool


def sigmoid(x: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-x))


class World:
    """Catalogue + users. Mutated only by :meth:`record` (what a user did) and
    :meth:`next_round` (time passes, tastes drift)."""

    def __init__(self, scenario: Scenario, seed: int, n_users: int) -> None:
        # Children are numbered: the first four are what they always were, so catalogues,
        # users, browsing and drift do not depend on how reactions are drawn.
        streams = np.random.default_rng(seed).spawn(5)
        catalogue_rng, users_rng, self._organic, self._drift, self._reactions = streams
        self.scenario = scenario
        self.seed = seed
        self.catalogue: Catalogue = build_catalogue(scenario, seed, catalogue_rng)
        n_cats = len(scenario.categories)
        self.taste = users_rng.dirichlet(np.full(n_cats, scenario.taste_alpha), size=n_users)
        self.vectors = self._latent_for(self.taste, users_rng)  # [U, d]
        self.phase = users_rng.random(n_cats)  # when each category is in season
        self.current = np.full(n_users, -1, dtype=np.int64)  # last item of each session
        self.seen = np.zeros((n_users, len(self.catalogue)), dtype=bool)
        self.bought = np.zeros((n_users, len(self.catalogue)), dtype=bool)
        self.t = 0  # the round; seasons turn with it

    @property
    def n_users(self) -> int:
        return len(self.taste)

    def _latent_for(self, taste: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        d = self.catalogue.vectors.shape[1]
        noise = rng.standard_normal((len(taste), d)) / np.sqrt(d)
        return unit_rows(unit_rows(taste @ self.catalogue.centroids) + USER_NOISE * noise)

    def season(self) -> np.ndarray:
        """[C] logit added to each category's appeal at the current round."""
        s = self.scenario
        return s.season_amp * np.cos(2 * np.pi * (self.t / s.season_period - self.phase))

    def affinity(self, user: int, items: np.ndarray) -> np.ndarray:
        """[len(items)] hidden appeal (a logit) of catalogue rows ``items`` to ``user``."""
        cat = self.catalogue.category[items]
        n_cats = self.taste.shape[1]
        taste = TASTE_WEIGHT * np.log(np.maximum(self.taste[user, cat] * n_cats, TASTE_FLOOR))
        latent = LATENT_WEIGHT * (self.catalogue.vectors[items] @ self.vectors[user])
        popularity = POPULARITY_WEIGHT * self.catalogue.log_pop[items]
        appeal = taste + latent + popularity + self.season()[cat]
        current = int(self.current[user])
        if current >= 0:  # what one has just looked at colours what one wants next
            vectors = self.catalogue.vectors
            appeal = appeal + SESSION_WEIGHT * (vectors[items] @ vectors[current])
        return appeal

    def click_prob(self, user: int, items: np.ndarray) -> np.ndarray:
        p = sigmoid(self.scenario.click_bias + self.affinity(user, items))
        return np.where(self.seen[user, items], p * self.scenario.rewatch, p)

    def buy_prob(self, user: int, items: np.ndarray) -> np.ndarray:
        """P(buying once clicked)."""
        p = sigmoid(self.scenario.buy_bias + BUY_SLOPE * self.affinity(user, items))
        return np.where(self.bought[user, items], p * self.scenario.repeat_buy, p)

    def organic_step(self, user: int) -> Action:
        """The user's next organic item: the next of a series/track, more of the same
        category, or a new category by taste. Always five draws, so one user's branch never
        shifts the numbers of the next user."""
        s, cat = self.scenario, self.catalogue
        u = self._organic.random(5)
        cur = int(self.current[user])
        if cur >= 0 and cat.next_item[cur] >= 0 and u[0] < s.follow_chain:
            item = int(cat.next_item[cur])
        else:
            if cur >= 0 and u[1] < s.stay:
                category = int(cat.category[cur])
            else:
                category = pick(self.taste[user] * np.exp(self.season()), u[2])
            members = cat.members[category]
            weights = np.exp(self.affinity(user, members))
            weights = np.where(self.seen[user, members], weights * s.rewatch, weights)
            item = int(members[pick(weights, u[3])])
        buy = s.organic_buy * (s.repeat_buy if self.bought[user, item] else 1.0)
        return Action(user, item, "purchase" if u[4] < buy else "click")

    def reaction_draws(self, k: int) -> np.ndarray:
        """[n_users, 2k+1] uniforms for one round's reactions to lists of at most ``k`` items;
        row ``u`` judges every list shown to user ``u`` this round. Call it once per round."""
        return self._reactions.random((self.n_users, 2 * k + 1))

    def respond(self, user: int, items: np.ndarray, draws: np.ndarray) -> Reaction:
        """Cascade model of a list of catalogue rows (-1: an item the world does not know):
        read from the top, go on with probability ``patience``, click the first appealing
        item (at most one click), then maybe buy it. ``draws``: the user's 2k+1 uniforms of
        the round (patience per position, click per position, the purchase), for a list of
        at most k items. Draws nothing and does not change the world."""
        k = (len(draws) - 1) // 2
        if len(items) > k:
            raise ValueError(f"a list of {len(items)} items needs {2 * len(items) + 1} draws")
        known = items >= 0
        click = np.zeros(len(items))
        click[known] = self.click_prob(user, items[known])
        for p in range(len(items)):
            if p > 0 and draws[p] > self.scenario.patience:
                break
            if draws[k + p] < click[p]:
                bought = bool(draws[2 * k] < self.buy_prob(user, items[p : p + 1])[0])
                return Reaction(p, bought)
        return Reaction(None, False)

    def record(self, user: int, item: int, kind: str) -> None:
        """The user touched ``item``: the session goes on from there."""
        self.seen[user, item] = True
        self.current[user] = item
        if kind == "purchase":
            self.bought[user, item] = True

    def next_round(self) -> None:
        """Time passes: seasons turn and a share ``drift`` of every taste is replaced."""
        self.t += 1
        d = self.scenario.drift
        fresh = self._drift.dirichlet(
            np.full(self.taste.shape[1], self.scenario.taste_alpha), size=self.n_users
        )
        self.taste = (1 - d) * self.taste + d * fresh
        self.vectors = unit_rows((1 - d) * self.vectors + d * self._latent_for(fresh, self._drift))


def pick(weights: np.ndarray, u: float) -> int:
    """Index drawn with probability ∝ ``weights`` by inverting the CDF at uniform ``u``."""
    cdf = np.cumsum(weights)
    return int(min(np.searchsorted(cdf, u * cdf[-1], side="right"), len(cdf) - 1))
