"""The counterfactual arms' policies on tiny hand-made catalogues."""

from __future__ import annotations

import numpy as np
import pytest

from recstream.sim.catalogue import Catalogue
from recstream.sim.policies import CategoryTrending, ItemKNN, WorkerStates, oracle_top
from recstream.sim.scenarios import SCENARIOS
from recstream.sim.world import World
from recstream.streams.records import Event
from recstream.streams.state import UserState, apply_event

WEIGHTS = {"click": 1.0, "purchase": 3.0, "skip": 0.0}


def tiny(categories: list[int], names: tuple[str, ...] = ("a", "b")) -> Catalogue:
    """A catalogue whose row n has category ``categories[n]``; nothing else matters here."""
    n = len(categories)
    category = np.array(categories, dtype=np.int64)
    ids = tuple(f"i{r}" for r in range(n))
    return Catalogue(
        ids=ids,
        titles=ids,
        category_names=names,
        category=category,
        log_pop=np.zeros(n),
        vectors=np.zeros((n, 2)),
        centroids=np.zeros((len(names), 2)),
        next_item=np.full(n, -1),
        members=tuple(np.flatnonzero(category == c) for c in range(len(names))),
        row={i: r for r, i in enumerate(ids)},
    )


def seen(n: int, rows: list[int]) -> np.ndarray:
    mask = np.zeros(n, dtype=bool)
    mask[rows] = True
    return mask


def test_category_trending_serves_the_favourite_categorys_top_unseen_items() -> None:
    # Rows 0-2 are category a, 3-5 category b.
    arm = CategoryTrending(tiny([0, 0, 0, 1, 1, 1]), n_users=3, weights=WEIGHTS)
    arm.observe(0, 3, "click")  # user 0: b weighs 1 ...
    arm.observe(0, 0, "purchase")  # ... a weighs 3: a is the favourite
    arm.observe(0, 1, "skip")  # weight 0: counts nowhere
    for item, times in ((1, 5), (2, 2), (4, 10), (0, 4)):
        for _ in range(times):
            arm.observe(1, item, "click")
    assert arm.favourite(0) == 0
    ranking = arm.ranking()
    assert ranking.tolist() == [4, 0, 1, 2, 3]  # row 5: nobody touched it, never listed
    # a's items first, heaviest first, without what user 0 touched (0 and 3); then the
    # global top-up (4). Row 0 is the heaviest of a but user 0 bought it.
    assert arm.top(0, seen(6, [0, 3]), 3, ranking).tolist() == [1, 2, 4]
    assert arm.top(0, seen(6, [0, 3]), 2, ranking).tolist() == [1, 2]
    # No events: no favourite, global trending.
    assert arm.favourite(2) is None
    assert arm.top(2, seen(6, []), 3, ranking).tolist() == [4, 0, 1]


def test_category_trending_breaks_a_tie_of_tastes_as_the_worker_does() -> None:
    arm = CategoryTrending(tiny([0, 1]), n_users=1, weights=WEIGHTS)
    arm.observe(0, 0, "click")
    arm.observe(0, 1, "click")
    assert arm.favourite(0) == 1  # top_category: ties by name, "b" > "a"


def test_item_knn_ranks_the_co_occurring_item_first() -> None:
    knn = ItemKNN(n_items=6, n_users=4)
    for user, items in ((1, [0, 1]), (2, [0, 1]), (3, [0, 2])):
        for item in items:
            knn.observe(user, item, "click")
    knn.observe(0, 0, "click")
    knn.observe(0, 0, "purchase")  # a repeat of the item just touched: collapsed
    knn.refresh()
    # n_0 = 4, n_1 = 2, n_2 = 1: sim(0, 1) = 2 / sqrt(8), sim(0, 2) = 1 / sqrt(4).
    assert knn.sim[0, 1] == pytest.approx(2 / np.sqrt(8))
    assert knn.sim[0, 2] == pytest.approx(0.5)
    assert knn.sim[1, 0] == knn.sim[0, 1] and knn.sim[0, 0] == 0
    popular = np.array([5, 4, 3, 2, 1, 0])
    assert knn.top(0, seen(6, [0]), 4, popular).tolist() == [1, 2, 5, 4]


def test_item_knn_counts_pairs_within_the_window_only() -> None:
    knn = ItemKNN(n_items=8, n_users=1, window=5)
    for item in range(7):
        knn.observe(0, item, "click")
    knn.refresh()
    assert knn.sim[0, 5] > 0 and knn.sim[0, 6] == 0  # 6 steps apart: outside the window


def test_item_knn_weights_the_users_recent_items_more() -> None:
    knn = ItemKNN(n_items=4, n_users=3)
    for user, items in ((0, [0, 1]), (1, [2, 3])):
        for item in items:
            knn.observe(user, item, "click")
    knn.refresh()
    knn.observe(2, 0, "click")
    knn.observe(2, 2, "click")  # the most recent
    scores = knn.scores(2)
    assert scores[3] == pytest.approx(1.0) and scores[1] == pytest.approx(0.8)
    assert knn.top(2, seen(4, [0, 2]), 2, np.arange(4)).tolist() == [3, 1]


def test_item_knn_without_any_co_occurrence_falls_back_to_popularity() -> None:
    knn = ItemKNN(n_items=4, n_users=1)
    knn.refresh()
    assert knn.top(0, seen(4, [2]), 2, np.array([2, 3, 0, 1])).tolist() == [3, 0]


def test_oracle_is_the_argsort_of_the_hidden_click_probability() -> None:
    world = World(SCENARIOS["courses"], seed=2, n_users=4)
    world.record(1, 5, "click")  # seen items count at their (lower) rewatch appeal
    everything = np.arange(len(world.catalogue))
    for u in range(world.n_users):
        p = world.click_prob(u, everything)
        top = oracle_top(world, u, 10)
        assert top.tolist() == np.argsort(-p, kind="stable")[:10].tolist()
        assert p[top].min() >= np.delete(p, top).max()


def test_worker_states_are_what_the_worker_folds_cut_to_the_models_length() -> None:
    catalogue = tiny([0, 1, 0, 1, 0])
    states = WorkerStates(["u0"], catalogue, WEIGHTS)
    worker = UserState()
    for item, kind in ((0, "click"), (1, "click"), (1, "purchase"), (2, "skip"), (3, "click")):
        states.observe(0, item, kind)
        event = Event(user_id="u0", item_id=f"i{item}", type=kind, ts=10**12)
        name = catalogue.category_names[catalogue.category[item]]
        worker = apply_event(worker, event, WEIGHTS, 2, name)
    history, excluded = states.request(0, max_len=2)
    assert tuple(history) == worker.sequence == ("i1", "i3")
    assert excluded == worker.excluded == {"i0", "i1", "i2", "i3"}
    assert states.states[0].categories == worker.categories
