"""The simulation loop against an in-memory bus (the real Kafka run is in tests/integration),
the per-round metrics, the arms beside the served lists and their pairing."""

from __future__ import annotations

import uuid
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import numpy as np
import pytest

from recstream.sim.arms import ARMS, FrozenModel, FrozenRequest
from recstream.sim.bus import NoRecommendation, Position
from recstream.sim.loop import LoopConfig, Simulation, SimulationError
from recstream.sim.metrics import Popularity, Tally
from recstream.sim.scenarios import SCENARIOS
from recstream.sim.world import Reaction, World


class FakeBus:
    """Answers every event at once with the first k catalogue ids the user has not touched
    (the worker excludes those too); ``version`` is what the lists claim to be served by."""

    def __init__(self, item_ids: Sequence[str], k: int = 10, partitions: int = 3) -> None:
        self.item_ids = list(item_ids)
        self.k = k
        self.partitions = partitions
        self.version = "none"
        self.items: list[dict[str, Any]] = []
        self.events: list[dict[str, Any]] = []
        self.lists: dict[Position, dict[str, Any]] = {}
        self.touched: dict[str, set[str]] = {}
        self.next_offset = [0] * partitions
        self.on_probe = lambda: None

    def publish_items(self, records: Sequence[dict[str, Any]]) -> None:
        self.items.extend(records)

    def publish_events(self, events: Sequence[dict[str, Any]]) -> list[Position]:
        positions = []
        for event in events:
            part = sum(event["user_id"].encode()) % self.partitions
            positions.append((part, self.next_offset[part]))
            self.next_offset[part] += 1
            self.events.append(event)
            if event["type"] == "skip":
                self.on_probe()
            seen = self.touched.setdefault(event["user_id"], set())
            seen.add(event["item_id"])
            items = [i for i in self.item_ids if i not in seen][: self.k]
            self.lists[positions[-1]] = {
                "rec_id": uuid.uuid4().hex,
                "user_id": event["user_id"],
                "items": [{"item_id": i, "score": 1.0} for i in items],
                "model_version": self.version,
                "source": {"topic": "events", "partition": part, "offset": positions[-1][1]},
            }
        return positions

    def collect(
        self, wanted: Mapping[Position, str], timeout_s: float
    ) -> dict[Position, dict[str, Any]]:
        for position, user in wanted.items():
            if position not in self.lists:
                raise NoRecommendation(user, timeout_s)
            assert self.lists[position]["user_id"] == user
        return {p: self.lists[p] for p in wanted}


def simulation(**config: Any) -> tuple[Simulation, FakeBus]:
    world = World(SCENARIOS["ecommerce"], seed=11, n_users=25)
    bus = FakeBus(world.catalogue.ids)
    settings = {"rounds": 2, "warmup_events": 3, "catalogue_settle_s": 0, "run_tag": "t"}
    cfg = LoopConfig(**{**settings, **config})
    return Simulation(world, bus, cfg, sleep=lambda s: None), bus


def like_the_fake_bus(item_ids: Sequence[str]) -> Callable[[str], FrozenModel]:
    """A "model" that makes exactly FakeBus's lists (first k ids the user has not touched),
    from the worker states the simulator keeps for the frozen arm."""
    loaded: list[str] = []

    def recommend(requests: Sequence[FrozenRequest], k: int) -> list[list[str]]:
        return [[i for i in item_ids if i not in exclude][:k] for _, exclude in requests]

    def load(version: str) -> FrozenModel:
        loaded.append(version)
        return FrozenModel(version, 50, recommend)

    load.loaded = loaded  # type: ignore[attr-defined]
    return load


def with_frozen(sim: Simulation, bus: FakeBus) -> Simulation:
    """The same simulation with a model version after the warm-up and a frozen arm."""
    bus.version = "v1"
    return Simulation(
        sim.world,
        bus,
        sim.config,
        between_rounds=lambda r: "v1" if r == 0 else None,
        sleep=lambda s: None,
        load_frozen=like_the_fake_bus(sim.world.catalogue.ids),
    )


def test_result_has_the_design_shape_and_counts_the_lists_shown() -> None:
    sim, bus = simulation()
    result = sim.run()
    assert {"scenario", "seed", "rounds", "baseline"} <= set(result)
    assert (result["scenario"], result["seed"]) == ("ecommerce", 11)
    assert set(result["baseline"]) >= {"ctr", "conversion", "coverage", "diversity"}
    assert len(bus.items) == len(sim.world.catalogue)
    for r, round_ in enumerate(result["rounds"], start=1):
        assert round_["round"] == r and round_["model_version"] == "none"
        assert {"ctr", "conversion", "coverage", "diversity"} <= set(round_)
        assert round_["lists"] == 25 and round_["foreign_items"] == 0
        assert round_["ctr"] == round_["clicks"] / 25
        assert 0 <= round_["conversion"] <= round_["ctr"] <= 1
        assert 0 < round_["coverage"] <= 1 and 0 <= round_["diversity"] <= 1


def test_reactions_carry_the_rec_id_of_the_list_they_came_from() -> None:
    sim, bus = simulation()
    result = sim.run()
    lists = {rec["rec_id"]: rec for rec in bus.lists.values()}
    reactions = [e for e in bus.events if "rec_id" in e]
    assert len([e for e in reactions if e["type"] == "click"]) == sum(
        r["clicks"] for r in result["rounds"]
    )
    for event in reactions:
        shown = lists[event["rec_id"]]
        assert shown["user_id"] == event["user_id"]
        assert event["item_id"] in {i["item_id"] for i in shown["items"]}
    assert len({e["event_id"] for e in bus.events}) == len(bus.events)
    assert all(e["context"]["scenario"] == "ecommerce" for e in bus.events)
    assert len(bus.events) == 25 * 3 + 25 * 2 + len(reactions)


def test_the_same_seed_and_answers_give_the_same_numbers() -> None:
    def numbers() -> list:
        result = simulation()[0].run()
        return [{k: v for k, v in r.items() if k != "seconds"} for r in result["rounds"]]

    assert numbers() == numbers()


def test_between_rounds_is_called_after_warm_up_and_each_round_but_the_last() -> None:
    calls: list[int] = []

    def between(round_no: int) -> None:
        calls.append(round_no)

    sim, _ = simulation(rounds=3)
    sim.between_rounds = between
    sim.run()
    assert calls == [0, 1, 2]


def test_the_loop_waits_until_the_worker_serves_the_announced_version() -> None:
    sim, bus = simulation()
    probes = []

    def swap_after_three_probes() -> None:
        probes.append(1)
        if len(probes) == 3:
            bus.version = "v1"

    bus.on_probe = swap_after_three_probes
    sim.between_rounds = lambda r: "v1"
    result = sim.run()
    assert len(probes) >= 3
    assert [r["model_version"] for r in result["rounds"]] == ["v1", "v1"]
    # Probes are skips (weight 0) from a user of their own: no trace in the simulated users.
    probe_events = [e for e in bus.events if e["type"] == "skip"]
    assert {e["user_id"] for e in probe_events} == {sim.probe_user}


def test_a_version_that_never_comes_is_a_clear_error() -> None:
    sim, _ = simulation(version_timeout_s=0.0)
    sim.between_rounds = lambda r: "v9"
    with pytest.raises(SimulationError, match="hot-swap"):
        sim.run()


def test_no_answer_names_the_user_and_the_worker() -> None:
    sim, bus = simulation()
    bus.lists.clear()
    # Events land where no list answers them: a worker that is not there.
    bus.publish_events = lambda events: [(0, 10_000 + n) for n, _ in enumerate(events)]
    with pytest.raises(NoRecommendation, match="is `recstream worker` running"):
        sim.run()


def test_every_arm_is_tallied_per_round_and_the_baseline_is_the_popularity_arm() -> None:
    sim, _ = simulation()
    result = sim.run()
    arms = result["arms"]
    assert list(arms) == list(ARMS)
    assert arms["model_frozen"] == {"absent": sim.frozen_absent}
    assert "--retrain" in sim.frozen_absent
    for name in ("model_retrain", "item_knn", "category_trending", "popularity", "oracle"):
        assert len(arms[name]["rounds"]) == 2
        assert {"ctr", "conversion", "coverage", "diversity", "ctr@k"} <= set(arms[name]["mean"])
        assert all(r["lists"] == 25 for r in arms[name]["rounds"])
    assert result["baseline"] == arms["popularity"]["mean"]
    assert [r["baseline"] for r in result["rounds"]] == arms["popularity"]["rounds"]
    for served, r in zip(arms["model_retrain"]["rounds"], result["rounds"], strict=True):
        assert served["ctr"] == r["ctr"] and served["model_version"] == r["model_version"]
    # The oracle's lists are the best the world allows: it beats every arm on CTR.
    assert arms["oracle"]["mean"]["ctr"] >= max(arms[a]["mean"]["ctr"] for a in ARMS[2:])
    assert result["paired_reference"] == "model_retrain"
    assert set(result["paired"]) == {"item_knn", "category_trending", "popularity", "oracle"}
    for arm, paired in result["paired"].items():
        assert paired["ctr"]["diff"] == pytest.approx(
            arms["model_retrain"]["mean"]["ctr"] - arms[arm]["mean"]["ctr"]
        )
        assert [r["n"] for r in paired["conversion"]["rounds"]] == [25, 25]
        low, high = paired["ctr"]["low"], paired["ctr"]["high"]
        assert low <= paired["ctr"]["diff"] <= high
    assert "per_user" not in result


def test_per_user_outcomes_only_when_asked_and_they_add_up_to_the_tallies() -> None:
    sim, _ = simulation(per_user=True)
    result = sim.run()
    per_user = result["per_user"]
    assert set(per_user) == {a for a in ARMS if a != "model_frozen"}
    for arm, outcomes in per_user.items():
        clicks = np.array(outcomes["clicks"])
        assert clicks.shape == (2, 25)
        assert clicks.sum(axis=1).tolist() == [r["clicks"] for r in result["arms"][arm]["rounds"]]
        assert np.array(outcomes["purchases"]).sum() == sum(
            r["purchases"] for r in result["arms"][arm]["rounds"]
        )


def test_an_arm_showing_the_served_list_gets_the_same_reactions() -> None:
    """Common random numbers: a frozen model that makes the worker's very lists is judged
    with the same draws, so every user does exactly the same with both."""
    sim, bus = simulation(per_user=True)
    sim = with_frozen(sim, bus)
    result = sim.run()
    assert sim.load_frozen.loaded == ["v1"]  # type: ignore[union-attr]
    frozen = result["arms"]["model_frozen"]
    assert [r["same_as_served"] for r in frozen["rounds"]] == [1.0, 1.0]
    assert result["per_user"]["model_frozen"] == result["per_user"]["model_retrain"]
    for metric in ("ctr", "conversion"):
        paired = result["paired"]["model_frozen"][metric]
        assert (paired["diff"], paired["low"], paired["high"]) == (0.0, 0.0, 0.0)


def test_counterfactual_arms_never_move_the_world() -> None:
    """With or without the frozen arm (which also keeps the worker's states), the served
    trajectory, the world and its later draws are the same."""
    plain_sim, plain_bus = simulation()
    plain = plain_sim.run()
    sim, bus = simulation()
    bus.version = plain_bus.version = "v1"
    frozen = with_frozen(sim, bus).run()
    assert "rounds" in frozen["arms"]["model_frozen"]
    simulated = [e["item_id"] for e in bus.events if e["user_id"] != sim.probe_user]
    assert simulated == [e["item_id"] for e in plain_bus.events]
    assert [(r["clicks"], r["purchases"]) for r in frozen["rounds"]] == [
        (r["clicks"], r["purchases"]) for r in plain["rounds"]
    ]
    assert (sim.world.seen == plain_sim.world.seen).all()
    assert np.array_equal(sim.world.reaction_draws(10), plain_sim.world.reaction_draws(10))


def test_no_version_after_the_warm_up_leaves_the_frozen_arm_absent() -> None:
    sim, bus = simulation()
    sim = Simulation(
        sim.world,
        bus,
        sim.config,
        between_rounds=lambda r: None,
        sleep=lambda s: None,
        load_frozen=like_the_fake_bus(sim.world.catalogue.ids),
    )
    result = sim.run()
    assert result["arms"]["model_frozen"] == {
        "absent": "no model version was made after the warm-up"
    }
    assert "model_frozen" not in result["paired"]


def test_a_cold_user_of_the_frozen_model_gets_the_category_trending_list() -> None:
    sim, bus = simulation(rounds=1)

    def load(version: str) -> FrozenModel:
        return FrozenModel(version, 50, lambda requests, k: [[] for _ in requests])

    bus.version = "v1"
    sim = Simulation(
        sim.world, bus, sim.config, lambda r: "v1", sleep=lambda s: None, load_frozen=load
    )
    result = sim.run()
    arms = {a: result["arms"][a]["rounds"][0] for a in ("model_frozen", "category_trending")}
    for summary in arms.values():
        del summary["same_as_served"]
    assert arms["model_frozen"] == arms["category_trending"]


def test_lists_longer_than_k_are_refused() -> None:
    sim, _ = simulation(k=5)  # FakeBus answers with 10 items
    with pytest.raises(SimulationError, match="RECSTREAM_TOP_K"):
        sim.run()


def test_tally_summary() -> None:
    tally = Tally(n_items=100)
    tally.add(np.array([1, 2, -1]), np.array([0, 1, -1]), Reaction(0, True), "v1")
    tally.add(np.array([2, 3]), np.array([1, 1]), Reaction(None, False), "v2")
    tally.add(np.array([4, 5]), np.array([0, 1]), Reaction(1, False), "v2")
    out = tally.summary()
    assert out["lists"] == 3 and out["clicks"] == 2 and out["purchases"] == 1
    assert out["ctr"] == pytest.approx(2 / 3) and out["conversion"] == pytest.approx(1 / 3)
    assert out["ctr@k"] == pytest.approx(2 / 7)
    assert out["coverage"] == pytest.approx(5 / 100) and out["foreign_items"] == 1
    assert out["diversity"] == pytest.approx((1.0 + 0.0 + 1.0) / 3)
    assert out["model_version"] == "v2"


def test_popularity_baseline_excludes_seen_items_and_breaks_ties_by_row() -> None:
    pop = Popularity(6)
    for item in (4, 4, 4, 2, 2, 5):
        pop.add(item)
    ranking = pop.ranking()
    assert list(ranking) == [4, 2, 5, 0, 1, 3]
    seen = np.zeros(6, dtype=bool)
    seen[2] = True
    assert list(Popularity.top(ranking, seen, 3)) == [4, 5, 0]


def test_cli_refuses_an_unknown_scenario() -> None:
    from typer.testing import CliRunner

    from recstream.cli import app

    result = CliRunner().invoke(app, ["simulate", "--scenario", "casino"])
    assert result.exit_code == 2
    assert "casino" in result.output
