"""The simulated worlds: reproducible, skewed, drifting, and users who prefer what they like."""

from __future__ import annotations

import numpy as np
import pytest

from recstream.sim.scenarios import SCENARIO_NAMES, SCENARIOS
from recstream.sim.world import World
from recstream.streams.records import CatalogItem


def browse(world: World, steps: int) -> list[tuple[int, int, str]]:
    """``steps`` organic events per user, users interleaved, applied to the world."""
    out = []
    for _ in range(steps):
        for u in range(world.n_users):
            a = world.organic_step(u)
            world.record(a.user, a.item, a.kind)
            out.append((a.user, a.item, a.kind))
    return out


@pytest.mark.parametrize("name", SCENARIO_NAMES)
def test_every_scenario_builds_a_valid_catalogue(name: str) -> None:
    world = World(SCENARIOS[name], seed=3, n_users=20)
    cat = world.catalogue
    assert len(set(cat.ids)) == len(cat) == len(cat.titles)
    assert all(len(m) > 0 for m in cat.members)  # every category has items
    assert sum(len(m) for m in cat.members) == len(cat)
    for record in cat.records()[:50]:
        assert CatalogItem.model_validate(record).available
    assert np.allclose(world.taste.sum(axis=1), 1.0)
    assert {kind for _, _, kind in browse(world, 5)} <= {"click", "purchase"}


def test_the_same_seed_gives_the_same_world_and_behaviour() -> None:
    def run(seed: int) -> tuple[tuple[str, ...], list, list]:
        world = World(SCENARIOS["media"], seed=seed, n_users=30)
        events = browse(world, 4)
        draws = world.reaction_draws(10)
        reactions = [world.respond(u, np.arange(10) + u, draws[u]) for u in range(world.n_users)]
        return world.catalogue.titles, events, reactions

    assert run(7) == run(7)
    assert run(7)[1] != run(8)[1]


def test_popularity_is_skewed() -> None:
    world = World(SCENARIOS["ecommerce"], seed=0, n_users=200)
    counts = np.bincount([item for _, item, _ in browse(world, 10)], minlength=len(world.catalogue))
    top = np.sort(counts)[::-1]
    # A uniform world would give the top 5% of items 5% of the events.
    assert top[: len(top) // 20].sum() > 0.2 * top.sum()


def test_drift_changes_tastes_and_content_drifts_faster_than_courses() -> None:
    moved = {}
    for name in ("content", "courses"):
        world = World(SCENARIOS[name], seed=1, n_users=100)
        before, vectors = world.taste.copy(), world.vectors.copy()
        for _ in range(3):
            world.next_round()
        assert np.allclose(world.taste.sum(axis=1), 1.0)
        assert not np.allclose(world.vectors, vectors)
        moved[name] = np.abs(world.taste - before).sum(axis=1).mean()
    assert moved["content"] > 3 * moved["courses"] > 0


def test_users_click_in_taste_items_more_often() -> None:
    world = World(SCENARIOS["ecommerce"], seed=2, n_users=100)
    favourite = world.taste.argmax(axis=1)
    least = world.taste.argmin(axis=1)
    for u in range(world.n_users):
        liked = world.catalogue.members[favourite[u]]
        disliked = world.catalogue.members[least[u]]
        assert world.click_prob(u, liked).mean() > 3 * world.click_prob(u, disliked).mean()
        assert world.buy_prob(u, liked).mean() > world.buy_prob(u, disliked).mean()


def test_a_list_of_the_users_best_items_beats_a_random_list() -> None:
    world = World(SCENARIOS["travel"], seed=4, n_users=200)
    rng = np.random.default_rng(0)
    n = len(world.catalogue)
    best = random = 0
    draws = world.reaction_draws(10)
    for u in range(world.n_users):
        top = np.argsort(-world.affinity(u, np.arange(n)))[:10]
        best += world.respond(u, top, draws[u]).position is not None
        random += world.respond(u, rng.choice(n, 10), draws[u]).position is not None
    assert best > 2 * random


def test_position_bias_the_top_of_a_list_gets_more_clicks() -> None:
    world = World(SCENARIOS["content"], seed=5, n_users=50)
    positions = []
    best = [int(np.argmax(world.affinity(u, np.arange(len(world.catalogue))))) for u in range(50)]
    for _ in range(20):  # rounds; the same item in every slot: only the position differs
        draws = world.reaction_draws(10)
        for u in range(world.n_users):
            reaction = world.respond(u, np.full(10, best[u]), draws[u])
            if reaction.position is not None:
                positions.append(reaction.position)
    counts = np.bincount(positions, minlength=10)
    assert counts[0] > counts[1] > counts[5]


def test_responding_leaves_the_world_alone_and_recording_moves_it() -> None:
    world = World(SCENARIOS["courses"], seed=6, n_users=5)
    seen = world.seen.copy()
    world.respond(0, np.arange(10), world.reaction_draws(10)[0])
    assert (world.seen == seen).all()
    world.record(0, 3, "purchase")
    assert world.seen[0, 3] and world.bought[0, 3] and world.current[0] == 3
    # Bought once, a course is not bought again.
    assert world.buy_prob(0, np.array([3]))[0] == 0.0


@pytest.mark.parametrize(("name", "low", "high"), [("courses", 0.5, 1.0), ("ecommerce", 0, 0)])
def test_sessions_follow_chains_where_the_domain_has_them(
    name: str, low: float, high: float
) -> None:
    world = World(SCENARIOS[name], seed=0, n_users=50)
    events = browse(world, 8)
    last: dict[int, int] = {}
    follows = steps = 0
    for user, item, _ in events:
        if user in last:
            steps += 1
            follows += int(world.catalogue.next_item[last[user]] == item)
        last[user] = item
    assert low <= follows / steps <= high


def test_sessions_stay_in_a_category() -> None:
    world = World(SCENARIOS["ecommerce"], seed=0, n_users=50)
    events = browse(world, 8)
    cat = world.catalogue.category
    last: dict[int, int] = {}
    same = steps = 0
    for user, item, _ in events:
        if user in last:
            steps += 1
            same += int(cat[last[user]] == cat[item])
        last[user] = item
    assert same / steps > 0.5  # 20 categories: by chance it would be far less


def test_travel_has_seasons_and_ecommerce_has_none() -> None:
    travel = World(SCENARIOS["travel"], seed=0, n_users=5)
    winter = travel.season()
    travel.t = int(SCENARIOS["travel"].season_period // 2)  # half a cycle later
    assert np.allclose(travel.season(), -winter)
    assert np.abs(winter).max() > 0.5
    assert not World(SCENARIOS["ecommerce"], seed=0, n_users=5).season().any()


def test_responding_draws_nothing_later_draws_do_not_depend_on_how_many_lists_were_judged() -> None:
    busy, idle = (World(SCENARIOS["media"], seed=9, n_users=8) for _ in range(2))
    draws = busy.reaction_draws(10)
    assert np.array_equal(draws, idle.reaction_draws(10))
    for u in range(busy.n_users):  # many counterfactual lists judged in one world only
        for shift in range(5):
            busy.respond(u, np.arange(10) + shift, draws[u])
    assert np.array_equal(busy.reaction_draws(10), idle.reaction_draws(10))
    assert (busy.seen == idle.seen).all() and (busy.bought == idle.bought).all()


def test_the_same_list_with_the_same_draws_gets_the_same_reaction() -> None:
    world = World(SCENARIOS["content"], seed=3, n_users=40)
    draws = world.reaction_draws(10)
    for u in range(world.n_users):
        top = np.argsort(-world.click_prob(u, np.arange(len(world.catalogue))))[:10]
        assert world.respond(u, top, draws[u]) == world.respond(u, top.copy(), draws[u])
    assert sum(world.respond(u, top, draws[u]).position is not None for u in range(40)) > 0


def test_a_shorter_list_reads_the_same_draws_per_position() -> None:
    """Position p of any list uses the same patience and click numbers: a list that is a
    prefix of another gets the same click when that click falls within the prefix."""
    world = World(SCENARIOS["content"], seed=4, n_users=60)
    draws = world.reaction_draws(10)
    for u in range(world.n_users):
        full = np.argsort(-world.click_prob(u, np.arange(len(world.catalogue))))[:10]
        long, short = world.respond(u, full, draws[u]), world.respond(u, full[:4], draws[u])
        if long.position is not None and long.position < 4:
            assert short == long
        else:
            assert short.position is None
    with pytest.raises(ValueError, match="draws"):
        world.respond(0, np.arange(11), draws[0])


def test_the_world_draws_from_numbered_child_streams_of_the_seed() -> None:
    """Catalogue, users, browsing, drift and reactions: children 0-4 (here 1 and 4)."""
    world = World(SCENARIOS["ecommerce"], seed=5, n_users=3)
    streams = np.random.default_rng(5).spawn(5)
    alpha = np.full(len(world.scenario.categories), world.scenario.taste_alpha)
    assert np.allclose(world.taste, streams[1].dirichlet(alpha, size=3))
    assert np.array_equal(world.reaction_draws(2), streams[4].random((3, 5)))


def test_the_item_being_viewed_colours_the_appeal_of_its_neighbours() -> None:
    from recstream.sim.world import SESSION_WEIGHT, sigmoid

    world = World(SCENARIOS["ecommerce"], seed=5, n_users=3)
    every = np.arange(len(world.catalogue))
    before = world.affinity(0, every)
    world.record(0, 17, "click")  # the session goes on from item 17
    after = world.affinity(0, every)
    vectors = world.catalogue.vectors
    assert np.allclose(after - before, SESSION_WEIGHT * (vectors @ vectors[17]))
    # ... so its nearest neighbours become likelier next steps than they were
    near = np.argsort(-(vectors @ vectors[17]))[1:6]
    assert np.all(world.click_prob(0, near) > sigmoid(world.scenario.click_bias + before[near]))
