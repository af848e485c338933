"""The dashboard's numbers over time, from the workers' snapshots on the ``metrics`` topic.

A snapshot carries the cluster-wide counters of each model version (cumulative, read from
Redis) and the reporting worker's own interval numbers (latency counts and percentiles, lag).
Charts want rates, so the counters are sampled at the end of each time step and differenced:
any worker's snapshot serves, since they all read the same counters. Rates over a step are
noisy at a few lists per second, so CTR, conversion and diversity are taken over a trailing
window of steps. A step with no snapshot at all is a gap (null), not a zero.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

COUNTERS = ("impressions", "users", "clicks", "purchases", "diversity_n")
EVENTS = ("valid", "applied", "rejected")


@dataclass
class Timeline:
    """Snapshots and model announcements seen lately, oldest first within each worker."""

    history_ms: int
    max_snapshots: int = 100_000
    snapshots: deque[dict[str, Any]] = field(default_factory=deque)
    announcements: list[dict[str, Any]] = field(default_factory=list)
    ignored: int = 0  # records that were not snapshots

    def add(self, record: Any, ts_ms: int = 0) -> bool:
        """Keep a snapshot; anything else is counted and dropped."""
        if not is_snapshot(record):
            self.ignored += 1
            return False
        self.snapshots.append(record)
        while len(self.snapshots) > self.max_snapshots:
            self.snapshots.popleft()
        return True

    def announce(self, record: Any, ts_ms: int) -> None:
        if isinstance(record, dict) and isinstance(record.get("version"), str):
            self.announcements.append({"version": record["version"], "ts": ts_ms})

    def forget_snapshots(self) -> None:
        self.snapshots.clear()

    def forget_announcements(self) -> None:
        self.announcements.clear()

    def prune(self, now_ms: int) -> None:
        oldest = now_ms - self.history_ms
        while self.snapshots and self.snapshots[0]["ts"] < oldest:
            self.snapshots.popleft()


def is_snapshot(record: Any) -> bool:
    return (
        isinstance(record, dict)
        and isinstance(record.get("worker"), str)
        and isinstance(record.get("ts"), int)
        and isinstance(record.get("versions"), dict)
    )


def steps_of(first_ms: int, now_ms: int, step_ms: int) -> list[int]:
    """Ends of the steps from the one holding ``first_ms`` to the one holding ``now_ms``."""
    start = (first_ms // step_ms + 1) * step_ms
    return list(range(start, (now_ms // step_ms + 1) * step_ms + 1, step_ms))


def _cumulative(
    snaps: Sequence[dict[str, Any]], ends: list[int], stale_steps: int
) -> list[dict[str, Any] | None]:
    """The cluster's counters as of each step end: carried over steps nobody reported in,
    None once nobody has for ``stale_steps`` steps (or before anyone did). Fields only grow,
    so the largest value seen wins over a slower worker's older read."""
    out: list[dict[str, Any] | None] = []
    state: dict[str, Any] = {"versions": {}, "events": {}}
    i, quiet = 0, stale_steps
    for end in ends:
        quiet += 1
        while i < len(snaps) and snaps[i]["ts"] < end:
            _fold(state, snaps[i])
            quiet, i = 0, i + 1
        out.append(_copy(state) if quiet < stale_steps else None)
    return out


def _fold(state: dict[str, Any], snap: dict[str, Any]) -> None:
    for version, summary in snap["versions"].items():
        mine = state["versions"].setdefault(version, {})
        for name in COUNTERS:
            mine[name] = max(mine.get(name, 0), _number(summary.get(name)))
        div, n = summary.get("diversity"), _number(summary.get("diversity_n"))
        if div is not None and n >= mine.get("diversity_n_seen", 0):
            mine["diversity_sum"], mine["diversity_n_seen"] = float(div) * n, n
        if summary.get("coverage") is not None:
            mine["coverage"] = float(summary["coverage"])
    events = snap.get("events") or {}
    for name in EVENTS:
        state["events"][name] = max(state["events"].get(name, 0), _number(events.get(name)))


def _copy(state: dict[str, Any]) -> dict[str, Any]:
    return {
        "versions": {v: dict(c) for v, c in state["versions"].items()},
        "events": dict(state["events"]),
    }


def _number(value: Any) -> float:
    return float(value) if isinstance(value, int | float) and not isinstance(value, bool) else 0.0


def _delta(
    points: list[dict[str, Any] | None], k: int, back: int, get: Any
) -> tuple[float, int] | None:
    """get(step k) − get(the earliest known step among the ``back`` before it), and how many
    steps apart they are; None when step k or all of those are unknown."""
    now = points[k]
    if now is None:
        return None
    for j in range(max(0, k - back), k):
        earlier = points[j]
        if earlier is not None:
            return max(0.0, get(now) - get(earlier)), k - j
    return None


def series(
    timeline: Timeline,
    now_ms: int,
    step_ms: int = 5_000,
    since_ms: int | None = None,
    rate_steps: int = 6,
    window_steps: int = 12,
    stale_steps: int = 6,
) -> dict[str, Any]:
    """Every chart's data: step ends (``t``, unix seconds) and one list per series. Rates are
    per second over the last ``rate_steps``; CTR, conversion and diversity over the last
    ``window_steps`` (snapshots come every few steps, so one step alone is mostly empty).
    ``since_ms``: only the snapshots from then on."""
    first = -1 if since_ms is None else since_ms
    snaps = sorted((s for s in timeline.snapshots if s["ts"] >= first), key=lambda s: s["ts"])
    if not snaps:
        return {"t": [], "events": {}, "versions": {}, "lag": {}, "step_s": step_ms / 1000}
    ends = steps_of(snaps[0]["ts"], now_ms, step_ms)
    points = _cumulative(snaps, ends, stale_steps)
    step_s = step_ms / 1000
    events = {
        name: [
            _rate(points, k, rate_steps, lambda p, n=name: p["events"].get(n, 0), step_s)
            for k in range(len(ends))
        ]
        for name in EVENTS
    }
    versions = sorted({v for p in points if p for v in p["versions"]}, key=_version_order)
    per_version = {
        v: _version_series(points, v, step_s, (rate_steps, window_steps), snaps, ends)
        for v in versions
    }
    return {
        "t": [end / 1000 for end in ends],
        "step_s": step_s,
        "rate_window_s": step_s * rate_steps,
        "window_s": step_s * window_steps,
        "events": events,
        "versions": per_version,
        "lag": _lag(snaps, ends),
    }


def _rate(
    points: list[dict[str, Any] | None], k: int, back: int, get: Any, step_s: float
) -> float | None:
    d = _delta(points, k, back, get)
    return None if d is None else d[0] / (d[1] * step_s)


def _ratio(
    points: list[dict[str, Any] | None], k: int, back: int, top: Any, bottom: Any
) -> float | None:
    b, t = _delta(points, k, back, bottom), _delta(points, k, back, top)
    return None if b is None or t is None or not b[0] else t[0] / b[0]


def _version_series(
    points: list[dict[str, Any] | None],
    version: str,
    step_s: float,
    windows: tuple[int, int],
    snaps: Sequence[dict[str, Any]],
    ends: list[int],
) -> dict[str, list[float | None]]:
    def field_of(name: str) -> Any:
        return lambda p: p["versions"].get(version, {}).get(name, 0.0)

    ks, (rate, window) = range(len(points)), windows
    lists, clicks, buys = field_of("impressions"), field_of("clicks"), field_of("purchases")
    div_sum, div_n = field_of("diversity_sum"), field_of("diversity_n_seen")
    coverage = [p["versions"].get(version, {}).get("coverage") if p else None for p in points]
    return {
        "lists_per_s": [_rate(points, k, rate, lists, step_s) for k in ks],
        "ctr": [_ratio(points, k, window, clicks, lists) for k in ks],
        "conversion": [_ratio(points, k, window, buys, lists) for k in ks],
        "diversity": [_ratio(points, k, window, div_sum, div_n) for k in ks],
        "coverage": coverage,
        "latency_p99_ms": _worst_p99(snaps, ends, version),
    }


def _worst_p99(
    snaps: Sequence[dict[str, Any]], ends: list[int], version: str
) -> list[float | None]:
    """Per step, the highest p99 any worker reported for its own interval (percentiles of
    different workers do not combine; the worst one is what a user can meet)."""
    out: list[float | None] = [None] * len(ends)
    for snap in snaps:
        k = _step_index(snap["ts"], ends)
        p99 = (snap["versions"].get(version) or {}).get("latency_ms", {}).get("p99")
        if k is not None and isinstance(p99, int | float):
            out[k] = max(out[k] or 0.0, float(p99))
    return out


def _step_index(ts: int, ends: list[int]) -> int | None:
    if not ends:
        return None
    step = ends[1] - ends[0] if len(ends) > 1 else None
    if step is None:
        return 0 if ts < ends[0] else None
    k = (ts - (ends[0] - step)) // step
    return int(k) if 0 <= k < len(ends) else None


def _lag(snaps: Sequence[dict[str, Any]], ends: list[int]) -> dict[str, list[float | None]]:
    """Per worker and step: events behind the end of its partitions, from its last snapshot
    in that step."""
    out: dict[str, list[float | None]] = {}
    for snap in snaps:
        k = _step_index(snap["ts"], ends)
        lag = snap.get("lag")
        if k is None or not isinstance(lag, dict):
            continue
        row = out.setdefault(snap["worker"], [None] * len(ends))
        row[k] = float(sum(_number(n) for n in lag.values()))
    return out


def latency_histogram(timeline: Timeline, since_ms: int) -> dict[str, Any]:
    """Event-to-list latency counts per version since ``since_ms``, all workers added."""
    le: list[float] = []
    counts: dict[str, list[int]] = {}
    for snap in timeline.snapshots:
        if snap["ts"] < since_ms:
            continue
        le = snap.get("latency_le_ms") or le
        for version, summary in snap["versions"].items():
            found = (summary.get("latency_ms") or {}).get("counts")
            if not isinstance(found, list):
                continue
            mine = counts.setdefault(version, [0] * len(found))
            if len(mine) == len(found):
                counts[version] = [a + int(b) for a, b in zip(mine, found, strict=True)]
    return {
        "le_ms": le,
        "counts": dict(sorted(counts.items(), key=lambda kv: _version_order(kv[0]))),
    }


def workers(timeline: Timeline) -> dict[str, dict[str, Any]]:
    """Each worker's newest snapshot in brief: what it serves, since when, when last heard."""
    out: dict[str, dict[str, Any]] = {}
    for snap in timeline.snapshots:
        mine = out.get(snap["worker"])
        if mine is None or snap["ts"] >= mine["ts"]:
            serving = snap.get("serving") or {}
            out[snap["worker"]] = {
                "ts": snap["ts"],
                "version": serving.get("version"),
                "since_ms": serving.get("since_ms"),
                "ab": snap.get("ab"),
                "lag": sum(_number(n) for n in (snap.get("lag") or {}).values()),
                "swaps": snap.get("swaps") or {},
            }
    return dict(sorted(out.items()))


def model_timeline(
    timeline: Timeline, trained: Iterable[Mapping[str, Any]] = ()
) -> list[dict[str, Any]]:
    """What happened to each model version, oldest first: trained (from the artifact root),
    announced (model-updates), serving (a worker's first snapshot with it) and refused (a
    worker's refusal, with the reason)."""
    events: dict[tuple[Any, ...], dict[str, Any]] = {}
    for row in trained:
        events[("trained", row["version"])] = {"kind": "trained", **row}
    for row in timeline.announcements:
        events.setdefault(("announced", row["version"]), {"kind": "announced", **row})
    for snap in sorted(timeline.snapshots, key=lambda s: s["ts"]):
        serving = snap.get("serving") or {}
        version, since = serving.get("version"), serving.get("since_ms")
        if isinstance(version, str) and version != "none":
            first = {"version": version, "worker": snap["worker"], "ts": since or snap["ts"]}
            events.setdefault(("serving", version, snap["worker"]), {"kind": "serving", **first})
        for refusal in snap.get("refused") or []:
            if isinstance(refusal, dict):
                seen = ("refused", refusal.get("version"), snap["worker"], refusal.get("ts"))
                events.setdefault(seen, {"kind": "refused", "worker": snap["worker"], **refusal})
    return sorted(events.values(), key=lambda e: (e.get("ts") or 0, e["kind"]))


def _version_order(version: str) -> tuple[int, str]:
    digits = version[1:]
    return (int(digits), version) if version.startswith("v") and digits.isdigit() else (-1, version)
