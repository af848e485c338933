"""Percentiles, one definition for every report (benchmarks and the online metrics): a
reported percentile is always a value that was observed (numpy's "higher" method), never an
interpolation between two. And the 95% interval of a mean difference, for paired comparisons
(the simulator's arms, ``evaluate``'s model against its baselines)."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np

METHOD: Literal["higher"] = "higher"
Z95 = 1.96


@dataclass(frozen=True)
class Interval:
    diff: float  # mean difference
    low: float | None  # None below two samples: no spread to estimate
    high: float | None
    n: int

    def to_json(self) -> dict[str, Any]:
        return {"diff": self.diff, "low": self.low, "high": self.high, "n": self.n}


def interval(differences: np.ndarray, z: float = Z95) -> Interval:
    """Mean of ``differences`` with the normal-approximation interval
    ``mean ± z · sd / √n``."""
    d = np.asarray(differences, dtype=np.float64)
    n = len(d)
    if n == 0:
        return Interval(0.0, None, None, 0)
    mean = float(d.mean())
    if n < 2:
        return Interval(mean, None, None, n)
    half = z * float(d.std(ddof=1)) / math.sqrt(n)
    return Interval(mean, mean - half, mean + half, n)


def percentile(samples: np.ndarray | Sequence[float], q: float) -> float:
    """The ``q``-th percentile (0–100) of non-empty ``samples``; inf stays inf."""
    return float(np.percentile(samples, q, method=METHOD))


def rounded(value: float, digits: int = 3) -> float | None:
    """``value`` rounded, or None when it is not finite (JSON has no inf)."""
    return round(float(value), digits) if np.isfinite(value) else None


def percentile_name(q: float) -> str:
    """50 → ``p50``, 99.9 → ``p999``: the key a report uses for the ``q``-th percentile."""
    return "p" + f"{q:g}".replace(".", "")


def percentiles(
    samples: np.ndarray | Sequence[float],
    qs: Sequence[float] = (50, 99),
    scale: float = 1.0,
    digits: int = 3,
) -> dict[str, float | None]:
    """``{"p50": …, "p99": …}`` of ``samples`` × ``scale``, rounded; None for a percentile
    that is not finite (a miss counted as infinitely late) and for every one of no samples."""
    values = np.asarray(samples, dtype=np.float64) * scale
    if not values.size:
        return {percentile_name(q): None for q in qs}
    found = np.percentile(values, list(qs), method=METHOD)
    return {percentile_name(q): rounded(v, digits) for q, v in zip(qs, found, strict=True)}
