"""Paired differences between two arms shown to the same users, with 95% intervals.

Every arm's list for user u in round r is judged with the same random numbers (common random
numbers, see :mod:`recstream.sim.world`), so the per-user difference of two arms is a paired
sample: most of the noise of the reactions cancels. The unit is a user. Per round, the sample
is each user's difference in that round; over all rounds, each user's differences are first
averaged over the rounds (a user's rounds are not independent of each other). The interval is
the normal approximation of :func:`recstream.stats.interval`. Pure numpy, no I/O.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from recstream.stats import Z95, Interval, interval

__all__ = ["METRICS", "Z95", "Interval", "Outcomes", "compare", "interval", "pool"]

# Metric name in the results → the per-user outcome it is the mean of.
METRICS = {"ctr": "clicks", "conversion": "purchases"}


@dataclass(frozen=True)
class Outcomes:
    """What one arm's lists got from each user: ``clicks`` and ``purchases`` per list,
    ``[rounds, users]`` (0 or 1: a user clicks and buys at most once per list)."""

    clicks: np.ndarray
    purchases: np.ndarray

    def to_json(self) -> dict[str, list[list[int]]]:
        return {"clicks": self.clicks.tolist(), "purchases": self.purchases.tolist()}

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Outcomes:
        clicks = np.asarray(data["clicks"], dtype=np.int64)
        purchases = np.asarray(data["purchases"], dtype=np.int64)
        if clicks.ndim != 2 or purchases.shape != clicks.shape:
            raise ValueError("per-user outcomes must be [rounds][users] lists of equal shape")
        return cls(clicks, purchases)


def compare(a: Outcomes, b: Outcomes) -> dict[str, Any]:
    """``a − b`` for one run: per metric, the overall interval and one per round."""
    return pool([(a, b)])


def pool(runs: Sequence[tuple[Outcomes, Outcomes]]) -> dict[str, Any]:
    """``a − b`` over several runs (say, seeds of one scenario) as one sample of users: each
    run's users are distinct units. Overall: every user's mean difference over the rounds of
    its run. Round r: round r's differences of every run that has that round.

    ``{"ctr": {"diff", "low", "high", "n", "rounds": [{"round", "diff", ...}]},
    "conversion": {...}}``"""
    out: dict[str, Any] = {}
    for metric, field in METRICS.items():
        diffs = [_difference(getattr(a, field), getattr(b, field)) for a, b in runs]
        per_user = [d.mean(axis=0) for d in diffs if len(d)]
        overall = interval(np.concatenate(per_user) if per_user else np.zeros(0))
        n_rounds = max((len(d) for d in diffs), default=0)
        rounds = [_round(r, [d[r] for d in diffs if len(d) > r]) for r in range(n_rounds)]
        out[metric] = {**overall.to_json(), "rounds": rounds}
    return out


def _round(r: int, differences: list[np.ndarray]) -> dict[str, Any]:
    return {"round": r + 1, **interval(np.concatenate(differences)).to_json()}


def _difference(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    if a.shape != b.shape:
        raise ValueError(f"arms disagree on rounds × users: {a.shape} and {b.shape}")
    return a.astype(np.float64) - b.astype(np.float64)
