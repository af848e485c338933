"""A user's state and how one event changes it — pure functions, no Redis.

The state is what the recommender needs and nothing more: the recent item sequence the model
reads (bounded to the model's length L), the items to keep out of the list (seen, bought, skipped;
bounded, most recent kept) and a per-category taste used for cold start. It serialises to one
canonical JSON string, so "a replay changes nothing" can be checked byte for byte.
"""

from __future__ import annotations

import functools
import sys
from collections.abc import Mapping
from dataclasses import dataclass, field

import orjson

from recstream.streams.records import Event

# Bounds keep a very active user's state small; the oldest entries go first.
MAX_SEEN = 2000
MAX_CATEGORIES = 64


@dataclass(frozen=True)
class UserState:
    sequence: tuple[str, ...] = ()  # items with positive weight, oldest first, at most L
    seen: tuple[str, ...] = ()  # every item the user touched, most recent last, deduplicated
    purchased: tuple[str, ...] = ()  # bought items, most recent last, deduplicated
    categories: Mapping[str, float] = field(default_factory=dict)  # category → summed weight
    events: int = 0
    # (topic, partition, offset) of the last event applied: on a Redis Cluster the state and
    # the partition's watermark are written by different calls, and a replay after a crash
    # between them redoes the state only where this shows the event is not in it yet.
    applied: tuple[str, int, int] | None = None

    @functools.cached_property
    def excluded(self) -> frozenset[str]:
        """Items never to recommend to this user again: everything seen or bought. Cached: a
        state is immutable and the set is asked for once per event and once per list."""
        return frozenset(self.seen).union(self.purchased)

    @property
    def exclusions(self) -> tuple[str, ...]:
        """The same items as :attr:`excluded`, as a tuple that may repeat some: what the index
        takes, built without hashing every item of a long history on every event."""
        return self.seen + self.purchased if self.purchased else self.seen

    def to_json(self) -> str:
        payload = {
            "seq": list(self.sequence),
            "seen": list(self.seen),
            "bought": list(self.purchased),
            "cats": dict(self.categories),
            "n": self.events,
        }
        if self.applied is not None:
            payload["at"] = list(self.applied)
        # orjson: compact, sorted keys, several times faster than json on the hot path.
        return orjson.dumps(payload, option=orjson.OPT_SORT_KEYS).decode()

    @classmethod
    def from_json(cls, raw: bytes | str | None) -> UserState:
        if not raw:
            return cls()
        data = orjson.loads(raw)
        at = data.get("at")
        # Interned: the same item ids recur across users, and workers keep many states in
        # memory (the pipeline's cache), so each id is stored once, not once per user.
        return cls(
            sequence=tuple(map(sys.intern, data["seq"])),
            seen=tuple(map(sys.intern, data["seen"])),
            purchased=tuple(map(sys.intern, data["bought"])),
            categories=dict(data["cats"]),
            events=int(data["n"]),
            applied=(sys.intern(at[0]), int(at[1]), int(at[2])) if at else None,
        )


def _push(items: tuple[str, ...], item: str, limit: int) -> tuple[str, ...]:
    """Move ``item`` to the most recent end of a deduplicated, bounded tuple."""
    kept = (*(i for i in items if i != item), item)
    return kept[-limit:]


def apply_event(
    state: UserState,
    event: Event,
    weights: Mapping[str, float],
    max_len: int,
    category: str | None = None,
    at: tuple[str, int, int] | None = None,
) -> UserState:
    """The state after ``event`` (found at ``at``: topic, partition, offset). A type of weight 0
    (``skip`` by default) only hides the item."""
    weight = weights.get(event.type, 0.0)
    item = sys.intern(event.item_id)  # see UserState.from_json
    sequence = state.sequence
    # A repeated click on the item just clicked adds no information to the sequence.
    if weight > 0 and (not sequence or sequence[-1] != item):
        sequence = (*sequence, item)[-max_len:]
    categories = dict(state.categories)
    if category is not None and weight > 0:
        categories[category] = round(categories.get(category, 0.0) + weight, 6)
        if len(categories) > MAX_CATEGORIES:
            weakest = min(categories, key=lambda c: (categories[c], c))
            del categories[weakest]
    purchased = state.purchased
    if event.type == "purchase":
        purchased = _push(purchased, item, MAX_SEEN)
    return UserState(
        sequence=sequence,
        seen=_push(state.seen, item, MAX_SEEN),
        purchased=purchased,
        categories=categories,
        events=state.events + 1,
        applied=at if at is not None else state.applied,
    )
