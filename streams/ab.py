"""A/B tests between model versions (pure): which arm a user is in, and what the counters say.

``RECSTREAM_AB`` names the arms and their shares, e.g. ``v7:50,v8:50``; an arm named ``latest``
follows the announced versions (the retraining loop) while the others stay pinned. A user's
arm is a stable hash of the split and the user id: the same on every worker and after every
restart, and reshuffled when the split changes (a new experiment).
"""

from __future__ import annotations

import hashlib
import math
from dataclasses import dataclass
from typing import Any

LATEST = "latest"
Z95 = 1.959963984540054


@dataclass(frozen=True)
class Split:
    arms: tuple[tuple[str, int], ...]  # (arm, share), in the order given

    @property
    def names(self) -> list[str]:
        return [name for name, _ in self.arms]

    @property
    def spec(self) -> str:
        return ",".join(f"{name}:{share}" for name, share in self.arms)

    def arm(self, user_id: str) -> str:
        digest = hashlib.blake2b(f"{self.spec}\x00{user_id}".encode(), digest_size=8).digest()
        point = int.from_bytes(digest, "big") % sum(share for _, share in self.arms)
        for name, share in self.arms:
            if point < share:
                return name
            point -= share
        raise AssertionError("unreachable: point below the total share")


def parse_split(spec: str) -> Split | None:
    """``v7:50,v8:50`` → a Split; empty → None (no test). Errors say what is wrong."""
    if not spec.strip():
        return None
    arms: list[tuple[str, int]] = []
    for part in spec.split(","):
        name, sep, share = part.strip().partition(":")
        if not sep or not name or not share.strip().isdigit() or int(share) <= 0:
            raise ValueError(
                f"RECSTREAM_AB: {part.strip()!r} is not <version>:<positive integer share> "
                "(e.g. v7:50,v8:50)"
            )
        arms.append((name.strip(), int(share)))
    names = [n for n, _ in arms]
    if len(arms) < 2 or len(set(names)) != len(names):
        raise ValueError(f"RECSTREAM_AB: {spec!r} needs two or more arms, each named once")
    return Split(tuple(arms))


# ---- the report ----


def proportion(successes: float, trials: float) -> dict[str, Any]:
    """A rate per list with its 95% Wilson interval (lists taken as independent)."""
    if trials <= 0:
        return {"value": None, "low": None, "high": None, "n": 0}
    p = min(successes / trials, 1.0)
    centre = (p + Z95**2 / (2 * trials)) / (1 + Z95**2 / trials)
    half = Z95 * math.sqrt(p * (1 - p) / trials + Z95**2 / (4 * trials**2)) / (1 + Z95**2 / trials)
    return {"value": successes / trials, "low": centre - half, "high": centre + half, "n": trials}


def difference(a: tuple[float, float], b: tuple[float, float]) -> dict[str, Any]:
    """Rate of b minus rate of a ((successes, trials) each), 95% normal interval."""
    (sa, na), (sb, nb) = a, b
    if na <= 0 or nb <= 0:
        return {"diff": None, "low": None, "high": None}
    pa, pb = min(sa / na, 1.0), min(sb / nb, 1.0)
    half = Z95 * math.sqrt(pa * (1 - pa) / na + pb * (1 - pb) / nb)
    diff = sb / nb - sa / na
    return {"diff": diff, "low": diff - half, "high": diff + half}


def sample_ratio(split: Split, users: dict[str, int]) -> dict[str, Any]:
    """Chi-square goodness of fit of the users seen per arm against the shares: a p-value
    below 0.001 means the split is broken (a sample ratio mismatch), not a finding."""
    total_users = sum(users.get(name, 0) for name in split.names)
    total_share = sum(share for _, share in split.arms)
    if total_users == 0:
        return {"chi2": None, "p": None, "mismatch": False}
    chi2 = 0.0
    for name, share in split.arms:
        expected = total_users * share / total_share
        chi2 += (users.get(name, 0) - expected) ** 2 / expected
    p = _chi2_sf(chi2, len(split.arms) - 1)
    return {"chi2": chi2, "p": p, "mismatch": p < 0.001}


def _chi2_sf(x: float, dof: int) -> float:
    """Survival function of the chi-square distribution (regularised upper gamma, series and
    continued fraction as in Numerical Recipes; enough for a p-value)."""
    a, x2 = dof / 2.0, x / 2.0
    if x2 <= 0:
        return 1.0
    if x2 < a + 1:
        term = total = 1.0 / a
        k = a
        for _ in range(500):
            k += 1
            term *= x2 / k
            total += term
        return max(0.0, 1.0 - total * math.exp(-x2 + a * math.log(x2) - math.lgamma(a)))
    b = x2 + 1 - a
    c, d = 1e300, 1 / b
    h = d
    for i in range(1, 500):
        an = -i * (i - a)
        b += 2
        d = an * d + b
        d = 1e-300 if abs(d) < 1e-300 else d
        c = b + an / c
        c = 1e-300 if abs(c) < 1e-300 else c
        d = 1 / d
        h *= d * c
    return min(1.0, math.exp(-x2 + a * math.log(x2) - math.lgamma(a)) * h)


def report(split: Split, counters: dict[str, dict[str, float]]) -> dict[str, Any]:
    """The test's numbers from each arm's cluster-wide counters (the ``metrics:<version>``
    hashes: ``users``, ``lists``, ``hit:click``, ``hit:purchase``): per arm the users reached,
    the lists, CTR (clicks per list) and conversion (purchases per list) with 95% intervals;
    each later arm against the first; and the sample-ratio check on users."""
    arms: dict[str, Any] = {}
    for name in split.names:
        c = counters.get(name, {})
        lists = c.get("lists", 0.0)
        arms[name] = {
            "users": int(c.get("users", 0)),
            "lists": int(lists),
            "ctr": proportion(c.get("hit:click", 0.0), lists),
            "conversion": proportion(c.get("hit:purchase", 0.0), lists),
        }
    first = split.names[0]
    base = counters.get(first, {})
    versus = {}
    for name in split.names[1:]:
        c = counters.get(name, {})
        versus[name] = {
            metric: difference(
                (base.get(field, 0.0), base.get("lists", 0.0)),
                (c.get(field, 0.0), c.get("lists", 0.0)),
            )
            for metric, field in (("ctr", "hit:click"), ("conversion", "hit:purchase"))
        }
    users = {name: arms[name]["users"] for name in split.names}
    return {
        "split": split.spec,
        "arms": arms,
        "versus": {"baseline": first, "arms": versus},
        "sample_ratio": sample_ratio(split, users),
    }
