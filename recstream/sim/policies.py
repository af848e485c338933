"""The counterfactual arms' policies, each fed every event the simulator publishes through
``observe``: a replica of the worker's no-model policy, item-to-item co-occurrence, the hidden
ceiling, and the worker's user states that the frozen model reads. Pure numpy (and the worker's
own pure state functions); no torch, no Kafka.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np

from recstream.cooccurrence import cosine, occurrences, window_pairs
from recstream.sim.catalogue import Catalogue
from recstream.sim.world import World
from recstream.streams.records import MIN_TS_MS, Event
from recstream.streams.state import UserState, apply_event
from recstream.streams.trending import top_category

TS = MIN_TS_MS  # the time of the events folded into the states: apply_event does not read it


class WorkerStates:
    """Each user's :class:`UserState` as the worker holds it, folded with the worker's own
    ``apply_event`` from every event the simulator publishes.

    The sequence is kept unbounded here because the model's length L is known only once the
    first version exists: ``apply_event`` only ever appends (never twice the same item in a
    row) and cuts the front, so the last L items of the unbounded sequence are exactly the
    sequence the worker keeps with ``max_len`` L."""

    UNBOUNDED = 1_000_000

    def __init__(self, user_ids: Sequence[str], catalogue: Catalogue, weights: Mapping[str, float]):
        self.user_ids = user_ids
        self.catalogue = catalogue
        self.weights = dict(weights)
        self.states = [UserState() for _ in user_ids]

    def observe(self, user: int, item: int, kind: str) -> None:
        cat = self.catalogue
        event = Event.model_validate(
            {"user_id": self.user_ids[user], "item_id": cat.ids[item], "type": kind, "ts": TS}
        )
        category = cat.category_names[cat.category[item]]
        self.states[user] = apply_event(
            self.states[user], event, self.weights, self.UNBOUNDED, category
        )

    def request(self, user: int, max_len: int) -> tuple[tuple[str, ...], frozenset[str]]:
        """What the worker's pipeline asks the model for: Request(sequence, excluded) — the
        user's recent items, oldest first, and everything seen or bought."""
        state = self.states[user]
        return state.sequence[-max_len:], state.excluded


class CategoryTrending:
    """In-process replica of the worker's no-model policy (``Pipeline._fill_cold``): items of
    the user's favourite category — the one with the highest summed event weight over the
    user's events, ties by name as :func:`top_category` breaks them — ranked by summed event
    weight over all users' events, never one the user has seen or bought.

    Differences from the worker, on purpose or negligible:

    - The worker's trending is forward-decayed with a half-life of hours (6 by default); a
      simulation lasts minutes, so the decay factor stays within a few percent of 1 and is
      left out here: only near-ties may be ordered differently (the worker favours the more
      recent item, this replica the lower row, i.e. the lower item id).
    - An item has one category, so the worker's per-category sorted sets are the global
      ranking restricted to the category's items: one weight per item is kept here.
    - When the category has fewer than k unseen items with any weight, the list is topped up
      from global trending (the worker would serve a shorter list). Items nobody touched are
      never listed, as in the worker.
    - Global stats are read once per round, after every user's organic event; the worker
      makes each list after the events before it in its partition.
    """

    def __init__(self, catalogue: Catalogue, n_users: int, weights: Mapping[str, float]):
        self.names = catalogue.category_names
        self.index = {name: c for c, name in enumerate(self.names)}
        self.category = catalogue.category
        self.weights = dict(weights)
        self.user_weight = np.zeros((n_users, len(self.names)))  # [U, C]
        self.item_weight = np.zeros(len(catalogue))  # [n]

    def observe(self, user: int, item: int, kind: str) -> None:
        weight = self.weights.get(kind, 0.0)
        if weight > 0:  # as the worker: weightless events (skip) count nowhere
            self.user_weight[user, self.category[item]] += weight
            self.item_weight[item] += weight

    def ranking(self) -> np.ndarray:
        """Rows with any weight, heaviest first (ties by row)."""
        order = np.argsort(-self.item_weight, kind="stable")
        return order[self.item_weight[order] > 0]

    def favourite(self, user: int) -> int | None:
        taste = {self.names[c]: float(w) for c, w in enumerate(self.user_weight[user]) if w > 0}
        name = top_category(taste)
        return None if name is None else self.index[name]

    def top(self, user: int, seen: np.ndarray, k: int, ranking: np.ndarray) -> np.ndarray:
        """``k`` rows for ``user`` (``seen``: [n] bool) from this round's ``ranking``."""
        fresh = ranking[~seen[ranking]]
        favourite = self.favourite(user)
        if favourite is None:
            return fresh[:k]
        inside = self.category[fresh] == favourite
        return np.concatenate([fresh[inside], fresh[~inside]])[:k]


class ItemKNN:
    """Item-to-item co-occurrence from the same event log the model learns from.

    Each user's event sequence (consecutive repeats of an item collapsed, as the worker's
    state does) counts every pair of items at most ``window`` steps apart, both directions;
    similarity ``c(i, j) / sqrt(n_i n_j)`` with ``n_i`` the occurrences of i. A user's score
    for j sums ``decay^age · sim(i, j)`` over the user's last ``history`` items i (age 0: the
    most recent). Dense float32 ``[n, n]``: catalogues have at most a few thousand items."""

    def __init__(
        self, n_items: int, n_users: int, window: int = 5, history: int = 10, decay: float = 0.8
    ) -> None:
        self.n_items = n_items
        self.window = window
        self.history = history
        self.decay = decay
        self.sequences: list[list[int]] = [[] for _ in range(n_users)]
        self.sim = np.zeros((n_items, n_items), dtype=np.float32)

    def observe(self, user: int, item: int, kind: str) -> None:
        seq = self.sequences[user]
        if not seq or seq[-1] != item:
            seq.append(item)

    def refresh(self) -> None:
        """Rebuild the similarities from every event so far (at the start of a round, when
        the model has just been retrained on the same log)."""
        n = self.n_items
        seqs = [np.asarray(s, dtype=np.int64) for s in self.sequences]
        a, b, counts = window_pairs(seqs, n, self.window)
        sim = np.zeros((n, n), dtype=np.float32)
        sim[a, b] = cosine(a, b, counts, occurrences(seqs, n))
        self.sim = sim

    def scores(self, user: int) -> np.ndarray:
        """[n] the user's score of every row."""
        recent = np.asarray(self.sequences[user][-self.history :], dtype=np.int64)
        if not len(recent):
            return np.zeros(self.n_items, dtype=np.float32)
        weights = self.decay ** np.arange(len(recent))[::-1]
        return (weights.astype(np.float32) @ self.sim[recent]).astype(np.float32)

    def top(self, user: int, seen: np.ndarray, k: int, fallback: np.ndarray) -> np.ndarray:
        """The ``k`` best-scored unseen rows; topped up from ``fallback`` (a popularity
        ranking) when fewer than k have any score."""
        score = self.scores(user)
        order = np.argsort(-score, kind="stable")
        picked = order[(score[order] > 0) & ~seen[order]][:k]
        if len(picked) == k:
            return picked
        rest = fallback[~seen[fallback] & ~np.isin(fallback, picked)]
        return np.concatenate([picked, rest])[:k]


def oracle_top(world: World, user: int, k: int) -> np.ndarray:
    """The ceiling: the ``k`` rows the user is most likely to click now, by the world's hidden
    click probability over the whole catalogue. Sorted this way a cascade list has the highest
    chance of a click (not necessarily of a purchase)."""
    every = np.arange(len(world.catalogue))
    return np.argsort(-world.click_prob(user, every), kind="stable")[:k]
