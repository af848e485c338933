"""One micro-batch of valid events → updated user state in Redis → one list per event.

Two Redis round trips per batch (read everything, then write everything in one MULTI), one
encoder call and one index search. Idempotent: a partition's watermark (highest applied offset)
and producers' event ids gate every state change, so a replay after a crash rewrites nothing —
but still yields a list, because the list of the first attempt may never have been published.

The same two round trips carry attribution (each user's last served lists, in a key of their
own) and the online metrics (per-version counters, incremented once per batch).
"""

from __future__ import annotations

import itertools
import secrets
import time
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
import orjson
from redis.asyncio import Redis

from recstream.streams.attribution import (
    Hit,
    Served,
    attribute_batch,
    served_from_json,
    served_to_json,
)
from recstream.streams.batches import Valid
from recstream.streams.catalog import Catalog
from recstream.streams.keys import Keys
from recstream.streams.metrics import (
    HINCR_SCRIPT,
    PFADD_JSON_SCRIPT,
    BatchMetrics,
    OnlineMetrics,
    category_diversity,
    embedding_diversity,
    increment_args,
)
from recstream.streams.recommender import Recommender, Request, Scored
from recstream.streams.records import recommendation_json
from recstream.streams.state import UserState, apply_event
from recstream.streams.trending import (
    decayed_increment,
    epoch_length_ms,
    epoch_of,
    merge_epochs,
    top_category,
)


@dataclass(frozen=True)
class PipelineConfig:
    k: int = 10
    max_len: int = 200
    weights: dict[str, float] = field(default_factory=dict)
    trending_half_life_ms: float = 6 * 3600 * 1000
    event_id_ttl_s: int = 7 * 24 * 3600
    attribution_window_ms: int = 30 * 60 * 1000
    served_kept: int = 5  # lists kept per user for attribution by rec_id


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
    served: dict[str, list[Served]]


class Pipeline:
    def __init__(
        self,
        redis: Redis,
        keys: Keys,
        recommender: Recommender,
        config: PipelineConfig,
        catalog: Catalog | None = None,
        metrics: OnlineMetrics | None = None,
    ) -> None:
        self.redis = redis
        self.keys = keys
        self.recommender = recommender
        self.config = config
        self.catalog = catalog or Catalog()
        self.metrics = metrics or OnlineMetrics(recommender.version)
        # Clicks and purchases always count as hits; other types when they weigh anything.
        positive = {t for t, w in config.weights.items() if w > 0}
        self.counted = frozenset({"click", "purchase", *positive})
        self._registered: set[str] = set()  # versions this process added to metrics:versions
        # rec_id = 64 random bits per process + a counter: unique across workers and restarts
        # at a fraction of uuid4's cost per list.
        self._rec_prefix = secrets.token_hex(8)
        self._rec_counter = itertools.count()

    async def process(self, batch: Sequence[Valid]) -> list[Outgoing]:
        started = time.perf_counter()
        snapshot = await self._read(batch)
        states, flags, after = self._apply(batch, snapshot)
        applied = [v for v, done in zip(batch, flags, strict=True) if done]
        # Unavailable items join each user's exclusions: the index drops those by row number,
        # which is far cheaper than a per-candidate availability callback.
        unavailable = self.catalog.unavailable
        requests = [
            Request(s.sequence, s.excluded | unavailable if unavailable else s.excluded)
            for s in after
        ]
        recommender = self.recommender  # one model for the whole batch, even during a swap
        lists = recommender.recommend(requests, self.config.k)
        warm = [bool(items) for items in lists]  # made by the model, not trending
        lists = await self._fill_cold(lists, after)
        created = int(time.time() * 1000)
        version = recommender.version
        recs = [
            self._record(v, items, version, created) for v, items in zip(batch, lists, strict=True)
        ]
        ids = [[i for i, _ in rec.items] for rec in recs]
        made = (Served(r.rec_id, created, version, row) for r, row in zip(recs, ids, strict=True))
        hits = attribute_batch(
            zip((v.event for v in batch), flags, made, strict=True),
            snapshot.served,
            self.config.attribution_window_ms,
            self.config.served_kept,
            self.counted,
        )
        measured = self._measure(recommender, applied, ids, warm, hits, created)
        await self._write(batch, states, applied, recs, snapshot.served, measured)
        self.metrics.record(measured, time.perf_counter() - started)
        return recs

    async def _read(self, batch: Sequence[Valid]) -> Snapshot:
        users = sorted({v.event.user_id for v in batch})
        parts = sorted({(v.source.topic, v.source.partition) for v in batch})
        eids = sorted({v.event.event_id for v in batch if v.event.event_id})
        async with self.redis.pipeline(transaction=False) as pipe:
            pipe.mget([self.keys.state(u) for u in users])
            pipe.mget([self.keys.served(u) for u in users])
            pipe.mget([self.keys.watermark(t, p) for t, p in parts])
            if eids:
                pipe.mget([self.keys.event_id(e) for e in eids])
            replies = await pipe.execute()
        seen_ids = {e for e, hit in zip(eids, replies[3], strict=True) if hit} if eids else set()
        return Snapshot(
            states={u: UserState.from_json(raw) for u, raw in zip(users, replies[0], strict=True)},
            watermarks={p: int(w) for p, w in zip(parts, replies[2], strict=True) if w is not None},
            known_event_ids=seen_ids,
            served={u: served_from_json(raw) for u, raw in zip(users, replies[1], strict=True)},
        )

    def _apply(
        self, batch: Sequence[Valid], snap: Snapshot
    ) -> tuple[dict[str, UserState], list[bool], list[UserState]]:
        """Fold the batch into the states; returns the final states, whether each event was
        applied (not a replay or duplicate) and each event's state right after it."""
        states = dict(snap.states)
        seen_ids = set(snap.known_event_ids)
        applied: list[bool] = []
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
                if event.event_id is not None:
                    seen_ids.add(event.event_id)
            applied.append(not (replay or duplicate))
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
        epoch = epoch_of(int(time.time() * 1000), self.config.trending_half_life_ms)
        async with self.redis.pipeline(transaction=False) as pipe:
            for cat in sorted(cats, key=str):
                for e in (epoch, epoch - 1):
                    pipe.zrevrange(self.keys.trending(e, cat), 0, fetch, withscores=True)
            replies = await pipe.execute()
        pairs = [merge_epochs(*replies[j : j + 2]) for j in range(0, len(replies), 2)]
        ranked = dict(zip(sorted(cats, key=str), pairs, strict=True))
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

    def _measure(
        self,
        recommender: Recommender,
        applied: list[Valid],
        ids: list[list[str]],
        warm: list[bool],
        hits: list[Hit],
        created: int,
    ) -> BatchMetrics:
        """The batch's numbers for the online metrics; ``ids``: the item ids of each list."""
        latency_ms = np.fromiter((created - v.event.ts for v in applied), np.float64, len(applied))
        return BatchMetrics(
            version=recommender.version,
            applied=len(applied),
            lists=len(ids),
            items_shown=sum(len(row) for row in ids),
            shown={i for row in ids for i in row},
            catalog_size=recommender.catalog_size or len(self.catalog) or None,
            diversity=self._diversity(recommender, ids, warm),
            latency_s=latency_ms / 1000,
            hits=hits,
        )

    def _diversity(
        self, recommender: Recommender, ids: list[list[str]], warm: list[bool]
    ) -> np.ndarray:
        """By category when the catalogue knows categories, else by the model's item vectors
        (lists the model made; trending items may be unknown to it); NaN: not measured."""
        if self.catalog.has_categories:
            return category_diversity(ids, self.catalog.category)
        out = np.full(len(ids), np.nan)
        rows = [b for b, w in enumerate(warm) if w]
        if rows:
            table = recommender.item_features([i for b in rows for i in ids[b]])
            if table is not None:
                out[rows] = embedding_diversity([len(ids[b]) for b in rows], table)
        return out

    def _record(self, v: Valid, items: Scored, version: str, created: int) -> Outgoing:
        rec_id = f"{self._rec_prefix}{next(self._rec_counter):016x}"
        user = v.event.user_id
        payload = recommendation_json(rec_id, user, items, version, v.source, v.event.ts, created)
        return Outgoing(rec_id, user, items, version, created, payload)

    async def _write(
        self,
        batch: Sequence[Valid],
        states: dict[str, UserState],
        applied: list[Valid],
        recs: list[Outgoing],
        served: dict[str, list[Served]],
        measured: BatchMetrics,
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
        values.update({self.keys.served(u): served_to_json(served[u]) for u in served})
        increments = measured.increments()
        new_versions = set(increments) - self._registered
        async with self.redis.pipeline(transaction=True) as pipe:
            if values:
                pipe.mset(values)
            # Per-event writes in one script call: a command costs far more in redis-py
            # (packing, parsing) than the work it asks of Redis.
            trending = [
                [z, item, inc] for (z, item), inc in self._trending_increments(applied).items()
            ]
            eids = [self.keys.event_id(v.event.event_id) for v in applied if v.event.event_id]
            if trending or eids:
                # An epoch's sorted set is read during the next epoch too, then expires.
                zttl = 3 * epoch_length_ms(self.config.trending_half_life_ms)
                payload = orjson.dumps(
                    {"z": trending, "e": eids, "ttl": self.config.event_id_ttl_s, "zttl": zttl}
                )
                pipe.eval(_PER_EVENT_SCRIPT, 0, payload)
            for (topic, part), offset in marks.items():
                # GREATEST semantics: never move a watermark backwards on a replay.
                pipe.eval(_MAX_SCRIPT, 1, self.keys.watermark(topic, part), offset)
            pipe.hincrby(self.keys.stats(), "valid", len(batch))
            pipe.hincrby(self.keys.stats(), "applied", len(applied))
            for version, fields in increments.items():
                pipe.eval(HINCR_SCRIPT, 1, self.keys.metrics(version), *increment_args(fields))
            if measured.shown:
                items = orjson.dumps(list(measured.shown))
                pipe.eval(PFADD_JSON_SCRIPT, 1, self.keys.metrics_items(measured.version), items)
            if measured.catalog_size:
                metrics_key = self.keys.metrics(measured.version)
                pipe.hset(metrics_key, "catalog_size", measured.catalog_size)
            if new_versions:
                pipe.sadd(self.keys.metrics_versions(), *sorted(new_versions))
            await pipe.execute()
        self._registered |= new_versions

    def _trending_increments(self, applied: list[Valid]) -> dict[tuple[str, str], float]:
        """Summed decayed weights per (sorted set, item) for the batch's applied events."""
        totals: dict[tuple[str, str], float] = {}
        for v in applied:
            weight = self.config.weights.get(v.event.type, 0.0)
            if weight <= 0:
                continue
            epoch, inc = decayed_increment(weight, v.event.ts, self.config.trending_half_life_ms)
            item = v.event.item_id
            targets = [self.keys.trending(epoch)]
            category = self.catalog.category(item)
            if category is not None:
                targets.append(self.keys.trending(epoch, category))
            for key in targets:
                totals[key, item] = totals.get((key, item), 0.0) + inc
        return totals


# Keys travel inside the JSON argument, so this is for a single Redis server (not Cluster).
_PER_EVENT_SCRIPT = """
local d = cjson.decode(ARGV[1])
local touched = {}
for _, t in ipairs(d.z) do
  redis.call('ZINCRBY', t[1], t[3], t[2])
  touched[t[1]] = true
end
for k, _ in pairs(touched) do redis.call('PEXPIRE', k, d.zttl) end
for _, k in ipairs(d.e) do redis.call('SET', k, 1, 'EX', d.ttl) end
return 0
"""

_MAX_SCRIPT = """
local cur = tonumber(redis.call('GET', KEYS[1]) or '-1')
if tonumber(ARGV[1]) > cur then redis.call('SET', KEYS[1], ARGV[1]) end
return 0
"""
