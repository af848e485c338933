"""What the worker does with valid events, behind one small interface.

Step 2 of the roadmap ships :class:`EventRecorder`, which records each user's latest event and
counts events in Redis; the recommendation pipeline plugs in behind the same Protocol.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

from redis.asyncio import Redis

from recstream.streams.batches import Valid


class Processor(Protocol):
    async def process(self, batch: Sequence[Valid]) -> None:
        """Apply a batch of valid events; raise to have the batch retried."""


class Keys:
    """Redis key names, all under one prefix so several deployments can share a server."""

    def __init__(self, prefix: str) -> None:
        self.prefix = prefix

    def stats(self) -> str:
        return f"{self.prefix}:stats"

    def last_event(self, user_id: str) -> str:
        return f"{self.prefix}:user:{user_id}:last_event"


class EventRecorder:
    """Keeps the last event processed for each user and counts processed events."""

    def __init__(self, redis: Redis, keys: Keys) -> None:
        self._redis = redis
        self._keys = keys

    async def process(self, batch: Sequence[Valid]) -> None:
        # One round trip per batch, whatever its size.
        async with self._redis.pipeline(transaction=False) as pipe:
            for item in batch:
                payload = item.event.model_dump_json(exclude_none=True)
                pipe.set(self._keys.last_event(item.event.user_id), payload)
            pipe.hincrby(self._keys.stats(), "valid", len(batch))
            await pipe.execute()

    async def count_rejected(self, n: int) -> None:
        await self._redis.hincrby(self._keys.stats(), "rejected", n)
