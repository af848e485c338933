"""Create recstream's topics when they are missing (synchronous, before the worker starts)."""

from __future__ import annotations

import logging
from collections.abc import Iterable
from dataclasses import dataclass

from kafka.admin import KafkaAdminClient, NewTopic
from kafka.errors import TopicAlreadyExistsError

from recstream.streams.connection import KafkaConnection

log = logging.getLogger("recstream.topics")


@dataclass(frozen=True)
class TopicSpec:
    name: str
    partitions: int
    compacted: bool = False


def ensure_topics(
    kafka: KafkaConnection, specs: Iterable[TopicSpec], replication: int = 0, timeout_s: float = 30
) -> None:
    """Create each topic that does not exist yet; existing topics are left exactly as they are.
    ``replication`` 0: the brokers' default.replication.factor."""
    admin = KafkaAdminClient(
        **kafka.kafka_python_kwargs(), request_timeout_ms=int(timeout_s * 1000)
    )
    try:
        existing = set(admin.list_topics())
        missing = [s for s in specs if s.name not in existing]
        for spec in missing:
            config = {"cleanup.policy": "compact"} if spec.compacted else {}
            factor = replication if replication > 0 else -1  # -1: the broker decides
            topic = NewTopic(spec.name, spec.partitions, factor, topic_configs=config)
            try:
                admin.create_topics([topic])
                log.info("created topic %s (%d partitions)", spec.name, spec.partitions)
            except TopicAlreadyExistsError:
                pass  # another worker created it first
    finally:
        admin.close()
