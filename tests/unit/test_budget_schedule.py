"""The learning-rate schedule under a time budget: the epochs' fraction while they fit, the
time's once the budget binds, annealed when it runs out; the warm-up before it."""

from __future__ import annotations

import pytest
import torch

from recstream.model.budget import BudgetSchedule
from recstream.model.config import TrainConfig
from recstream.model.training import _set_learning_rate
from tests.unit.test_model_train import _fit


def run(plan: BudgetSchedule, step_s: float, steps_per_epoch: int) -> list[tuple[float, float]]:
    """(time spent, position) per step until the position reaches 1 or the epochs end."""
    out, spent, last = [], 0.0, 0.0
    total = plan.epochs * steps_per_epoch
    for step in range(total):
        position = plan.next_position(step / steps_per_epoch, spent, total - step, 0.0, last)
        if plan.timed and position >= 1.0:
            break
        out.append((spent, position))
        spent, last = spent + step_s, step_s
    return out


def test_without_a_budget_or_when_it_fits_the_position_is_the_epochs_fraction() -> None:
    for budget in (0.0, 10_000.0):
        plan = BudgetSchedule(epochs=4, budget_s=budget)
        steps = run(plan, step_s=1.0, steps_per_epoch=50)
        assert not plan.timed and len(steps) == 200
        assert [p for _, p in steps[::50]] == [0.0, 0.25, 0.5, 0.75]


def test_a_binding_budget_anneals_the_schedule_when_it_runs_out() -> None:
    plan = BudgetSchedule(epochs=40, budget_s=300.0)  # 40 epochs need 2,000 s at 1 s a step
    steps = run(plan, step_s=1.0, steps_per_epoch=50)
    assert plan.timed
    spent, positions = [s for s, _ in steps], [p for _, p in steps]
    assert positions == sorted(positions)  # never back
    assert spent[-1] == pytest.approx(300.0, abs=1.0)  # ran until the budget, not beyond
    assert positions[3] == pytest.approx(3 / 2000)  # began as the epochs' schedule
    assert positions[-1] > 0.99  # and ended annealed
    middle = positions[len(positions) // 2]
    assert middle == pytest.approx(0.5, abs=0.05)  # linear in time at a steady pace


def test_training_stops_annealed_when_the_budget_binds_and_says_so() -> None:
    config = TrainConfig(
        epochs=10_000, batch_size=16, lr=1e-2, eval_every=5, patience=10**6, threads=1
    )
    trained = _fit(TrainConfig(**{**config.__dict__, "time_budget_s": 2.0}))
    assert trained.stopped.startswith("time budget of 2 s: the schedule annealed over")
    assert trained.epochs_run < 10_000
    assert trained.history[-1]["lr_position"] == pytest.approx(1.0, abs=0.01)
    assert "valid_ndcg@10" in trained.history[-1]  # validated where it stopped


def test_a_run_that_speeds_up_after_the_budget_bound_still_anneals_by_its_last_epoch() -> None:
    # The first 20 steps take 10 s (a busy machine): 40 epochs are projected at far over the
    # budget. Then steps take 0.1 s and the 40 epochs end well inside it.
    plan = BudgetSchedule(epochs=40, budget_s=1_000.0)
    spent, last, steps_per_epoch = 0.0, 0.0, 50
    total = plan.epochs * steps_per_epoch
    for step in range(total):
        position = plan.next_position(step / steps_per_epoch, spent, total - step, 0.0, last)
        last = 10.0 if step < 20 else 0.1
        spent += last
    assert plan.timed and spent < 1_000.0
    assert position == pytest.approx((total - 1) / total)  # the epochs' pace: annealed at the end


@pytest.mark.parametrize("schedule", ["cosine", "constant"])
def test_warmup_climbs_linearly_then_follows_the_schedule(schedule: str) -> None:
    optim = torch.optim.Adam([torch.zeros(1, requires_grad=True)], lr=1.0)
    tc = TrainConfig(lr=2e-3, schedule=schedule, warmup=0.1)
    plain = TrainConfig(lr=2e-3, schedule=schedule)

    def rate(config: TrainConfig, position: float) -> float:
        _set_learning_rate(optim, config, position)
        return float(optim.param_groups[0]["lr"])

    assert rate(tc, 0.0) == 0.0
    assert rate(tc, 0.05) == pytest.approx(0.5 * rate(plain, 0.05))
    for position in (0.1, 0.3, 0.9):
        assert rate(tc, position) == pytest.approx(rate(plain, position))
    with pytest.raises(ValueError, match="warmup"):
        TrainConfig(warmup=1.0)
