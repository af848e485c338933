"""``recstream rebuild-state``: Redis lost its data (wiped, failed over without a replica, a
restore too old) — rebuild every user's state, list and counter by replaying the logs.

Kafka keeps what Redis derives from: the ``events`` topic (for its retention) and the compacted
``items`` topic. With every worker stopped, this moves the workers' consumer groups back to the
oldest retained record of each (optionally deleting what is left under the Redis prefix
first); the workers, started again, replay them. The per-partition watermarks and the offsets
each state records are gone with the data, so every event applies again, exactly once
(docs/streams.md, Faults).
"""

from __future__ import annotations

import asyncio
from typing import Any

from kafka import KafkaAdminClient
from kafka.admin import OffsetSpec
from kafka.structs import TopicPartition

from recstream.settings import Settings
from recstream.streams.connection import KafkaConnection, redis_client
from recstream.streams.keys import Keys
from recstream.streams.layout import check_layout


class RebuildError(RuntimeError):
    """The rebuild cannot start (workers still running, a topic missing)."""


def catalogue_group(app_id: str) -> str:
    """The consumer group of the workers' catalogue reader (streams/app.py names it so)."""
    return f"{app_id}-catalogue"


def rebuild_state(
    s: Settings, kafka: KafkaConnection, redis_password: str | None, wipe: bool
) -> dict[str, Any]:
    admin = KafkaAdminClient(**kafka.kafka_python_kwargs())
    try:
        plan = {s.app_id: s.topic_events, catalogue_group(s.app_id): s.topic_items}
        _refuse_running(admin, list(plan))
        rewound = {group: _rewind(admin, group, topic) for group, topic in plan.items()}
    finally:
        admin.close()
    deleted = asyncio.run(_wipe(s.redis_url, redis_password, s.redis_prefix)) if wipe else 0
    return {"groups": rewound, "deleted_keys": deleted}


def _refuse_running(admin: KafkaAdminClient, groups: list[str]) -> None:
    for group, described in admin.describe_groups(groups).items():
        members = described.get("members") or []
        if members:
            raise RebuildError(
                f"consumer group {group!r} has {len(members)} active member(s); stop every "
                "worker first (a running worker would keep its own offsets)"
            )


def _rewind(admin: KafkaAdminClient, group: str, topic: str) -> dict[str, int]:
    """The group's offsets on ``topic`` to the oldest retained record; partition → offset."""
    described = admin.describe_topics([topic])
    if not described or described[0].get("error_code"):
        raise RebuildError(f"topic {topic!r} not found")
    partitions = [p["partition_index"] for p in described[0]["partitions"]]
    specs = {TopicPartition(topic, p): OffsetSpec.EARLIEST for p in partitions}
    result = admin.reset_group_offsets(group, specs)
    failed = {str(tp): r["error"] for tp, r in result.items() if r["error"].errno != 0}
    if failed:
        raise RebuildError(f"resetting {group!r} failed: {failed}")
    return {str(tp.partition): int(r["offset"]) for tp, r in sorted(result.items())}


async def _wipe(url: str, password: str | None, prefix: str) -> int:
    """Delete every key under the prefix (on every node of a cluster); mark the layout again."""
    client = redis_client(url, password)
    deleted = 0
    try:
        batch: list[Any] = []
        async for key in client.scan_iter(match=f"{prefix}:*", count=1000):
            batch.append(key)
            if len(batch) >= 1000:
                deleted += await client.delete(*batch)
                batch = []
        if batch:
            deleted += await client.delete(*batch)
        await check_layout(client, Keys(prefix))
    finally:
        await client.aclose()
    return deleted
