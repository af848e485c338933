"""Where the learning-rate schedule stands, when a time budget may bind before the epochs do.

The cosine schedule is a function of a position from 0 (start) to 1 (annealed). Without a
budget, or while the steps left are projected to fit in it, the position is the fraction of
the epochs done — a pure function of the step, as before. Once the projection (the measured
time per step times the steps left, plus one validation) overruns the budget, the position
follows the time instead: each step moves it by the step's share of the time left, so it
reaches 1 when the budget runs out however fast the machine is, and every step corrects the
estimate. A slower machine then trains fewer steps but still anneals fully. The position is
never behind the epochs' fraction, so a run that speeds up anneals by its last epoch.
"""

from __future__ import annotations

from dataclasses import dataclass

SETTLE_STEPS = 20  # steps timed before the projection is trusted …
SETTLE_SHARE = 0.02  # … or this share of the budget spent in them, whichever comes first


@dataclass
class BudgetSchedule:
    epochs: int
    budget_s: float  # 0: no budget
    position: float = 0.0
    timed: bool = False  # the budget binds: the position follows the time
    steps_timed: int = 0
    seconds_timed: float = 0.0

    def next_position(
        self, epoch: float, spent_s: float, steps_left: int, reserve_s: float, step_s: float
    ) -> float:
        """The position for the next step. ``epoch``: epochs done (fractional); ``spent_s``:
        training time so far; ``steps_left``: steps to the last epoch's end; ``reserve_s``:
        time kept for the final validation; ``step_s``: the last step's time (0 at the start)."""
        if step_s > 0:
            self.steps_timed += 1
            self.seconds_timed += step_s
        settled = self.steps_timed >= SETTLE_STEPS or (
            self.steps_timed and self.seconds_timed >= SETTLE_SHARE * self.budget_s
        )
        if self.budget_s and not self.timed and settled:
            per_step = self.seconds_timed / self.steps_timed
            self.timed = spent_s + steps_left * per_step + reserve_s > self.budget_s
        if not self.timed:  # a pure function of the step (a resume may add epochs)
            self.position = min(epoch / self.epochs, 1.0)
            return self.position
        left = self.budget_s - reserve_s - (spent_s - step_s)  # before the last step
        share = 1.0 if left <= step_s else step_s / left
        by_time = min(1.0, self.position + (1.0 - self.position) * share)
        # Never behind the epochs: a run whose first steps were slow (a busy machine) and that
        # then speeds up still anneals by its last epoch.
        self.position = max(by_time, min(epoch / self.epochs, 1.0))
        return self.position

    def exhausted(self, spent_s: float, reserve_s: float) -> bool:
        """The budget is spent (keeping the final validation's time)."""
        return bool(self.budget_s) and spent_s + reserve_s >= self.budget_s

    def state(self) -> dict[str, float | int | bool]:
        return {
            "position": self.position,
            "timed": self.timed,
            "steps_timed": self.steps_timed,
            "seconds_timed": self.seconds_timed,
        }
