"""The Redis key layout a deployment holds, and the moves from layouts 1 and 2 to layout 3.

Layout 1 named keys without Redis Cluster hash tags (``<prefix>:user:<id>:state``,
``<prefix>:stats`` …); layout 2 tagged them so that a Redis Cluster can hold them
(``<prefix>:user:{<id>}:state``, ``…:recs``, ``…:served``); layout 3 (``keys.py``) keeps
the tags and gives a user one compact value instead of those three (``uservalue.py``).
A worker checks the layout before it starts: a Redis with older data is refused with the
command that moves it (``recstream redis-migrate``), never half read.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass

import orjson

from recstream.streams.attribution import Served, served_from_json
from recstream.streams.keys import LAYOUT, Keys
from recstream.streams.state import UserState
from recstream.streams.store import RedisClient
from recstream.streams.uservalue import Latest, UserValue, pack

USER_KINDS = ("state", "recs", "served")
# Layout 1's keys outside the users', by their first segment after the prefix.
SHARED_ROOTS = ("stats", "offset", "trending", "catalog", "metrics", "workers")
MIGRATE_CHUNK = 500


class LayoutError(RuntimeError):
    """Redis holds a layout this version does not read."""


async def check_layout(redis: RedisClient, keys: Keys) -> None:
    """Layout 3, or no recstream data yet under the prefix (then marked layout 3)."""
    raw = await redis.get(keys.layout())
    if raw is not None:
        held = raw if isinstance(raw, str) else raw.decode()
        if held == "2":
            raise LayoutError(
                f"Redis holds recstream key layout 2 under prefix {keys.prefix!r} (three keys "
                "per user); stop every worker and run `recstream redis-migrate` once "
                "(docs/contract.md, Redis keys)"
            )
        if held != LAYOUT:
            raise LayoutError(
                f"Redis holds recstream key layout {held!r} under prefix "
                f"{keys.prefix!r}; this version reads layout {LAYOUT}"
            )
        return
    # Every layout-1 batch incremented <prefix>:stats: its presence means layout-1 data.
    if await redis.exists(f"{keys.prefix}:stats"):
        raise LayoutError(
            f"Redis holds recstream key layout 1 under prefix {keys.prefix!r} (keys without "
            "Redis Cluster hash tags); stop every worker and run `recstream redis-migrate` "
            "once (docs/contract.md, Redis keys)"
        )
    await redis.set(keys.layout(), LAYOUT, nx=True)


def layout2_name(keys: Keys, old: str) -> str | None:
    """The layout-2 name of a layout-1 key; None for a key that has none: a layout-2 key, a
    producer's event id (its user is not in its name; it expires within a week), or a key
    recstream did not write."""
    head = f"{keys.prefix}:"
    if not old.startswith(head) or old.startswith(keys.shared_head):
        return None
    rest = old[len(head) :]
    root, _, tail = rest.partition(":")
    if root == "user":
        user, _, kind = tail.rpartition(":")
        if not user or kind not in USER_KINDS or user.startswith("{"):
            return None
        return f"{keys.prefix}:user:{{{user}}}:{kind}"
    if root in SHARED_ROOTS:
        return f"{keys.shared_head}:{rest}"
    return None


@dataclass(frozen=True)
class Migrated:
    moved: int  # keys moved or merged into another
    left: dict[str, int]  # why a key under the prefix was left alone → how many
    users: int  # users whose layout-2 keys became one value


async def migrate(redis: RedisClient, keys: Keys) -> Migrated:
    """Move layout-1 keys to their layout-2 names, then each user's three layout-2 keys into
    their one layout-3 value, then mark the layout. Safe to run again."""
    renamed = await _rename_layout1(redis, keys)
    merged, users = await _merge_users(redis, keys)
    await redis.set(keys.layout(), LAYOUT)
    left = {k: n for k, n in renamed.left.items() if k != "layout 2 already"}
    return Migrated(renamed.moved + merged, left, users)


async def _rename_layout1(redis: RedisClient, keys: Keys) -> Migrated:
    """Every layout-1 key to its layout-2 name (value and time to live kept; DUMP and RESTORE,
    so it works across a cluster's nodes)."""
    moved, left = 0, Counter[str]()
    batch: list[tuple[str, str]] = []
    async for raw in redis.scan_iter(match=f"{keys.prefix}:*", count=1000):
        old = raw.decode()
        new = layout2_name(keys, old)
        if new is None:
            left[_why_left(keys, old)] += 1
            continue
        batch.append((old, new))
        if len(batch) >= MIGRATE_CHUNK:
            moved += await _move(redis, batch)
            batch = []
    if batch:
        moved += await _move(redis, batch)
    return Migrated(moved, dict(left), 0)


def _why_left(keys: Keys, key: str) -> str:
    if key.startswith(f"{keys.prefix}:eid:") and "{" not in key:
        return "layout-1 event ids (expire on their own)"
    if "{" in key:
        return "layout 2 already"  # (or 3: the user values, the shared keys)
    return "not recstream's"


async def _move(redis: RedisClient, pairs: list[tuple[str, str]]) -> int:
    async with redis.pipeline(transaction=False) as pipe:
        for old, _ in pairs:
            pipe.dump(old)
            pipe.pttl(old)
        got = await pipe.execute()
    moved = 0
    async with redis.pipeline(transaction=False) as pipe:
        for (old, new), dumped, ttl in zip(pairs, got[::2], got[1::2], strict=True):
            if dumped is None:  # expired or deleted since the scan
                continue
            pipe.restore(new, max(int(ttl), 0), dumped, replace=True)
            pipe.delete(old)
            moved += 1
        await pipe.execute()
    return moved


async def _merge_users(redis: RedisClient, keys: Keys) -> tuple[int, int]:
    """Each user's layout-2 ``state``, ``served`` and ``recs`` keys into one layout-3 value
    (the longest time to live of the three, none if one had none); returns (keys merged,
    users)."""
    head = f"{keys.prefix}:user:{{"
    users: set[str] = set()
    merged, done = 0, 0
    async for raw in redis.scan_iter(match=f"{head}*", count=1000):
        user, sep, kind = raw.decode()[len(head) :].rpartition("}:")
        if sep and kind in USER_KINDS:
            users.add(user)
        if len(users) >= MIGRATE_CHUNK:
            merged, done = merged + await _merge(redis, keys, sorted(users)), done + len(users)
            users.clear()
    if users:
        merged, done = merged + await _merge(redis, keys, sorted(users)), done + len(users)
    return merged, done


async def _merge(redis: RedisClient, keys: Keys, users: list[str]) -> int:
    old = [[f"{keys.prefix}:user:{{{u}}}:{kind}" for kind in USER_KINDS] for u in users]
    async with redis.pipeline(transaction=False) as pipe:
        for names in old:
            for name in names:
                pipe.get(name)
                pipe.pttl(name)
        got = await pipe.execute()
    merged = 0
    async with redis.pipeline(transaction=False) as pipe:
        for u, names, at in zip(users, old, range(0, len(got), 6), strict=True):
            (state, t1, recs, t2, served, t3) = got[at : at + 6]
            present = [t for v, t in ((state, t1), (recs, t2), (served, t3)) if v is not None]
            if not present:
                continue
            ttl = 0 if any(t < 0 for t in present) else max(present)
            value = pack(_value_of(state, served, recs))
            pipe.set(keys.user(u), value, px=ttl or None)
            pipe.delete(*names)
            merged += len(present)
        await pipe.execute()
    return merged


def _value_of(state: bytes | None, served: bytes | None, recs: bytes | None) -> UserValue:
    """A user's layout-3 value from their layout-2 strings. The newest list joins the served
    lists when they lack it (made before attribution kept lists); an unreadable newest list is
    dropped (the next event makes another), an unreadable state is an error."""
    lists = served_from_json(served)
    newest = _newest(recs)
    if newest is None:
        return UserValue(UserState.from_json(state), lists)
    row, latest = newest
    if not lists or lists[-1].rec_id != row.rec_id:
        lists.append(row)
    return UserValue(UserState.from_json(state), lists, latest)


def _newest(recs: bytes | None) -> tuple[Served, Latest] | None:
    """A layout-2 newest list (a ``recommendations`` record) as its served row and the rest."""
    if not recs:
        return None
    try:
        r = orjson.loads(recs)
        source = r["source"]
        items = [(i["item_id"], float(i["score"])) for i in r["items"]]
        row = Served(r["rec_id"], r["created_ts"], r["model_version"], [i for i, _ in items])
        where = (source["topic"], source["partition"], source["offset"])
        return row, Latest([s for _, s in items], where, r["event_ts"])
    except (ValueError, TypeError, KeyError):
        return None
