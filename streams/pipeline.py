"""One micro-batch of valid events → updated user state in Redis → one list per event.

At most two Redis round trips per batch (read what the cache lacks, then write everything in
one atomic script call), one encoder call and one index search. Idempotent: a partition's
watermark (highest applied offset) gates the shared counters, the offset each user's state
records gates that state, producers' event ids gate both, so a replay after a crash rewrites
nothing — but still yields a list, because the list of the first attempt may never have been
published. (On one Redis the watermark and the states change in one call and agree; on a
Redis Cluster the users' keys live on other nodes and are written after the shared keys.)

The same two round trips carry attribution (each user's last served lists, in a key of their
own) and the online metrics (per-version counters, incremented once per batch).

A worker is the only writer of its partitions' users while it owns them, so it keeps the
states, served lists and watermarks it wrote in memory (:class:`UserCache`) and reads Redis only
for users it has not seen since the last rebalance: with real histories, parsing a user's
state and lists on every batch was a fifth of the hot path. The cache is emptied whenever
partitions move.

The worker writes behind (``process(batch, behind=True)``): a batch's write is sent and the
next batch is worked out while Redis applies it, from the cache, which already holds what the
write carries; writes still reach Redis one at a time, in batch order. The write is among the
batch's delivery futures (:attr:`Pipeline.writing`), so its offsets are committed only once it
succeeded; it is retried in place while Redis is away (without applying it twice). When it
fails otherwise, the next batch stops with :class:`StoreFailed`: the consumer must
resume from its last commit, with the cache emptied (:meth:`Pipeline.forget`), and the writes
wait for Redis again until one succeeds — so that a write that keeps failing fails inside its
own batch, where a poison event can be found.
"""

from __future__ import annotations

import asyncio
import itertools
import secrets
import time
from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

from recstream.diversity import category_codes, category_diversity, embedding_diversity
from recstream.streams.ab import Split
from recstream.streams.attribution import (
    Hit,
    Served,
    attribute_batch,
)
from recstream.streams.batches import Valid
from recstream.streams.catalog import Catalog
from recstream.streams.keys import Keys
from recstream.streams.metrics import BatchMetrics, OnlineMetrics
from recstream.streams.recommender import Recommender, Request, Scored
from recstream.streams.records import recommendation_json
from recstream.streams.state import UserState, apply_event
from recstream.streams.store import (
    BatchWrite,
    Partition,
    RedisClient,
    ScriptCall,
    StateStore,
    retry,
)
from recstream.streams.trending import (
    decayed_increment,
    epoch_length_ms,
    epoch_of,
    top_category,
)
from recstream.streams.uservalue import Latest, UserValue


@dataclass(frozen=True)
class PipelineConfig:
    k: int = 10
    weights: dict[str, float] = field(default_factory=dict)
    trending_half_life_ms: float = 6 * 3600 * 1000
    event_id_ttl_s: int = 7 * 24 * 3600
    attribution_window_ms: int = 30 * 60 * 1000
    served_kept: int = 5  # lists kept per user for attribution by rec_id
    cached_users: int = 50_000  # users whose state this worker keeps in memory (0: none)
    user_ttl_s: int = 0  # a user's keys expire this long after their last event (0: never)
    explain: bool = True  # each item's `because` (the history items that drove it)


SEND_TURNS = 2


@dataclass(frozen=True)
class Ask:
    """What a caller of the HTTP API asks of a list made now."""

    n: int
    category: str | None = None
    exclude: frozenset[str] = frozenset()


class StoreFailed(RuntimeError):
    """The previous batch's write failed after the batch was handed on: the states worked out
    since are not in Redis. Resume from the last commit."""


@dataclass(frozen=True)
class Outgoing:
    """One list made for one event: what attribution needs, and the record's JSON bytes."""

    rec_id: str
    user_id: str
    items: Scored
    model_version: str
    created_ts: int
    payload: bytes  # the ``recommendations`` record (docs/contract.md)


@dataclass
class Step:
    """One event's way through a batch."""

    valid: Valid
    applied: bool  # it changed the user's state: not a replay, not a duplicate
    state: UserState  # the user's state right after this event
    counted: bool = True  # it counts in the shared keys (trending, metrics, stats)
    items: Scored = field(default_factory=list)  # its list, best first
    warm: bool = False  # the model made the list (else trending items)
    because: list[list[str]] | None = None  # per item, the history items that drove it
    arm: str | None = None  # the user's arm of the A/B test (None: no test)

    @property
    def ids(self) -> list[str]:
        return [item for item, _ in self.items]


@dataclass
class Snapshot:
    """What Redis held for a batch before it was applied."""

    states: dict[str, UserState]
    watermarks: dict[tuple[str, int], int]
    known_event_ids: set[tuple[str, str]]  # (user, producer's event id)
    served: dict[str, list[Served]]


def _copy_served(lists: list[Served]) -> list[Served]:
    """Attribution marks hits in place: a batch works on copies, so that a batch whose write
    fails leaves the cached lists as Redis still has them."""
    return [Served(s.rec_id, s.created_ts, s.version, s.items, list(s.hits)) for s in lists]


class UserCache:
    """The states and served lists this worker last wrote, per user (least recently used
    first out), and the watermarks of its partitions. Valid only while the partitions stay
    assigned: :meth:`clear` on every rebalance. A user is cached with the partition its events
    came from; an event of theirs from another partition (a producer keying differently) reads
    Redis again."""

    def __init__(self, capacity: int) -> None:
        self.capacity = capacity
        self.users: OrderedDict[str, tuple[tuple[str, int], UserState, list[Served]]] = (
            OrderedDict()
        )
        self.watermarks: dict[tuple[str, int], int] = {}

    def clear(self) -> None:
        self.users.clear()
        self.watermarks.clear()

    def get(self, user: str, part: tuple[str, int]) -> tuple[UserState, list[Served]] | None:
        entry = self.users.get(user)
        if entry is None or entry[0] != part:
            return None
        self.users.move_to_end(user)
        return entry[1], _copy_served(entry[2])

    def put(self, user: str, part: tuple[str, int], state: UserState, served: list[Served]) -> None:
        if self.capacity <= 0:
            return
        self.users[user] = (part, state, served)
        self.users.move_to_end(user)
        while len(self.users) > self.capacity:
            self.users.popitem(last=False)


class Pipeline:
    def __init__(
        self,
        redis: RedisClient,
        keys: Keys,
        recommender: Recommender,
        config: PipelineConfig,
        catalog: Catalog | None = None,
        metrics: OnlineMetrics | None = None,
    ) -> None:
        self.split: Split | None = None  # an A/B test (start_test)
        self.arms: dict[str, Recommender] = {}
        self.redis = redis
        self.keys = keys
        self.recommender = recommender
        self.config = config
        self.catalog = catalog or Catalog()
        self.metrics = metrics or OnlineMetrics(recommender.version)
        # Clicks and purchases always count as hits; other types when they weigh anything.
        positive = {t for t, w in config.weights.items() if w > 0}
        self.counted = frozenset({"click", "purchase", *positive})
        # rec_id = 64 random bits per process + a counter: unique across workers and restarts
        # at a fraction of uuid4's cost per list.
        self._rec_prefix = secrets.token_hex(8)
        self._rec_counter = itertools.count()
        self.cache = UserCache(config.cached_users)
        # An epoch's sorted set is read during the next epoch too, then expires.
        trending_ttl_ms = 3 * epoch_length_ms(config.trending_half_life_ms)
        self.store = StateStore(
            redis, keys, config.event_id_ttl_s, trending_ttl_ms, config.user_ttl_s * 1000
        )
        self.writing: asyncio.Task[None] | None = None  # the last write made behind
        self._writing_users: frozenset[str] = frozenset()  # whose states it carries
        self._writing_event_ids: frozenset[tuple[str, str]] = frozenset()
        self._behind_ok = True  # False from a failed write until a write succeeds

    def start_test(self, split: Split, arms: dict[str, Recommender]) -> None:
        """From now on each user's lists come from their arm's model (pinned versions: an
        announced version is recorded but serves no arm)."""
        if set(split.names) != set(arms):
            raise ValueError(f"A/B arms {split.names} need a model each; got {sorted(arms)}")
        self.split, self.arms = split, dict(arms)

    def forget(self) -> None:
        """Partitions moved, or the consumer resumes from its last commit: what this worker
        knew of its users may be stale (call it with no batch in hand)."""
        self.cache.clear()
        if self.writing is not None and self.writing.done():
            if self.writing.cancelled() or self.writing.exception() is not None:
                self._behind_ok = False
            self.writing = None

    async def settle(self) -> None:
        """Wait for the write made behind; :class:`StoreFailed` if it failed (once)."""
        task = self.writing
        if task is None:
            return
        try:
            await asyncio.shield(task)  # a cancelled caller leaves the write running
        except Exception as exc:
            self.cache.clear()
            self._behind_ok = False
            raise StoreFailed(f"the previous batch's write failed: {exc!r}") from exc
        finally:
            if task.done():
                self.writing = None

    async def process(self, batch: Sequence[Valid], behind: bool = False) -> list[Outgoing]:
        """The batch's lists, its changes written (``behind``: sent, see the module doc)."""
        started = time.perf_counter()
        models = self._models()  # one model per arm for the whole batch, even during a swap
        snapshot = await self._read(batch)
        # States keep as many items as the models serving this batch read: a swap to a model
        # of another length changes what the next events keep.
        states, steps = self._apply(batch, snapshot, max(m.max_len for m in models.values()))
        arms = self._arms(steps)
        for arm, group in arms.items():
            self._recommend(models[arm], group)
        await self._fill_cold(steps)
        created = int(time.time() * 1000)
        recs = [self._record(step, models[step.arm].version, created) for step in steps]
        made = (
            (
                step.valid.event,
                step.applied,
                step.counted,
                Served(rec.rec_id, created, rec.model_version, step.ids),
            )
            for step, rec in zip(steps, recs, strict=True)
        )
        hits = attribute_batch(
            made,
            snapshot.served,
            self.config.attribution_window_ms,
            self.config.served_kept,
            self.counted,
        )
        # Hits count for the version of the list hit, whichever arm's batch finds them.
        measured = [
            self._measure(models[arm], group, hits if n == 0 else [], created)
            for n, (arm, group) in enumerate(arms.items())
        ]
        marks = _watermarks(batch)
        write = self._batch_write(batch, marks, states, steps, recs, snapshot.served, measured)
        await self._write(write, behind)
        self._remember(batch, marks, snapshot, states)
        elapsed = time.perf_counter() - started
        for n, m in enumerate(measured):
            self.metrics.record(m, elapsed if n == 0 else None)
        return recs

    def model_for(self, user: str) -> Recommender:
        """The model that makes this user's lists: their arm's in an A/B test."""
        return self.arms[self.split.arm(user)] if self.split is not None else self.recommender

    def _models(self) -> dict[str | None, Recommender]:
        """Arm → model: the A/B test's pinned versions, or the one served (arm None)."""
        if self.split is None:
            return {None: self.recommender}
        return {name: model for name, model in self.arms.items()}

    def _arms(self, steps: list[Step]) -> dict[str | None, list[Step]]:
        """Each step's arm (its user's, by the split's stable hash), steps grouped by arm."""
        groups: dict[str | None, list[Step]] = {}
        arm_of: dict[str, str | None] = {}
        for step in steps:
            user = step.valid.event.user_id
            if user not in arm_of:
                arm_of[user] = self.split.arm(user) if self.split is not None else None
            step.arm = arm_of[user]
            groups.setdefault(step.arm, []).append(step)
        return groups

    async def _read(self, batch: Sequence[Valid]) -> Snapshot:
        """States, served lists and watermarks from the cache where it has them, the rest (and
        the producers' event ids) from Redis in one round trip — none when all are cached."""
        part_of: dict[str, set[tuple[str, int]]] = {}
        for v in batch:
            part_of.setdefault(v.event.user_id, set()).add((v.source.topic, v.source.partition))
        states: dict[str, UserState] = {}
        served: dict[str, list[Served]] = {}
        for user, theirs in part_of.items():
            hit = self.cache.get(user, next(iter(theirs))) if len(theirs) == 1 else None
            if hit is not None:
                states[user], served[user] = hit
        users = sorted(u for u in part_of if u not in states)
        if not self._writing_users.isdisjoint(users):
            await self.settle()  # (evicted from the cache meanwhile) Redis must have it first
        parts = sorted({p for ps in part_of.values() for p in ps})
        marks = {p: self.cache.watermarks[p] for p in parts if p in self.cache.watermarks}
        unknown = [p for p in parts if p not in marks]
        eids = {(v.event.user_id, v.event.event_id) for v in batch if v.event.event_id}
        writing = eids & self._writing_event_ids  # known, if not yet to Redis
        stored = await self.store.read(users, unknown, sorted(eids - writing))
        states.update(stored.states)
        served.update(stored.served)
        marks.update(stored.watermarks)
        return Snapshot(states, marks, stored.known_event_ids | writing, served)

    def _remember(
        self,
        batch: Sequence[Valid],
        marks: dict[tuple[str, int], int],
        snapshot: Snapshot,
        states: dict[str, UserState],
    ) -> None:
        """After a successful write: what Redis now holds, for the next batches."""
        # A user's last event decides the partition they are cached with.
        parts = {v.event.user_id: (v.source.topic, v.source.partition) for v in batch}
        for user, part in parts.items():
            self.cache.put(user, part, states[user], snapshot.served[user])
        for part, offset in marks.items():
            known = self.cache.watermarks.get(part, snapshot.watermarks.get(part, -1))
            self.cache.watermarks[part] = max(known, offset)

    def _apply(
        self, batch: Sequence[Valid], snap: Snapshot, max_len: int
    ) -> tuple[dict[str, UserState], list[Step]]:
        """Fold the batch into the states; returns the final states and one step per event
        (whether it was applied, the user's state right after it)."""
        states = dict(snap.states)
        seen_ids = set(snap.known_event_ids)
        steps: list[Step] = []
        for v in batch:
            event, src = v.event, v.source
            part = (src.topic, src.partition)
            mark = snap.watermarks.get(part, -1)
            eid = (event.user_id, event.event_id) if event.event_id is not None else None
            duplicate = eid is not None and eid in seen_ids
            state = states[event.user_id]
            applied = not duplicate and src.offset > _applied_through(state, part, mark)
            if applied:
                category = self.catalog.category(event.item_id)
                at = (src.topic, src.partition, src.offset)
                state = states[event.user_id] = apply_event(
                    state, event, self.config.weights, max_len, category, at
                )
                if eid is not None:
                    seen_ids.add(eid)
            steps.append(Step(v, applied, state, counted=not duplicate and src.offset > mark))
        return states, steps

    def _recommend(self, recommender: Recommender, steps: list[Step]) -> None:
        """The model's list for every step whose user it can encode."""
        # Unavailable items join each user's exclusions: the index drops those by row number,
        # which is far cheaper than a per-candidate availability callback.
        unavailable = tuple(self.catalog.unavailable)
        requests = [Request(s.state.sequence, _excluded(s.state, unavailable)) for s in steps]
        for step, items in zip(steps, recommender.recommend(requests, self.config.k), strict=True):
            step.items, step.warm = items, bool(items)
        warm = [s for s in steps if s.warm]
        if warm:
            histories = [s.state.sequence for s in warm]
            reasons = self._reasons(recommender, histories, [s.ids for s in warm])
            for step, because in zip(warm, reasons, strict=True):
                step.because = because

    def _reasons(
        self,
        recommender: Recommender,
        histories: Sequence[Sequence[str]],
        lists: Sequence[Sequence[str]],
    ) -> list[list[list[str]]]:
        """Each list's ``because`` per item; empty ones when explanations are off."""
        if not self.config.explain:
            return [[[] for _ in items] for items in lists]
        return recommender.explain(histories, lists)

    async def _fill_cold(self, steps: list[Step]) -> None:
        """Trending items (in the user's favourite category when known) for users the model
        cannot encode yet."""
        cold = [step for step in steps if not step.items]
        if not cold:
            return
        favourite = [top_category(dict(step.state.categories)) for step in cold]
        ranked = await self._ranked(sorted(set(favourite), key=str), self.config.k)
        for step, cat in zip(cold, favourite, strict=True):
            step.items = self._pick_trending(ranked[cat], step.state)

    def _pick_trending(
        self,
        ranked: list[tuple[bytes, float]],
        state: UserState,
        k: int = 0,
        also: frozenset[str] = frozenset(),
    ) -> Scored:
        exclude, k = state.excluded, k or self.config.k
        out: Scored = []
        for raw, score in ranked:
            item = raw.decode()
            if item not in exclude and item not in also and self.catalog.available(item):
                out.append((item, float(score)))
                if len(out) == k:
                    break
        return out

    async def _ranked(
        self, categories: list[str | None], n: int
    ) -> dict[str | None, list[tuple[bytes, float]]]:
        """This epoch's trending items per category, enough of them to pick ``n`` after the
        user's and the catalogue's exclusions."""
        epoch = epoch_of(int(time.time() * 1000), self.config.trending_half_life_ms)
        return await self.store.trending(categories, epoch, fetch=n * 4 + 50)

    async def trending_now(self, category: str | None, n: int) -> Scored:
        """The ``n`` most popular available items now (in ``category``; None: overall)."""
        ranked = await self._ranked([category], n)
        return self._pick_trending(ranked[category], UserState(), n)

    async def list_now(
        self, user: str, state: UserState, ask: Ask
    ) -> tuple[Scored, list[list[str]], str]:
        """A list made now for a user in ``state`` (the HTTP API's; not published, not kept for
        attribution): the model's, kept to ``ask.category`` when given, else trending items in
        that category or the user's favourite. Returns (items, because, "model" or "trending")."""
        recommender = self.model_for(user)
        unavailable = tuple(self.catalog.unavailable)
        exclude = _excluded(state, unavailable) + tuple(ask.exclude)
        # A category filter after the model's ranking: fetch a wider list to filter.
        wanted = ask.n if ask.category is None else max(4 * ask.n, 100)
        (items,) = recommender.recommend([Request(state.sequence, exclude)], wanted)
        if ask.category is not None:
            items = [(i, s) for i, s in items if self.catalog.category(i) == ask.category]
        items = items[: ask.n]
        if items:
            (because,) = self._reasons(recommender, [state.sequence], [[i for i, _ in items]])
            return items, because, "model"
        category = ask.category or top_category(dict(state.categories))
        ranked = await self._ranked([category], ask.n)
        picked = self._pick_trending(ranked[category], state, ask.n, ask.exclude)
        return picked, [[] for _ in picked], "trending"

    def _measure(
        self, recommender: Recommender, steps: list[Step], hits: list[Hit], created: int
    ) -> BatchMetrics:
        """The batch's numbers for the online metrics."""
        applied = [step.valid for step in steps if step.counted]
        ids = [step.ids for step in steps]
        warm = [step.warm for step in steps]
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
            # Users this version reached for the first time: their first event, counted once.
            users=sum(1 for s in steps if s.counted and s.applied and s.state.events == 1),
        )

    def _diversity(
        self, recommender: Recommender, ids: list[list[str]], warm: list[bool]
    ) -> np.ndarray:
        """By category when the catalogue knows categories, else by the model's item vectors
        (lists the model made; trending items may be unknown to it); NaN: not measured."""
        if self.catalog.has_categories:
            return category_diversity(*category_codes(ids, self.catalog.category))
        out = np.full(len(ids), np.nan)
        rows = [b for b, w in enumerate(warm) if w]
        if rows:
            table = recommender.item_features([i for b in rows for i in ids[b]])
            if table is not None:
                out[rows] = embedding_diversity([len(ids[b]) for b in rows], table)
        return out

    def _record(self, step: Step, version: str, created: int) -> Outgoing:
        rec_id = f"{self._rec_prefix}{next(self._rec_counter):016x}"
        event, items = step.valid.event, step.items
        source = step.valid.source
        user = event.user_id
        payload = recommendation_json(
            rec_id, user, items, version, source, event.ts, created, step.because, step.arm
        )
        return Outgoing(rec_id, user, items, version, created, payload)

    def _batch_write(
        self,
        batch: Sequence[Valid],
        marks: dict[tuple[str, int], int],
        states: dict[str, UserState],
        steps: list[Step],
        recs: list[Outgoing],
        served: dict[str, list[Served]],
        measured: list[BatchMetrics],
    ) -> BatchWrite:
        """Everything the batch changed."""
        applied = [step.valid.event for step in steps if step.applied]
        counted = [step.valid for step in steps if step.counted]
        # A user's newest list is the last of their served lists (attribute_batch).
        newest = {rec.user_id: (rec, step) for rec, step in zip(recs, steps, strict=True)}
        latest = {user: _latest(rec, step) for user, (rec, step) in newest.items()}
        return BatchWrite(
            users={u: UserValue(states[u], lists, latest.get(u)) for u, lists in served.items()},
            event_ids=[(e.user_id, e.event_id) for e in applied if e.event_id],
            watermarks=marks,
            valid=len(batch),
            applied=len(counted),
            measured=measured,
            trending=self._trending_increments(counted),
        )

    async def _write(self, write: BatchWrite, behind: bool) -> None:
        """To the store in one atomic call, after the write made behind (Redis applies them in
        batch order); sent behind when asked and the last write did not fail."""
        calls = self.store.prepare(write)
        await self.settle()
        if not (behind and self._behind_ok):
            await self.store.send(calls)
            self._behind_ok = True
            return
        self.writing = asyncio.create_task(self._send_behind(calls, write.watermarks))
        # The task puts the call on the socket now, not when this thread next waits: redis-py
        # (8.1) takes two turns of the event loop to get there.
        for _ in range(SEND_TURNS):
            await asyncio.sleep(0)
        self._writing_users = frozenset(write.users)
        self._writing_event_ids = frozenset(write.event_ids)

    async def _send_behind(self, calls: list[ScriptCall], marks: dict[Partition, int]) -> None:
        """Send until Redis has it. After a transient failure the shared keys' call may have
        been applied with only its reply lost: the partitions' watermarks tell (one write is
        in flight at a time), so it is never applied twice; the users' calls (a cluster's)
        only set values and are simply sent again."""
        tried = False

        async def attempt() -> None:
            nonlocal tried
            shared = not (tried and await self.store.landed(marks))
            tried = True
            await self.store.send(calls, shared)

        await retry(attempt, "a batch's write")

    def _trending_increments(
        self, applied: list[Valid]
    ) -> dict[tuple[int, str | None, str], float]:
        """Summed decayed weights per (epoch, category or None for overall, item) for the
        batch's applied events."""
        totals: dict[tuple[int, str | None, str], float] = {}
        for v in applied:
            weight = self.config.weights.get(v.event.type, 0.0)
            if weight <= 0:
                continue
            epoch, inc = decayed_increment(weight, v.event.ts, self.config.trending_half_life_ms)
            item = v.event.item_id
            category = self.catalog.category(item)
            for target in (None, category) if category is not None else (None,):
                key = (epoch, target, item)
                totals[key] = totals.get(key, 0.0) + inc
        return totals


def _applied_through(state: UserState, part: tuple[str, int], mark: int) -> int:
    """The offset of ``part`` up to which ``state`` holds that partition's events: the one it
    records, else the partition's watermark (a state written before states recorded it, or
    last changed by another partition's event)."""
    if state.events == 0:
        return -1
    at = state.applied
    if at is None or at[0] != part[0] or at[1] != part[1]:
        return mark
    return at[2]


def _latest(rec: Outgoing, step: Step) -> Latest:
    """What a list's record holds beyond its served row (kept in the user's value)."""
    source = step.valid.source
    where = (source.topic, source.partition, source.offset)
    return Latest([float(s) for _, s in rec.items], where, step.valid.event.ts, step.arm)


def _excluded(state: UserState, unavailable: tuple[str, ...]) -> tuple[str, ...]:
    """The state's exclusions plus the unavailable items; no copy of a long history when
    nothing is unavailable."""
    return state.exclusions + unavailable if unavailable else state.exclusions


def _watermarks(batch: Sequence[Valid]) -> dict[tuple[str, int], int]:
    """The highest offset of the batch per (topic, partition)."""
    marks: dict[tuple[str, int], int] = {}
    for v in batch:
        key = (v.source.topic, v.source.partition)
        marks[key] = max(marks.get(key, -1), v.source.offset)
    return marks
