"""The optional item catalogue (``items`` topic): availability and categories.

Every worker needs the whole catalogue, but the ``items`` topic is split among the workers of a
group; so whoever consumes an update writes it to Redis, and each worker keeps an in-memory copy
that it reloads when the catalogue's version counter moves.
"""

from __future__ import annotations

from collections.abc import Mapping

from recstream.streams.keys import Keys
from recstream.streams.records import CatalogItem
from recstream.streams.store import RedisClient


class Catalog:
    def __init__(self, items: Mapping[str, CatalogItem] | None = None) -> None:
        self._items = dict(items or {})
        self._unavailable = frozenset(i for i, it in self._items.items() if not it.available)
        self.has_categories = any(it.category is not None for it in self._items.values())
        self.version = -1

    def __len__(self) -> int:
        return len(self._items)

    def available(self, item_id: str) -> bool:
        """Unknown items count as available: the catalogue is optional."""
        return item_id not in self._unavailable

    @property
    def unavailable(self) -> frozenset[str]:
        return self._unavailable

    def category(self, item_id: str) -> str | None:
        item = self._items.get(item_id)
        return item.category if item else None


async def store_items(redis: RedisClient, keys: Keys, items: list[CatalogItem]) -> None:
    async with redis.pipeline(transaction=True) as pipe:
        for item in items:
            pipe.hset(keys.catalog(), item.item_id, item.model_dump_json())
        pipe.incr(keys.catalog_version())
        await pipe.execute()


async def refresh(redis: RedisClient, keys: Keys, current: Catalog) -> Catalog:
    """The catalogue as Redis has it now; ``current`` itself when nothing changed."""
    raw_version = await redis.get(keys.catalog_version())
    version = int(raw_version or 0)
    if version == current.version:
        return current
    raw = await redis.hgetall(keys.catalog())
    fresh = Catalog({_text(k): CatalogItem.model_validate_json(v) for k, v in raw.items()})
    fresh.version = version
    return fresh


def _text(key: bytes | str) -> str:
    return key.decode() if isinstance(key, bytes) else key
