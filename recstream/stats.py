"""Percentiles, one definition for every report (benchmarks and the online metrics): a
reported percentile is always a value that was observed (numpy's "higher" method), never an
interpolation between two."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Literal

import numpy as np

METHOD: Literal["higher"] = "higher"


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
