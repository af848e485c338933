"""One micro-batch of valid events → updated user state in Redis → one list per event.

Two Redis round trips per batch (read everything, then write everything in one MULTI), one
encoder call and one index search. Idempotent: a partition's watermark (highest applied offset)
and producers' event ids gate every state change, so a replay after a crash rewrites nothing —
but still yields a list, because the list of the first attempt may never have been published.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field

from redis.asyncio import Redis

from recstream.streams.batches import Valid
from recstream.streams.catalog import Catalog
from recstream.streams.keys import Keys
from recstream.streams.recommender import Recommender, Request, Scored
from recstream.streams.records import recommendation_json
from recstream.streams.state import UserState, apply_event
from recstream.streams.trending import decayed_increment, top_category

# 2026-01-01T00:00:00Z: the forward-decay anchor (see trending.py).
TRENDING_ANCHOR_MS = 1_767_225_600_000


@dataclass(frozen=True)
class PipelineConfig:
    k: int = 10
    max_len: int = 200
    weights: dict[str, float] = field(default_factory=dict)
    trending_half_life_ms: float = 6 * 3600 * 1000
    event_id_ttl_s: int = 7 * 24 * 3600


@dataclass(frozen=True)
class Outgoing:
    """One list made for one event: what attribution needs, and the record's JSON bytes."""

    rec_id: str
    user_id: str
    items: Scored
    model_version: str
    created_ts: int
    payload: bytes  # the ``recommendations`` record (DESIGN.md)


@dataclass
class Snapshot:
    """What Redis held for a batch before it was applied."""

    states: dict[str, UserState]
    watermarks: dict[tuple[str, int], int]
    known_event_ids: set[str]


class Pipeline:
    def __init__(
        self,
        redis: Redis,
        keys: Keys,
        recommender: Recommender,
        config: PipelineConfig,
        catalog: Catalog | None = None,
    ) -> None:
        self.redis = redis
        self.keys = keys
        self.recommender = recommender
        self.config = config
        self.catalog = catalog or Catalog()

    async def process(self, batch: Sequence[Valid]) -> list[Outgoing]:
        snapshot = await self._read(batch)
        states, applied, after = self._apply(batch, snapshot)
        # Unavailable items join each user's exclusions: the index drops those by row number,
        # which is far cheaper than a per-candidate availability callback.
        unavailable = self.catalog.unavailable
        requests = [
            Request(s.sequence, s.excluded | unavailable if unavailable else s.excluded)
            for s in after
        ]
        recommender = self.recommender  # one model for the whole batch, even during a swap
        lists = recommender.recommend(requests, self.config.k)
        lists = await self._fill_cold(lists, after)
        created = int(time.time() * 1000)
        version = recommender.version
        recs = [
            self._record(v, items, version, created) for v, items in zip(batch, lists, strict=True)
        ]
        await self._write(batch, states, applied, recs)
        return recs

    async def _read(self, batch: Sequence[Valid]) -> Snapshot:
        users = sorted({v.event.user_id for v in batch})
        parts = sorted({(v.source.topic, v.source.partition) for v in batch})
        eids = sorted({v.event.event_id for v in batch if v.event.event_id})
        async with self.redis.pipeline(transaction=False) as pipe:
            pipe.mget([self.keys.state(u) for u in users])
            pipe.mget([self.keys.watermark(t, p) for t, p in parts])
            if eids:
                pipe.mget([self.keys.event_id(e) for e in eids])
            replies = await pipe.execute()
        seen_ids = {e for e, hit in zip(eids, replies[2], strict=True) if hit} if eids else set()
        return Snapshot(
            states={u: UserState.from_json(raw) for u, raw in zip(users, replies[0], strict=True)},
            watermarks={p: int(w) for p, w in zip(parts, replies[1], strict=True) if w is not None},
            known_event_ids=seen_ids,
        )

    def _apply(
        self, batch: Sequence[Valid], snap: Snapshot
    ) -> tuple[dict[str, UserState], list[Valid], list[UserState]]:
        """Fold the batch into the states; returns the final states, the events that were
        applied (not replays or duplicates) and each event's state right after it."""
        states = dict(snap.states)
        seen_ids = set(snap.known_event_ids)
        applied: list[Valid] = []
        after: list[UserState] = []
        for v in batch:
            event, src = v.event, v.source
            replay = src.offset <= snap.watermarks.get((src.topic, src.partition), -1)
            duplicate = event.event_id is not None and event.event_id in seen_ids
            if not (replay or duplicate):
                category = self.catalog.category(event.item_id)
                states[event.user_id] = apply_event(
                    states[event.user_id], event, self.config.weights, self.config.max_len, category
                )
                applied.append(v)
                if event.event_id is not None:
                    seen_ids.add(event.event_id)
            after.append(states[event.user_id])
        return states, applied, after

    async def _fill_cold(self, lists: list[Scored], after: list[UserState]) -> list[Scored]:
        """Trending items (in the user's favourite category when known) for users the model
        cannot encode yet."""
        cold = [i for i, items in enumerate(lists) if not items]
        if not cold:
            return lists
        favourite = {i: top_category(dict(after[i].categories)) for i in cold}
        cats = set(favourite.values())
        fetch = self.config.k * 4 + 50
        async with self.redis.pipeline(transaction=False) as pipe:
            for cat in sorted(cats, key=str):
                pipe.zrevrange(self.keys.trending(cat), 0, fetch, withscores=True)
            replies = await pipe.execute()
        ranked = dict(zip(sorted(cats, key=str), replies, strict=True))
        filled = list(lists)
        for i in cold:
            filled[i] = self._pick_trending(ranked[favourite[i]], after[i])
        return filled

    def _pick_trending(self, ranked: list[tuple[bytes, float]], state: UserState) -> Scored:
        exclude = state.excluded
        out: Scored = []
        for raw, score in ranked:
            item = raw.decode()
            if item not in exclude and self.catalog.available(item):
                out.append((item, float(score)))
                if len(out) == self.config.k:
                    break
        return out

    @staticmethod
    def _record(v: Valid, items: Scored, version: str, created: int) -> Outgoing:
        rec_id = uuid.uuid4().hex
        user = v.event.user_id
        payload = recommendation_json(rec_id, user, items, version, v.source, v.event.ts, created)
        return Outgoing(rec_id, user, items, version, created, payload)

    async def _write(
        self,
        batch: Sequence[Valid],
        states: dict[str, UserState],
        applied: list[Valid],
        recs: list[Outgoing],
    ) -> None:
        """Everything the batch changes, in one MULTI with few commands (a command costs more
        in redis-py than the bytes it carries, so values are grouped into MSETs)."""
        marks: dict[tuple[str, int], int] = {}
        for v in batch:
            key = (v.source.topic, v.source.partition)
            marks[key] = max(marks.get(key, -1), v.source.offset)
        changed = {v.event.user_id for v in applied}
        values: dict[str, str | bytes] = {
            self.keys.state(u): states[u].to_json() for u in sorted(changed)
        }
        values.update({self.keys.recs(rec.user_id): rec.payload for rec in recs})
        async with self.redis.pipeline(transaction=True) as pipe:
            if values:
                pipe.mset(values)
            for (zset, item), inc in self._trending_increments(applied).items():
                pipe.zincrby(zset, inc, item)
            for v in applied:
                if v.event.event_id is not None:
                    pipe.set(self.keys.event_id(v.event.event_id), 1, ex=self.config.event_id_ttl_s)
            for (topic, part), offset in marks.items():
                # GREATEST semantics: never move a watermark backwards on a replay.
                pipe.eval(_MAX_SCRIPT, 1, self.keys.watermark(topic, part), offset)
            pipe.hincrby(self.keys.stats(), "valid", len(batch))
            pipe.hincrby(self.keys.stats(), "applied", len(applied))
            await pipe.execute()

    def _trending_increments(self, applied: list[Valid]) -> dict[tuple[str, str], float]:
        """Summed decayed weights per (sorted set, item) for the batch's applied events."""
        totals: dict[tuple[str, str], float] = {}
        for v in applied:
            weight = self.config.weights.get(v.event.type, 0.0)
            if weight <= 0:
                continue
            inc = decayed_increment(
                weight, v.event.ts, TRENDING_ANCHOR_MS, self.config.trending_half_life_ms
            )
            item = v.event.item_id
            targets = [self.keys.trending()]
            category = self.catalog.category(item)
            if category is not None:
                targets.append(self.keys.trending(category))
            for key in targets:
                totals[key, item] = totals.get((key, item), 0.0) + inc
        return totals


_MAX_SCRIPT = """
local cur = tonumber(redis.call('GET', KEYS[1]) or '-1')
if tonumber(ARGV[1]) > cur then redis.call('SET', KEYS[1], ARGV[1]) end
return 0
"""
