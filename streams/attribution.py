"""Attribution: which served list, and which position in it, an interaction came from (pure).

An interaction that carries ``rec_id`` is a hit on that list when its item is in it. Without
``rec_id``, it is a hit on the user's last served list when its item is there and the event
happened within the attribution window after the list was made. A position counts once per
event type (a second click on the same slot adds nothing).

Each user's last few lists live in a Redis key of their own, not in the user state: a replay
must leave the state byte-identical, while it produces new lists.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable
from dataclasses import dataclass, field
from typing import Any

import orjson

from recstream.streams.records import Event

# A producer's clock may run a little behind the worker's: an event stamped up to this long
# before its list was made still counts.
CLOCK_SKEW_MS = 60_000


@dataclass(slots=True)
class Served:
    """One list as attribution needs it; ``hits`` holds the ``type:position`` already counted.
    Plain lists, as JSON gives them: a user's lists are read and written on every event."""

    rec_id: str
    created_ts: int
    version: str
    items: list[str]
    hits: list[str] = field(default_factory=list)

    def row(self) -> list[Any]:
        return [self.rec_id, self.created_ts, self.version, self.items, self.hits]


@dataclass(frozen=True, slots=True)
class Hit:
    rec_id: str
    version: str
    type: str
    position: int  # 0 = the top of the list


def served_to_json(lists: Iterable[Served]) -> str:
    """Compact rows, oldest first: ``[rec_id, created_ts, version, [items], [hits]]``."""
    return orjson.dumps([s.row() for s in lists]).decode()


def served_from_json(raw: bytes | str | None) -> list[Served]:
    """A user's served lists; a missing or unreadable value is no lists (attribution is
    best-effort and must never fail a batch)."""
    if not raw:
        return []
    try:
        return [Served(*row) for row in orjson.loads(raw)]
    except (ValueError, TypeError):
        return []


def find_hit(lists: list[Served], event: Event, window_ms: int) -> Hit | None:
    """The hit ``event`` scores on one of the user's ``lists`` (oldest first), if any; marks
    the position as counted for the event's type. A window of 0 attributes by ``rec_id``
    only (without that check the clock-skew allowance would still credit an event stamped
    just before the list was made)."""
    if event.rec_id is not None:
        target = next((s for s in reversed(lists) if s.rec_id == event.rec_id), None)
    elif window_ms > 0 and lists and -CLOCK_SKEW_MS <= event.ts - lists[-1].created_ts <= window_ms:
        target = lists[-1]
    else:
        return None
    if target is None or event.item_id not in target.items:
        return None
    position = target.items.index(event.item_id)
    key = f"{event.type}:{position}"
    if key in target.hits:
        return None
    target.hits.append(key)
    return Hit(target.rec_id, target.version, event.type, position)


def attribute_batch(
    steps: Iterable[tuple[Event, bool, bool, Served]],
    served: dict[str, list[Served]],
    window_ms: int,
    keep: int,
    counted: Collection[str],
) -> list[Hit]:
    """Walk a batch in order: each step is (event, applied to the user's state, counted in
    the shared counters, the list made for it). An applied or counted event of a ``counted``
    type is attributed first (marking the position in the user's lists), its hit returned
    when the event counts; then its own list joins the user's lists (so a later event of the
    same batch may hit it). Replays and duplicates are not attributed, but their lists were
    served and are kept. Updates ``served`` in place, at most ``keep`` lists per user."""
    hits: list[Hit] = []
    for event, applied, counts, made in steps:
        lists = served.setdefault(event.user_id, [])
        if (applied or counts) and event.type in counted:
            hit = find_hit(lists, event, window_ms)
            if hit is not None and counts:
                hits.append(hit)
        lists.append(made)
        if len(lists) > keep:
            del lists[: len(lists) - keep]
    return hits
