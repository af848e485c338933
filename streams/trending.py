"""Time-decayed popularity counted from the stream itself, for users without usable history.

Forward decay (Cormode et al., ICDE 2009): an event of weight w at time t adds
``w · 2^((t − anchor) / half_life)``. Ranking by these sums equals ranking by exponentially
decayed counts at any moment, and each event is one ZINCRBY — no periodic rescans.
"""

from __future__ import annotations

import math

# 2^1000 is still a finite double; past that (≈1000 half-lives after the anchor) the anchor must
# move forward, which the clamp turns into "recent events stop gaining" rather than a crash.
MAX_EXPONENT = 1000.0


def decayed_increment(weight: float, ts_ms: int, anchor_ms: int, half_life_ms: float) -> float:
    exponent = min((ts_ms - anchor_ms) / half_life_ms, MAX_EXPONENT)
    return weight * math.pow(2.0, exponent)


def top_category(categories: dict[str, float]) -> str | None:
    """The category the user weighted most (ties broken by name, for determinism)."""
    if not categories:
        return None
    return max(categories, key=lambda c: (categories[c], c))
