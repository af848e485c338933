"""The pipeline's Redis I/O, and nothing else: what a batch needs that the worker's cache lacks
(one round trip), everything a batch changes (one atomic script call), and the trending lists
of cold start. The pipeline hands over facts; key names, encodings and Lua live here."""

from __future__ import annotations

import asyncio
import hashlib
import logging
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass
from typing import Any

import orjson
from redis.asyncio import Redis
from redis.asyncio.cluster import RedisCluster
from redis.crc import key_slot
from redis.exceptions import (
    ClusterError,
    NoScriptError,
    OutOfMemoryError,
    ReadOnlyError,
    SlotNotCoveredError,
    TryAgainError,
)
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError

from recstream.streams.attribution import Served
from recstream.streams.keys import Keys
from recstream.streams.metrics import BatchMetrics, increment_args, merge_increments
from recstream.streams.state import UserState
from recstream.streams.trending import merge_epochs
from recstream.streams.uservalue import UserValue, pack, unpack

log = logging.getLogger("recstream.store")

Partition = tuple[str, int]  # (topic, partition)
RedisClient = Redis | RedisCluster
# The users' script calls of one batch in flight at once on a Redis Cluster.
CONCURRENT_CALLS = 16
# Infrastructure hiccups: the same call may succeed once Redis (or the network) is back; on
# a Redis Cluster also a node down or its slots moving. A Redis out of memory (maxmemory
# reached, noeviction) or read-only (a replica mid-failover) refuses every write alike: the
# partition waits for an operator or the failover rather than dead-letter every event.
TRANSIENT = (
    RedisConnectionError,
    RedisTimeoutError,
    ConnectionError,
    asyncio.TimeoutError,
    ClusterError,
    SlotNotCoveredError,
    TryAgainError,
    OutOfMemoryError,
    ReadOnlyError,
)


# redis-py 8.1's asyncio connections raise AttributeError or TypeError instead of
# ConnectionError when they write on a connection the peer has just closed (redis-py issues
# 3546 and 4287): the same race as a ConnectionError, which its own retries miss too.
_REDIS_CONNECTION_CODE = ("redis/asyncio/connection.py", "redis\\asyncio\\connection.py")


def transient(exc: BaseException) -> bool:
    """One of TRANSIENT, or redis-py's closed-writer race (an AttributeError or TypeError
    raised inside its asyncio connection code)."""
    if isinstance(exc, TRANSIENT):
        return True
    if not isinstance(exc, AttributeError | TypeError):
        return False
    frame = exc.__traceback__
    while frame is not None:
        if frame.tb_frame.f_code.co_filename.endswith(_REDIS_CONNECTION_CODE):
            return True
        frame = frame.tb_next
    return False


async def retry(op: Callable[[], Awaitable[Any]], what: str, max_sleep_s: float = 5.0) -> Any:
    """Run ``op`` until it succeeds when it fails for transient reasons (Redis/Kafka down):
    wait and retry the same work (offsets are not committed meanwhile)."""
    sleep = 0.1
    while True:
        try:
            return await op()
        except Exception as exc:
            if not transient(exc):
                raise
            log.warning("%s failed (%r); retrying in %.1fs", what, exc, sleep)
            await asyncio.sleep(sleep)
            sleep = min(sleep * 2, max_sleep_s)


@dataclass(frozen=True)
class Stored:
    """What Redis holds for some users, partitions and producers' event ids."""

    states: dict[str, UserState]
    served: dict[str, list[Served]]
    watermarks: dict[Partition, int]  # partitions without one are absent
    known_event_ids: set[tuple[str, str]]  # (user, producer's event id)


@dataclass(frozen=True)
class BatchWrite:
    """Everything one batch changes."""

    users: dict[str, UserValue]  # every user of the batch: state, served lists, newest list
    event_ids: list[tuple[str, str]]  # (user, producer's id) of the events applied to states
    watermarks: dict[Partition, int]  # the highest offset of the batch per partition
    valid: int
    applied: int  # events counted (not replays or duplicates of what the shared keys hold)
    measured: list[BatchMetrics]  # one per version that made lists (two or more in an A/B test)
    trending: dict[tuple[int, str | None, str], float]  # (epoch, category, item) → increment


@dataclass(frozen=True)
class ScriptCall:
    """One batch's write, ready to send."""

    keys: list[str]
    args: list[Any]
    new_versions: list[str]  # versions this call adds to metrics:versions


class StateStore:
    def __init__(
        self,
        redis: RedisClient,
        keys: Keys,
        event_id_ttl_s: int,
        trending_ttl_ms: int,
        user_ttl_ms: int = 0,  # the users' keys expire this long after their last write
    ):
        self.redis, self.keys = redis, keys
        self.event_id_ttl_s, self.trending_ttl_ms = event_id_ttl_s, trending_ttl_ms
        self.user_ttl_ms = user_ttl_ms
        # A Redis Cluster: scripts and MGETs one slot at a time.
        self.cluster = isinstance(redis, RedisCluster)
        # One Redis: registered once; redis-py calls it by its SHA and loads it again if Redis
        # forgot it. (A cluster: see _run.)
        self._script = None if self.cluster else redis.register_script(_BATCH_SCRIPT)
        self._registered: set[str] = set()  # versions this process added to metrics:versions

    async def read(
        self, users: list[str], partitions: list[Partition], event_ids: list[tuple[str, str]]
    ) -> Stored:
        """One round trip (none when nothing is asked); ``event_ids`` are (user, event id)."""
        keys = self.keys
        wanted = [keys.user(u) for u in users]
        wanted += [keys.watermark(t, p) for t, p in partitions]
        wanted += [keys.event_id(u, e) for u, e in event_ids]
        got = await self._mget(wanted) if wanted else []
        n, m = len(users), len(partitions)
        states, served = {}, {}
        for user, raw in zip(users, got[:n], strict=True):
            value = unpack(raw)
            states[user], served[user] = value.state, value.served
        read = zip(partitions, got[n : n + m], strict=True)
        marks = {p: int(w) for p, w in read if w is not None}
        hits = zip(event_ids, got[n + m :], strict=True)
        known = {pair for pair, hit in hits if hit}
        return Stored(states, served, marks, known)

    async def _mget(self, keys: list[str]) -> list[Any]:
        """One MGET; on a Redis Cluster one per slot, sent together."""
        if self.cluster:
            return list(await self.redis.mget_nonatomic(keys))  # type: ignore[union-attr]
        return list(await self.redis.mget(keys))

    def prepare(self, w: BatchWrite) -> list[ScriptCall]:
        """Everything the batch changes, as script calls (:meth:`send`); made now, because the
        batch's objects may change once it is handed over. A script call is atomic like a
        MULTI, and one command instead of a dozen (a command costs more in redis-py than the
        bytes it carries).

        On one Redis: one call. On a Redis Cluster a script touches one slot: the first call
        updates the shared keys (watermarks, counters, trending, metrics: one slot, so they
        stay exactly-once with the watermarks), then one call per slot of the users' keys
        (values, event ids). Those only set values, so sending one again changes
        nothing; the offset each state carries (``UserState.applied``) lets a replay redo
        exactly the users whose call did not land."""
        keys = self.keys
        values: dict[str, str | bytes] = {keys.user(u): pack(v) for u, v in w.users.items()}
        eids = [keys.event_id(user, e) for user, e in w.event_ids]
        if not self.cluster:
            return [self._call(values, eids, w)]
        by_slot: dict[int, tuple[dict[str, str | bytes], list[str]]] = {}
        for key, value in values.items():
            by_slot.setdefault(key_slot(key.encode()), ({}, []))[0][key] = value
        for key in eids:
            by_slot.setdefault(key_slot(key.encode()), ({}, []))[1].append(key)
        return [self._call({}, [], w)] + [self._call(v, e, None) for v, e in by_slot.values()]

    def _call(
        self, values: dict[str, str | bytes], eids: list[str], w: BatchWrite | None
    ) -> ScriptCall:
        """One script call: set ``values`` and the event ids; with ``w``, the shared keys too.
        Every key travels in KEYS (the values to set first, as plain arguments); the rest of
        the plan is one JSON argument that names keys by their place in KEYS."""
        table = KeyTable(values)
        plan: dict[str, Any] = {
            "m": len(values),  # the users' keys
            "uttl": self.user_ttl_ms,
            "e": [table(key) for key in eids],
            "ttl": self.event_id_ttl_s,
        }
        new_versions: list[str] = []
        if w is not None:
            keys = self.keys
            increments = merge_increments([m.increments() for m in w.measured])
            new_versions = sorted(set(increments) - self._registered)
            plan["z"] = [
                [table(keys.trending(e, c)), item, inc] for (e, c, item), inc in w.trending.items()
            ]
            # An epoch's sorted set is read during the next epoch too, then expires.
            plan["zttl"] = self.trending_ttl_ms
            # GREATEST semantics: a replay never moves a watermark backwards.
            plan["w"] = [
                [table(keys.watermark(t, p)), str(o)] for (t, p), o in w.watermarks.items()
            ]
            plan["h"] = self._counters(w, increments, table)
            plan["p"] = [
                [table(keys.metrics_items(m.version)), sorted(m.shown)] for m in w.measured
            ]
            plan["s"] = [size for m in w.measured for size in self._catalog_size(m, table)]
            plan["v"] = [table(keys.metrics_versions()), new_versions] if new_versions else []
        return ScriptCall(table.keys, [orjson.dumps(plan), *values.values()], new_versions)

    async def send(self, calls: list[ScriptCall], shared: bool = True) -> None:
        """Send a batch's calls (``shared=False``: all but the first, which updates the shared
        keys, when it is known to have landed). The first goes alone: the users' calls
        follow only once the shared keys hold the batch, all at once."""
        if shared:
            await self._run(calls[0])
            self._registered |= set(calls[0].new_versions)
        if len(calls) > 1:
            # At most CONCURRENT_CALLS at a time (the cluster client's pools are bounded),
            # and every call finished before a failure is raised: none is left running.
            gate = asyncio.Semaphore(CONCURRENT_CALLS)

            async def run(call: ScriptCall) -> None:
                async with gate:
                    await self._run(call)

            done = await asyncio.gather(*(run(c) for c in calls[1:]), return_exceptions=True)
            failed = next((r for r in done if isinstance(r, BaseException)), None)
            if failed is not None:
                raise failed

    async def _run(self, call: ScriptCall) -> None:
        if self._script is not None:
            await self._script(keys=call.keys, args=call.args)
            return
        # redis-py's cluster client has no script object: by SHA, loading the script into
        # the slot's node when it lacks it (a node restarted, or a new one).
        try:
            await self.redis.evalsha(_BATCH_SHA, len(call.keys), *call.keys, *call.args)
        except NoScriptError:
            await self.redis.eval(_BATCH_SCRIPT, len(call.keys), *call.keys, *call.args)

    async def landed(self, watermarks: dict[Partition, int]) -> bool:
        """Whether a batch's shared keys are in Redis (its first call moved these watermarks),
        when its reply was lost: true only while no later write of these partitions was made."""
        stored = await self.read([], sorted(watermarks), [])
        return all(stored.watermarks.get(p, -1) >= o for p, o in watermarks.items())

    def _counters(
        self, w: BatchWrite, increments: dict[str, dict[str, int | float]], table: KeyTable
    ) -> list[list[Any]]:
        stats = table(self.keys.stats())
        counters: list[list[Any]] = [[stats, "valid", str(w.valid)]]
        counters.append([stats, "applied", str(w.applied)])
        for version, fields in increments.items():
            key = table(self.keys.metrics(version))
            args = increment_args(fields)
            counters += [[key, args[i], args[i + 1]] for i in range(0, len(args), 2)]
        return counters

    def _catalog_size(self, measured: BatchMetrics, table: KeyTable) -> list[list[Any]]:
        if not measured.catalog_size:
            return []
        return [
            [table(self.keys.metrics(measured.version)), "catalog_size", str(measured.catalog_size)]
        ]

    async def trending(
        self, categories: list[str | None], epoch: int, fetch: int
    ) -> dict[str | None, list[tuple[bytes, float]]]:
        """The most popular items per category (None: overall), this epoch's and the previous
        one's merged; ``fetch`` + 1 of each."""
        async with self.redis.pipeline(transaction=False) as pipe:
            for cat in categories:
                for e in (epoch, epoch - 1):
                    pipe.zrevrange(self.keys.trending(e, cat), 0, fetch, withscores=True)
            replies = await pipe.execute()
        pairs = [merge_epochs(*replies[j : j + 2]) for j in range(0, len(replies), 2)]
        return dict(zip(categories, pairs, strict=True))


class KeyTable:
    """The KEYS of one script call: the keys to set first, in order, then every other key
    once, named in the plan by its 1-based place."""

    def __init__(self, first: Iterable[str]) -> None:
        self.keys: list[str] = list(first)
        self._at = {key: i + 1 for i, key in enumerate(self.keys)}

    def __call__(self, key: str) -> int:
        at = self._at.get(key)
        if at is None:
            self.keys.append(key)
            at = self._at[key] = len(self.keys)
        return at


# One batch's writes (or, on a Redis Cluster, one slot's share of them). KEYS: every key it
# touches, the first plan.m of them set to ARGV[2..m+1]; ARGV[1]: the plan (JSON), naming keys
# by place in KEYS; the parts a call lacks are absent from its plan.
_BATCH_SCRIPT = """
local d = cjson.decode(ARGV[1])
if d.uttl > 0 then
  for i = 1, d.m do redis.call('SET', KEYS[i], ARGV[i + 1], 'PX', d.uttl) end
else
  for i = 1, d.m do redis.call('SET', KEYS[i], ARGV[i + 1]) end
end
local touched = {}
for _, t in ipairs(d.z or {}) do
  redis.call('ZINCRBY', KEYS[t[1]], t[3], t[2])
  touched[t[1]] = true
end
for k, _ in pairs(touched) do redis.call('PEXPIRE', KEYS[k], d.zttl) end
for _, k in ipairs(d.e) do redis.call('SET', KEYS[k], 1, 'EX', d.ttl) end
for _, m in ipairs(d.w or {}) do
  local cur = tonumber(redis.call('GET', KEYS[m[1]]) or '-1')
  if tonumber(m[2]) > cur then redis.call('SET', KEYS[m[1]], m[2]) end
end
for _, h in ipairs(d.h or {}) do
  if string.find(h[3], '.', 1, true) then
    redis.call('HINCRBYFLOAT', KEYS[h[1]], h[2], h[3])
  else
    redis.call('HINCRBY', KEYS[h[1]], h[2], h[3])
  end
end
for _, p in ipairs(d.p or {}) do
  local shown = p[2]
  for i = 1, #shown, 4000 do
    redis.call('PFADD', KEYS[p[1]], unpack(shown, i, math.min(i + 3999, #shown)))
  end
end
for _, f in ipairs(d.s or {}) do redis.call('HSET', KEYS[f[1]], f[2], f[3]) end
if d.v and d.v[1] then redis.call('SADD', KEYS[d.v[1]], unpack(d.v[2])) end
return 0
"""
_BATCH_SHA = hashlib.sha1(_BATCH_SCRIPT.encode(), usedforsecurity=False).hexdigest()
