"""A user's one Redis value in key layout 3: state, served lists and newest list (pure).

Layout 2 kept three JSON strings per user (state, latest list, served lists), each naming every
item by its full id and each a key with Redis's own overhead; the latest list repeated the
newest served list. Layout 3 packs them into one MessagePack array that names each item id
once (nearly) and refers to it by its place:

``[3, items, seen, seq, bought, cats, n, at, served, latest]``

- ``items``: the first ``seen`` are the seen list, oldest first (a slice), then the
  others in order of first mention: every item of the served lists (an item the user has
  since touched appears in both parts), and items of the sequence or bought list no longer
  among the seen (the seen list is bounded);
- ``seq``: runs ``[start, length, …]`` of places in ``items`` (a sequence without repeats is
  one run); ``bought``: places;
- ``cats``: ``[category, weight, …]`` sorted by category (whole weights as integers);
- ``n``: events applied; ``at``: ``[topic, partition, offset]`` or nil;
- ``served``: rows ``[rec_id, created_ts, version, places, hits]``, oldest first; ``rec_id`` as
  16 bytes when it is 32 lowercase hex digits (the worker's own), ``created_ts`` as the change
  from the row before (the first in full), ``version`` nil when the row before has the same;
- ``latest``: nil, or what the newest list's record has beyond the newest row:
  ``[scores, source, event_ts]`` (and the arm, in an A/B test), the scores as float32 bytes
  when they are float32 values (the model's are), else a list; ``source`` ``[topic or nil
  when the state's, partition, offset]``; ``event_ts`` as the change from the row's
  ``created_ts``.

Everything round-trips exactly, so "a replay changes nothing" still holds byte for byte.
"""

from __future__ import annotations

import re
import sys
from array import array
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import msgpack

from recstream.streams.attribution import Served
from recstream.streams.records import Source, recommendation_json
from recstream.streams.state import UserState

FORMAT = 3
_HEX_ID = re.compile(r"[0-9a-f]{32}")


class UnreadableValue(ValueError):
    """A stored value this version cannot read (corrupt, or another format)."""


@dataclass(frozen=True, slots=True)
class Latest:
    """The newest list's record beyond its served row: what the pull API gives back."""

    scores: list[float]
    source: tuple[str, int, int]
    event_ts: int
    variant: str | None = None  # the A/B arm that made it


@dataclass(frozen=True, slots=True)
class UserValue:
    state: UserState
    served: list[Served]
    latest: Latest | None = None  # belongs to served[-1]


def pack(value: UserValue) -> bytes:
    state, served = value.state, value.served
    table = _Table(state.seen)
    rows = _pack_served(served, table)  # first: listed items take the first places after seen
    row = [
        FORMAT,
        None,  # the table, once every item has its place
        len(state.seen),
        table.sequence(state.sequence),
        [table.place(i) for i in state.purchased],
        [x for c in sorted(state.categories) for x in (c, _number(state.categories[c]))],
        state.events,
        list(state.applied) if state.applied is not None else None,
        rows,
        _pack_latest(value.latest, served, state.applied),
    ]
    row[1] = table.items
    packed: bytes = msgpack.packb(row, use_bin_type=True)
    return packed


class _Table:
    """Places of item ids: the seen items first (oldest first), then the others on first
    mention. Listed items always go among the others (one the user has since touched is then
    written twice, a few bytes): finding them among the seen items would cost more per write
    than it saves. A sequence that ends the seen items (no repeats) is one run; anything else
    looks its items up among the seen ones, with an index built only then."""

    def __init__(self, seen: tuple[str, ...]) -> None:
        self.items: list[str] = list(seen)
        self._seen = seen
        self._others: dict[str, int] = {}
        self._seen_at: dict[str, int] | None = None

    def listed(self, items: list[str]) -> list[int]:
        """Places of the listed items, all among the others (call first, once)."""
        fresh = [i for i in dict.fromkeys(items) if i not in self._others]
        base = len(self.items)
        self._others.update(zip(fresh, range(base, base + len(fresh)), strict=True))
        self.items += fresh
        return list(map(self._others.__getitem__, items))

    def place(self, item: str) -> int:
        if self._seen_at is None:
            self._seen_at = dict(zip(self._seen, range(len(self._seen)), strict=True))
        at = self._seen_at.get(item, self._others.get(item))
        if at is None:
            self._others[item] = at = len(self.items)
            self.items.append(item)
        return at

    def sequence(self, seq: tuple[str, ...]) -> list[int]:
        """Runs of places; a sequence without repeats that ends the seen items is one run."""
        n, seen = len(seq), self._seen
        if n and seq == seen[len(seen) - n :]:
            return [len(seen) - n, n]
        return _runs([self.place(i) for i in seq])


def unpack(raw: bytes | str | None) -> UserValue:
    """The value stored for a user; an absent one is a new user."""
    if not raw:
        return UserValue(UserState(), [])
    try:
        row = msgpack.unpackb(raw, raw=False)
        if not isinstance(row, list) or not row or row[0] != FORMAT:
            raise UnreadableValue(f"not a user value of format {FORMAT}")
        return _decode(row)
    except (ValueError, TypeError, IndexError, KeyError, msgpack.UnpackException) as exc:
        raise UnreadableValue(f"unreadable user value ({exc})") from exc


def _decode(row: list[Any]) -> UserValue:
    _, items, n_seen, seq, bought, cats, n, at, served_rows, latest = row
    # Interned: the same ids recur across users held in the pipeline's cache.
    items = [sys.intern(i) for i in items]
    served = _unpack_served(served_rows, items)
    state = UserState(
        sequence=tuple(items[p] for p in _places(seq)),
        seen=tuple(items[:n_seen]),
        purchased=tuple(items[p] for p in bought),
        categories={cats[i]: float(cats[i + 1]) for i in range(0, len(cats), 2)},
        events=n,
        applied=(sys.intern(at[0]), at[1], at[2]) if at else None,
    )
    return UserValue(state, served, _unpack_latest(latest, served, state.applied))


def latest_record(
    user_id: str, value: UserValue, because: list[list[str]] | None = None
) -> bytes | None:
    """The ``recommendations`` record of the user's newest list, as the worker published it
    given the same ``because`` (which the value does not keep: the model works it out again
    from the state, which is the one the list was made from)."""
    if value.latest is None or not value.served:
        return None
    row, latest = value.served[-1], value.latest
    topic, partition, offset = latest.source
    return recommendation_json(
        row.rec_id,
        user_id,
        list(zip(row.items, latest.scores, strict=True)),
        row.version,
        Source(topic=topic, partition=partition, offset=offset),
        latest.event_ts,
        row.created_ts,
        because,
        latest.variant,
    )


def _number(weight: float) -> int | float:
    return int(weight) if float(weight).is_integer() and abs(weight) < 2**53 else weight


def _runs(places: list[int]) -> list[int]:
    out: list[int] = []
    for p in places:
        if out and out[-2] + out[-1] == p:
            out[-1] += 1
        else:
            out += [p, 1]
    return out


def _places(runs: list[int]) -> list[int]:
    return [p for i in range(0, len(runs), 2) for p in range(runs[i], runs[i] + runs[i + 1])]


def _pack_served(served: list[Served], table: _Table) -> list[list[Any]]:
    places = table.listed([i for s in served for i in s.items])
    rows: list[list[Any]] = []
    last_ts, last_version, start = 0, None, 0
    for s in served:
        rec_id: str | bytes = bytes.fromhex(s.rec_id) if _HEX_ID.fullmatch(s.rec_id) else s.rec_id
        version = None if s.version == last_version else s.version
        end = start + len(s.items)
        rows.append([rec_id, s.created_ts - last_ts, version, places[start:end], s.hits])
        last_ts, last_version, start = s.created_ts, s.version, end
    return rows


def _unpack_served(rows: list[list[Any]], items: list[str]) -> list[Served]:
    served: list[Served] = []
    ts, version = 0, ""
    for rec_id, delta, row_version, places, hits in rows:
        ts += delta
        version = version if row_version is None else row_version
        rid = rec_id.hex() if isinstance(rec_id, bytes) else rec_id
        served.append(Served(rid, ts, version, [items[p] for p in places], list(hits)))
    return served


def _pack_latest(
    latest: Latest | None, served: list[Served], at: tuple[str, int, int] | None
) -> list[Any] | None:
    if latest is None or not served:
        return None
    scores: bytes | list[float] = _scores(latest.scores)
    topic, partition, offset = latest.source
    source = [None if at is not None and topic == at[0] else topic, partition, offset]
    row = [scores, source, latest.event_ts - served[-1].created_ts]
    return [*row, latest.variant] if latest.variant is not None else row


def _unpack_latest(
    row: list[Any] | None, served: list[Served], at: tuple[str, int, int] | None
) -> Latest | None:
    if row is None or not served:
        return None
    scores, (topic, partition, offset), event_delta, *variant = row
    if isinstance(scores, bytes):
        floats = array("f")
        floats.frombytes(scores)
        if sys.byteorder == "big":
            floats.byteswap()
        scores = floats.tolist()
    if topic is None:
        topic = at[0] if at is not None else ""
    at_ts = served[-1].created_ts + event_delta
    return Latest(list(scores), (topic, partition, offset), at_ts, variant[0] if variant else None)


def _scores(scores: Sequence[float]) -> bytes | list[float]:
    """float32 bytes (little-endian) when that loses nothing (the model's scores are float32),
    else floats."""
    floats = array("f", scores)
    if floats.tolist() != list(scores):
        return [float(s) for s in scores]
    if sys.byteorder == "big":
        floats.byteswap()
    return floats.tobytes()
