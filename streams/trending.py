"""Time-decayed popularity counted from the stream itself, for users without usable history.

Forward decay (Cormode et al., ICDE 2009): an event of weight w at time t adds
``w · 2^((t − anchor) / half_life)``. Ranking by these sums equals ranking by exponentially
decayed counts at any moment, and each event is one ZINCRBY — no periodic rescans.

A fixed anchor overflows a double after about 1,000 half-lives (250 days at 6 h), so time is
cut into epochs of ``EPOCH_HALF_LIVES`` half-lives, each with its own sorted set anchored at
the epoch's start: scores stay below 2^64 per unit weight. A read merges the current epoch with
the previous one, whose scores are worth 2^-EPOCH_HALF_LIVES of the current ones.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

EPOCH_HALF_LIVES = 64


def epoch_length_ms(half_life_ms: float) -> int:
    return max(1, int(EPOCH_HALF_LIVES * half_life_ms))


def epoch_of(ts_ms: int, half_life_ms: float) -> int:
    return ts_ms // epoch_length_ms(half_life_ms)


def decayed_increment(weight: float, ts_ms: int, half_life_ms: float) -> tuple[int, float]:
    """The epoch an event at ``ts_ms`` counts in, and its forward-decayed weight there."""
    length = epoch_length_ms(half_life_ms)
    epoch = ts_ms // length
    return epoch, weight * math.pow(2.0, (ts_ms - epoch * length) / half_life_ms)


def merge_epochs(
    current: Sequence[tuple[bytes, float]], previous: Sequence[tuple[bytes, float]]
) -> list[tuple[bytes, float]]:
    """One ranking from the current epoch's top items and the previous epoch's, best first
    (ties by item id, for determinism)."""
    scores: dict[bytes, float] = {}
    for item, score in previous:
        scores[item] = score * math.pow(2.0, -EPOCH_HALF_LIVES)
    for item, score in current:
        scores[item] = scores.get(item, 0.0) + score
    return sorted(scores.items(), key=lambda pair: (-pair[1], pair[0]))


def top_category(categories: dict[str, float]) -> str | None:
    """The category the user weighted most (ties broken by name, for determinism)."""
    if not categories:
        return None
    return max(categories, key=lambda c: (categories[c], c))
