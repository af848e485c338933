"""``recstream sim-offline``: a world's organic log measured leave-one-out, as ``evaluate`` does."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from recstream.cli import app
from recstream.contract import DEFAULT_EVENT_WEIGHTS
from recstream.sim.offline import (
    METHODS,
    Baselines,
    OrganicLog,
    generate,
    hit_rate,
    leave_one_out,
    measure,
    ndcg,
    organic_distribution,
    rank,
    write_log,
)
from recstream.sim.scenarios import SCENARIOS
from recstream.sim.world import World
from recstream.streams.trending import top_category

USERS, EVENTS = 30, 12


@pytest.fixture(scope="module")
def log() -> OrganicLog:
    return generate(SCENARIOS["media"], seed=2, n_users=USERS, events=EVENTS)


def user_events(log: OrganicLog, u: int) -> tuple[list[int], list[str]]:
    rows = np.flatnonzero(log.users == u)  # the log is in step order
    return log.items[rows].tolist(), log.kinds[rows].tolist()


def test_the_log_is_the_warm_ups_browsing_and_the_oracles_see_the_state_before_the_target(
    log: OrganicLog,
) -> None:
    world = World(SCENARIOS["media"], seed=2, n_users=USERS)
    expected, every = [], np.arange(len(world.catalogue))
    for step in range(EVENTS):
        if step == EVENTS - 1:  # the state the test target is drawn from
            np.testing.assert_allclose(log.click_prob[7], world.click_prob(7, every))
            np.testing.assert_allclose(log.next_prob[7], organic_distribution(world, 7))
        for u in range(USERS):  # as Simulation._warm_up: users interleaved, recorded at once
            action = world.organic_step(u)
            world.record(action.user, action.item, action.kind)
            expected.append((action.user, action.item, action.kind, step))
    columns = (log.users, log.items, log.kinds, log.steps)
    assert list(zip(*(c.tolist() for c in columns), strict=True)) == expected
    assert set(log.kinds.tolist()) <= {"click", "purchase"}


def test_drift_every_n_steps_changes_only_what_follows() -> None:
    still = generate(SCENARIOS["content"], seed=1, n_users=10, events=6)
    drifting = generate(SCENARIOS["content"], seed=1, n_users=10, events=6, events_per_round=3)
    first = still.steps < 3
    assert np.array_equal(still.items[first], drifting.items[first])
    assert not np.array_equal(still.items, drifting.items)


def test_test_split_holds_out_each_users_last_event(log: OrganicLog) -> None:
    task = leave_one_out(log, "test")
    for u in range(USERS):
        items, kinds = user_events(log, u)
        assert task.targets[u] == items[-1]
        assert task.histories[u].tolist() == items[:-1]  # the validation item is history
        assert task.kinds[u].tolist() == kinds[:-1]


def test_valid_split_holds_out_the_second_to_last_event() -> None:
    small = generate(SCENARIOS["media"], seed=2, n_users=8, events=6, split="valid")
    task = leave_one_out(small, "valid")
    for u in range(8):
        items, _ = user_events(small, u)
        assert task.targets[u] == items[-2]
        assert task.histories[u].tolist() == items[:-2]


def test_rank_leaves_out_the_history_but_never_the_target() -> None:
    order = np.array([4, 1, 3, 0, 2, 5])
    everything = np.ones(6, dtype=bool)
    assert rank(order, np.array([], dtype=np.int64), 0, everything) == 3
    assert rank(order, np.array([4, 3]), 0, everything) == 1  # earlier items are not counted
    assert rank(order, np.array([4, 3, 0]), 0, everything) == 1  # a repeated target ranks
    outside = everything.copy()
    outside[1] = False
    assert rank(order, np.array([4]), 0, outside) == 1  # only rows of the universe count


def test_popularity_ranks_by_counts_over_the_histories(log: OrganicLog) -> None:
    task = leave_one_out(log)
    fitted = Baselines(log, task)
    counts = np.bincount(np.concatenate(task.histories), minlength=len(log.catalogue))
    order = fitted.order("popularity", 0)
    assert sorted(order.tolist()) == list(range(len(log.catalogue)))
    assert np.all(np.diff(counts[order]) <= 0)  # most counted first
    ties = counts[order][:-1] == counts[order][1:]
    assert np.all(order[:-1][ties] < order[1:][ties])  # ties: the lower row first
    assert counts[task.targets].sum() < counts.sum()  # the targets are not counted
    assert fitted.order("popularity", 5) is order  # the same list for everybody


def favourite_of(kinds: list[str], items: list[int], category: np.ndarray, names: tuple) -> int:
    taste: dict[str, float] = {}
    for item, kind in zip(items, kinds, strict=True):
        name = names[category[item]]
        taste[name] = taste.get(name, 0.0) + DEFAULT_EVENT_WEIGHTS[kind]
    return names.index(top_category(taste))


@pytest.mark.parametrize("method", ["category_trending", "category_trending_last10"])
def test_category_trending_puts_the_favourite_category_first(log: OrganicLog, method: str) -> None:
    task = leave_one_out(log)
    fitted = Baselines(log, task)
    cat = log.catalogue
    weight = np.zeros(len(cat))  # summed event weight per item over every history
    for history, kinds in zip(task.histories, task.kinds, strict=True):
        np.add.at(weight, history, [DEFAULT_EVENT_WEIGHTS[k] for k in kinds.tolist()])
    last = 10 if method.endswith("last10") else EVENTS
    for u in range(USERS):
        items, kinds = task.histories[u].tolist()[-last:], task.kinds[u].tolist()[-last:]
        favourite = favourite_of(kinds, items, cat.category, cat.category_names)
        touched = np.flatnonzero((cat.category == favourite) & (weight > 0))
        order = fitted.order(method, u)
        head = order[: len(touched)]
        assert set(head.tolist()) == set(touched.tolist())  # the favourite's trending items
        assert np.all(np.diff(weight[head]) <= 0)  # by trending weight
        rest = order[len(touched) :]
        assert np.all(np.diff(weight[rest][weight[rest] > 0]) <= 0)  # then global trending
        assert sorted(order.tolist()) == list(range(len(cat)))


def test_item_knn_is_the_simulators_arm(log: OrganicLog) -> None:
    task = leave_one_out(log)
    fitted = Baselines(log, task)
    for u in range(USERS):
        seen = np.zeros(len(log.catalogue), dtype=bool)
        seen[task.histories[u]] = True
        order = fitted.order("item_knn", u)
        arm = fitted.knn.top(u, seen, 10, fitted.popular)
        assert order[~seen[order]][:10].tolist() == arm.tolist()


def test_organic_distribution_is_what_organic_step_draws() -> None:
    world = World(SCENARIOS["courses"], seed=4, n_users=6)  # chains, sessions and categories
    for _ in range(5):
        for u in range(6):
            a = world.organic_step(u)
            world.record(a.user, a.item, a.kind)
    for u in (0, 3):
        p = organic_distribution(world, u)
        assert p.sum() == pytest.approx(1.0)
        draws = np.array([world.organic_step(u).item for _ in range(20_000)])  # no record
        freq = np.bincount(draws, minlength=len(p)) / len(draws)
        assert 0.5 * np.abs(freq - p).sum() < 0.05  # total variation


def test_figures_are_rates_with_ratios_to_category_trending(log: OrganicLog) -> None:
    result = measure(log)
    assert list(result["methods"]) == list(METHODS)
    for figures in result["methods"].values():
        assert 0.0 <= figures["ndcg@10"] <= figures["hr@10"] <= 1.0
    assert result["ratio_to_category_trending"]["category_trending"]["hr@10"] in (1.0, None)
    assert result["users"] == USERS
    assert result["events"] == USERS * EVENTS
    assert result["catalogue_size"] == len(log.catalogue)
    assert 0 < result["logged_items"] <= len(log.catalogue)
    assert all(0.0 <= v <= 1.0 for v in result["targets"].values())
    logged = measure(log, rank_over="logged")["methods"]
    for method, figures in result["methods"].items():  # fewer items to rank: never worse
        assert logged[method]["hr@10"] >= figures["hr@10"]
        if not method.startswith("oracle"):  # untouched items come last: no difference
            assert logged[method] == figures


def test_metrics_are_the_models() -> None:
    from recstream.model import metrics

    ranks = np.array([0, 3, 9, 10, 250])
    assert hit_rate(ranks) == metrics.hit_rate(ranks, 10)
    assert ndcg(ranks) == metrics.ndcg(ranks, 10)


def test_the_log_reads_back_with_the_models_split(log: OrganicLog, tmp_path: Path) -> None:
    from recstream.model.data import load_table
    from recstream.model.evaluate import evaluation_task, masked_ndcg_hr, popularity_scores
    from recstream.model.sequences import build_sequences
    from recstream.model.sequences import leave_one_out as model_leave_one_out

    path = tmp_path / "log.csv"
    assert write_log(log, path) == USERS * EVENTS
    assert path.read_text().splitlines()[0] == "user,item,ts,type"
    data = load_table(path)
    assert len(data) == USERS * EVENTS
    assert set(data.types.tolist()) <= {"click", "purchase"}
    assert data.ts.max() == EVENTS - 1

    # The model's own split of the file: the same histories and targets, by id.
    sequences = build_sequences(data, DEFAULT_EVENT_WEIGHTS)
    split = model_leave_one_out(sequences)
    task = leave_one_out(log)
    ids, users = np.array(log.catalogue.ids), log.user_ids()
    assert len(split.eval_rows) == USERS
    for row, user in enumerate(sequences.users):
        u = users.index(user)
        to_ids = [sequences.vocab.item_ids[i - 1] for i in split.train[row]]
        assert to_ids == ids[task.histories[u][:-1]].tolist()
        assert sequences.vocab.item_ids[split.valid_targets[row] - 1] == ids[task.histories[u][-1]]
        assert sequences.vocab.item_ids[split.test_targets[row] - 1] == ids[task.targets[u]]

    # evaluate's most-popular baseline over its vocabulary = popularity ranked over `logged`.
    model_task = evaluation_task(split, "test", len(sequences.vocab))
    model_ndcg, model_hr = masked_ndcg_hr(popularity_scores(model_task), model_task)
    ours = measure(log, rank_over="logged", methods=("popularity",))["methods"]["popularity"]
    assert ours["hr@10"] == pytest.approx(model_hr)
    assert ours["ndcg@10"] == pytest.approx(model_ndcg)


def test_cli_prints_the_json_and_writes_the_log(tmp_path: Path) -> None:
    out = tmp_path / "sub" / "content.csv"
    args = ["sim-offline", "--scenario", "content", "--seed", "1", "--users", "12"]
    result = CliRunner().invoke(app, [*args, "--events", "5", "--write-log", str(out), "--json"])
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    assert {"methods", "ratio_to_category_trending", "users", "events", "catalogue_size"} <= set(
        data
    )
    assert data["log"] == str(out)
    assert len(out.read_text().splitlines()) == 12 * 5 + 1
    table = CliRunner().invoke(app, [*args, "--events", "4"])
    assert table.exit_code == 0, table.output
    assert "category_trending" in table.stdout
    bad = CliRunner().invoke(app, [*args, "--split", "train"])
    assert bad.exit_code == 2
