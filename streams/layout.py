"""The Redis key layout a deployment holds, and the move from layout 1 to layout 2.

Layout 1 named keys without Redis Cluster hash tags (``<prefix>:user:<id>:state``,
``<prefix>:stats`` …); layout 2 (``keys.py``) tags them so that a Redis Cluster can hold them.
A worker checks the layout before it starts: a Redis with layout-1 data is refused with the
command that moves it (``recstream redis-migrate``), never half read.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass

from recstream.streams.keys import LAYOUT, Keys
from recstream.streams.store import RedisClient

USER_KINDS = ("state", "recs", "served")
# Layout 1's keys outside the users', by their first segment after the prefix.
SHARED_ROOTS = ("stats", "offset", "trending", "catalog", "metrics", "workers")
MIGRATE_CHUNK = 500


class LayoutError(RuntimeError):
    """Redis holds a layout this version does not read."""


async def check_layout(redis: RedisClient, keys: Keys) -> None:
    """Layout 2, or no recstream data yet under the prefix (then marked layout 2)."""
    raw = await redis.get(keys.layout())
    if raw is not None:
        held = raw if isinstance(raw, str) else raw.decode()
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
        return {"state": keys.state, "recs": keys.recs, "served": keys.served}[kind](user)
    if root in SHARED_ROOTS:
        return f"{keys.shared_head}:{rest}"
    return None


@dataclass(frozen=True)
class Migrated:
    moved: int
    left: dict[str, int]  # why a key under the prefix was left alone → how many


async def migrate(redis: RedisClient, keys: Keys) -> Migrated:
    """Move every layout-1 key to its layout-2 name (value and time to live kept; DUMP and
    RESTORE, so it works across a cluster's nodes), then mark the layout. Safe to run again."""
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
    await redis.set(keys.layout(), LAYOUT)
    return Migrated(moved, dict(left))


def _why_left(keys: Keys, key: str) -> str:
    if key.startswith(f"{keys.prefix}:eid:") and "{" not in key:
        return "layout-1 event ids (expire on their own)"
    if "{" in key:
        return "layout 2 already"
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
