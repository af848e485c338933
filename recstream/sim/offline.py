"""Offline measurement of a simulated world's organic log, to calibrate the worlds against real
data: the same leave-one-out, full-ranking HR@10 / NDCG@10 that ``recstream evaluate`` reports
for the model, for the simulator's heuristics and two oracles.

1. :func:`generate` browses like the simulator's warm-up (``Simulation._warm_up``): ``events``
   organic steps per user, users interleaved, every step recorded in the world at once; with
   ``events_per_round`` > 0 tastes drift (``World.next_round``) every that many steps.
2. :func:`leave_one_out` splits each user's events as ``recstream.model.sequences.leave_one_out``
   and ``recstream.model.evaluate.evaluation_task`` do: test = the last event; its input (the
   history) = every earlier event, the validation item included; ``valid`` = the second-to-last
   event after the events before it.
3. :func:`measure` ranks the catalogue per method and user, and counts the target's rank as
   ``evaluate`` does: the user's history items are left out of the ranking, except the target
   itself (a re-consumed target stays rankable); rank = items placed before the target.

Pure numpy; no Kafka, no Redis, no torch. See docs/simulator.md, "Calibration against real data".
"""

from __future__ import annotations

import csv
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from recstream.contract import DEFAULT_EVENT_WEIGHTS
from recstream.sim.catalogue import Catalogue
from recstream.sim.metrics import Popularity
from recstream.sim.policies import CategoryTrending, ItemKNN
from recstream.sim.scenarios import Scenario
from recstream.sim.world import World

K = 10  # as recstream.model.evaluate.K
RECENT = 10  # category_trending_last10: the favourite category of the last this many events
KNN_WINDOW, KNN_HISTORY, KNN_DECAY = 5, 10, 0.8  # the simulator's item_knn arm
MIN_EVENTS = 3  # one history item, the validation target, the test target
SPLITS = ("test", "valid")
RANK_OVER = ("catalogue", "logged")
METHODS = (
    "popularity",
    "category_trending",
    "category_trending_last10",
    "item_knn",
    "oracle",
    "oracle_next",
)
REFERENCE = "category_trending"


@dataclass(frozen=True)
class OrganicLog:
    """Every organic event in the order it happened (step-major, users interleaved), and the
    oracles' scores of every catalogue row for each user just before the held-out event."""

    scenario: str
    seed: int
    prefix: str  # of the user ids: "<scenario prefix><seed>-u<n>", like the item ids
    catalogue: Catalogue
    users: np.ndarray  # [E] int64, user index
    items: np.ndarray  # [E] int64, catalogue row
    kinds: np.ndarray  # [E] str, click or purchase
    steps: np.ndarray  # [E] int64, the step (a user's event number); written as ts
    split: str  # which held-out event the oracles were snapshotted for
    click_prob: np.ndarray  # [U, n] World.click_prob before the held-out event
    next_prob: np.ndarray  # [U, n] P(the held-out event is each row), the world's own rules

    @property
    def n_users(self) -> int:
        return len(self.click_prob)

    def user_ids(self) -> list[str]:
        return [f"{self.prefix}-u{n:05d}" for n in range(self.n_users)]


@dataclass(frozen=True)
class Task:
    """Leave-one-out: per user the items before the target (oldest first), their event types,
    and the target row."""

    histories: tuple[np.ndarray, ...]  # [U] each [n_u] int64 catalogue rows
    kinds: tuple[np.ndarray, ...]  # [U] each [n_u] str
    targets: np.ndarray  # [U] int64


def held_out(split: str) -> int:
    """How many of a user's last events the split holds out (test: 1, valid: 2)."""
    if split not in SPLITS:
        raise ValueError(f"unknown split {split!r}; expected one of {', '.join(SPLITS)}")
    return 1 if split == "test" else 2


def generate(
    scenario: Scenario,
    seed: int,
    n_users: int,
    events: int,
    *,
    events_per_round: int = 0,
    split: str = "test",
) -> OrganicLog:
    """``events`` organic events per user exactly as the simulator's warm-up makes them (one
    step per user, users interleaved, each recorded at once); ``events_per_round`` > 0 calls
    ``World.next_round`` before every that-many-th step (0: no drift, as the warm-up)."""
    if events < MIN_EVENTS:
        raise ValueError(f"leave-one-out needs at least {MIN_EVENTS} events per user")
    if n_users < 1:
        raise ValueError("at least one user is needed")
    snapshot = events - held_out(split)
    world = World(scenario, seed, n_users)
    n = len(world.catalogue)
    click_prob = np.zeros((n_users, n), dtype=np.float64)
    next_prob = np.zeros((n_users, n), dtype=np.float64)
    every = np.arange(n)
    log: list[tuple[int, int, str, int]] = []
    for step in range(events):
        if events_per_round and step and step % events_per_round == 0:
            world.next_round()
        if step == snapshot:
            for u in range(n_users):
                click_prob[u] = world.click_prob(u, every)
                next_prob[u] = organic_distribution(world, u)
        for u in range(n_users):
            action = world.organic_step(u)
            world.record(action.user, action.item, action.kind)
            log.append((action.user, action.item, action.kind, step))
    users, items, kinds, steps = zip(*log, strict=True)
    return OrganicLog(
        scenario=scenario.name,
        seed=seed,
        prefix=f"{scenario.prefix}{seed}",
        catalogue=world.catalogue,
        users=np.array(users, dtype=np.int64),
        items=np.array(items, dtype=np.int64),
        kinds=np.array(kinds, dtype=str),
        steps=np.array(steps, dtype=np.int64),
        split=split,
        click_prob=click_prob,
        next_prob=next_prob,
    )


def organic_distribution(world: World, user: int) -> np.ndarray:
    """[n] the probability that ``World.organic_step(user)`` returns each row now: the next item
    of the current chain with P(follow_chain) where there is one; else the current category
    with P(stay) (once the user has a current item), else a category drawn ∝ taste · e^season;
    within the category an item ∝ e^affinity, times ``rewatch`` once touched. The best any
    next-item predictor can do with the world's hidden state (the click oracle ignores chains
    and the category stay)."""
    s, cat = world.scenario, world.catalogue
    every = np.arange(len(cat))
    weights = np.exp(world.affinity(user, every))
    weights = np.where(world.seen[user], weights * s.rewatch, weights)
    n_cats = len(cat.members)
    within = weights / np.bincount(cat.category, weights=weights, minlength=n_cats)[cat.category]
    taste = world.taste[user] * np.exp(world.season())
    p_category = taste / taste.sum()
    current = int(world.current[user])
    if current >= 0:
        stay = np.zeros(n_cats)
        stay[cat.category[current]] = 1.0
        p_category = s.stay * stay + (1.0 - s.stay) * p_category
    p = p_category[cat.category] * within
    if current >= 0 and cat.next_item[current] >= 0:
        p = (1.0 - s.follow_chain) * p
        p[cat.next_item[current]] += s.follow_chain
    return p


def leave_one_out(log: OrganicLog, split: str = "test") -> Task:
    """Each user's events by step; ``test``: target = the last, history = all before it;
    ``valid``: target = the second-to-last, history = all before that."""
    cut = held_out(split)
    order = np.lexsort((log.steps, log.users))  # by user, then step
    users, items, kinds = log.users[order], log.items[order], log.kinds[order]
    starts = np.searchsorted(users, np.arange(log.n_users + 1))
    histories, history_kinds, targets = [], [], []
    for u in range(log.n_users):
        seq, seq_kinds = items[starts[u] : starts[u + 1]], kinds[starts[u] : starts[u + 1]]
        if len(seq) < MIN_EVENTS:
            raise ValueError(f"user {u} has {len(seq)} events; leave-one-out needs {MIN_EVENTS}")
        end = len(seq) - cut
        histories.append(seq[:end])
        history_kinds.append(seq_kinds[:end])
        targets.append(int(seq[end]))
    return Task(tuple(histories), tuple(history_kinds), np.array(targets, dtype=np.int64))


class Baselines:
    """Every method fitted on the task's histories (all users'; the targets never), each giving
    a user a full order of the catalogue rows, best first. Ties are broken as the simulator's
    arms break them (the lower row first)."""

    def __init__(
        self, log: OrganicLog, task: Task, weights: Mapping[str, float] = DEFAULT_EVENT_WEIGHTS
    ) -> None:
        missing = sorted({"click", "purchase"} - {k for k, w in weights.items() if w > 0})
        if missing:  # build_sequences would drop them: the model's split would differ
            raise ValueError(f"event types {missing} need a positive weight for sim-offline")
        cat, n_users = log.catalogue, log.n_users
        self.log, self.task, self.n = log, task, len(cat)
        self.popularity = Popularity(self.n)
        self.trending = CategoryTrending(cat, n_users, weights)
        self.recent = CategoryTrending(cat, n_users, weights)  # favourites of the last events
        self.knn = ItemKNN(self.n, n_users, KNN_WINDOW, KNN_HISTORY, KNN_DECAY)
        for u, (history, kinds) in enumerate(zip(task.histories, task.kinds, strict=True)):
            for i, (item, kind) in enumerate(zip(history.tolist(), kinds.tolist(), strict=True)):
                self.popularity.add(item)
                self.trending.observe(u, item, kind)
                self.knn.observe(u, item, kind)
                if i >= len(history) - RECENT:
                    self.recent.observe(u, item, kind)
        self.knn.refresh()
        self.popular = self.popularity.ranking()
        self.trend = self.trending.ranking()
        self.untouched = np.setdiff1d(np.arange(self.n), self.trend)  # never listed by trending
        self.nothing_seen = np.zeros(self.n, dtype=bool)  # the history is left out by rank()

    def order(self, method: str, user: int) -> np.ndarray:
        """[n] every catalogue row for ``user``, best first."""
        if method == "popularity":
            return self.popular
        if method in ("category_trending", "category_trending_last10"):
            policy = self.trending if method == "category_trending" else self.recent
            # The favourite from `policy`'s user weights, the items by the full trending.
            listed = policy.top(user, self.nothing_seen, self.n, self.trend)
            return np.concatenate([listed, self.untouched])
        if method == "item_knn":
            return self.knn.top(user, self.nothing_seen, self.n, self.popular)
        if method == "oracle":
            return np.argsort(-self.log.click_prob[user], kind="stable")
        if method == "oracle_next":
            return np.argsort(-self.log.next_prob[user], kind="stable")
        raise ValueError(f"unknown method {method!r}; expected one of {', '.join(METHODS)}")

    def favourite(self, user: int, recent: bool = False) -> int | None:
        return (self.recent if recent else self.trending).favourite(user)


def rank(order: np.ndarray, history: np.ndarray, target: int, universe: np.ndarray) -> int:
    """0-based rank of ``target`` in ``order`` as ``evaluate`` counts it: the rows placed before
    it, leaving out the user's history items (the target itself is never left out) and rows
    outside ``universe`` ([n] bool)."""
    counted = universe.copy()
    counted[history] = False
    position = int(np.flatnonzero(order == target)[0])
    return int(counted[order[:position]].sum())


def hit_rate(ranks: np.ndarray, k: int = K) -> float:
    """As ``recstream.model.metrics.hit_rate`` (not imported: that package loads torch)."""
    return float(np.mean(ranks < k)) if len(ranks) else 0.0


def ndcg(ranks: np.ndarray, k: int = K) -> float:
    """As ``recstream.model.metrics.ndcg``: 1 / log2(rank + 2) inside the top k."""
    if not len(ranks):
        return 0.0
    return float(np.mean(np.where(ranks < k, 1.0 / np.log2(ranks.astype(np.float64) + 2.0), 0.0)))


def measure(
    log: OrganicLog,
    *,
    rank_over: str = "catalogue",
    weights: Mapping[str, float] = DEFAULT_EVENT_WEIGHTS,
    methods: tuple[str, ...] = METHODS,
) -> dict[str, Any]:
    """Every method's HR@10 and NDCG@10 on ``log``'s leave-one-out split, their ratios to
    category_trending, and what the targets are like (the ``sim-offline --json`` object)."""
    if rank_over not in RANK_OVER:
        raise ValueError(f"unknown --rank-over {rank_over!r}; expected {' or '.join(RANK_OVER)}")
    task = leave_one_out(log, log.split)
    fitted = Baselines(log, task, weights)
    n = len(log.catalogue)
    logged = np.zeros(n, dtype=bool)
    logged[log.items] = True  # the model's vocabulary: every item of the log
    universe = logged if rank_over == "logged" else np.ones(n, dtype=bool)
    users = range(log.n_users)
    results: dict[str, dict[str, float]] = {}
    for method in methods:
        ranks = np.array(
            [
                rank(fitted.order(method, u), task.histories[u], int(task.targets[u]), universe)
                for u in users
            ],
            dtype=np.int64,
        )
        results[method] = {f"hr@{K}": hit_rate(ranks), f"ndcg@{K}": ndcg(ranks)}
    return {
        "scenario": log.scenario,
        "seed": log.seed,
        "split": log.split,
        "rank_over": rank_over,
        "k": K,
        "users": log.n_users,
        "events": len(log.items),
        "events_per_user": len(log.items) // max(log.n_users, 1),
        "catalogue_size": n,
        "logged_items": int(logged.sum()),
        "methods": results,
        "ratio_to_category_trending": ratios(results),
        "targets": describe_targets(log, task, fitted),
    }


def ratios(results: Mapping[str, Mapping[str, float]]) -> dict[str, dict[str, float | None]]:
    """Each method's figures over category_trending's (None where that is 0)."""
    if REFERENCE not in results:
        return {}
    ref = results[REFERENCE]
    return {
        method: {key: (value / ref[key] if ref[key] else None) for key, value in figures.items()}
        for method, figures in results.items()
    }


def describe_targets(log: OrganicLog, task: Task, fitted: Baselines) -> dict[str, float]:
    """Shares of users whose target is a repeat of a history item, in the favourite category
    (whole history / last 10 events), or the next item of the chain of the last history item."""
    cat = log.catalogue
    n_users = max(log.n_users, 1)
    repeat = favourite = recent = chain = 0
    for u, (history, target) in enumerate(zip(task.histories, task.targets.tolist(), strict=True)):
        repeat += bool(np.any(history == target))
        favourite += fitted.favourite(u) == int(cat.category[target])
        recent += fitted.favourite(u, recent=True) == int(cat.category[target])
        chain += len(history) > 0 and int(cat.next_item[history[-1]]) == target
    return {
        "repeat": repeat / n_users,
        "in_favourite_category": favourite / n_users,
        "in_last10_favourite_category": recent / n_users,
        "next_in_chain": chain / n_users,
    }


def write_log(log: OrganicLog, path: Path) -> int:
    """``user,item,ts,type`` rows in the order they happened (ts = the step); rows written.
    ``recstream train --data`` reads it with ``recstream.model.data.load_table``."""
    path.parent.mkdir(parents=True, exist_ok=True)
    user_ids, item_ids = log.user_ids(), log.catalogue.ids
    with path.open("w", newline="") as f:
        writer = csv.writer(f, lineterminator="\n")
        writer.writerow(["user", "item", "ts", "type"])
        for user, item, kind, step in zip(
            log.users.tolist(), log.items.tolist(), log.kinds.tolist(), log.steps.tolist(),
            strict=True,
        ):  # fmt: skip
            writer.writerow([user_ids[user], item_ids[item], step, kind])
    return len(log.items)
