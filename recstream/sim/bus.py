"""The simulator's only line to the system: Kafka. Publishes the catalogue and events, and
reads the lists the worker answers them with, matched by the ``source`` of each list."""

from __future__ import annotations

import json
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:  # faust comes with the connection module: not needed to build worlds
    from recstream.streams.connection import KafkaConnection

# Where an event landed in the events topic: (partition, offset). A list's ``source`` names it.
Position = tuple[int, int]


class NoRecommendation(RuntimeError):
    def __init__(self, user: str, timeout_s: float) -> None:
        super().__init__(
            f"no recommendation for user {user} within {timeout_s:g} s — "
            "is `recstream worker` running?"
        )
        self.user = user


class Bus(Protocol):
    def publish_items(self, records: Sequence[dict[str, Any]]) -> None: ...

    def publish_events(self, events: Sequence[dict[str, Any]]) -> list[Position]:
        """Send events keyed by user, wait until the broker has them; their positions in order."""
        ...

    def collect(
        self, wanted: Mapping[Position, str], timeout_s: float
    ) -> dict[Position, dict[str, Any]]:
        """The lists answering the events at ``wanted`` (position → user id), by position.
        Raises :class:`NoRecommendation` when ``timeout_s`` passes without a wanted list."""
        ...


@dataclass(frozen=True)
class SimTopics:
    events: str
    recommendations: str
    items: str


class KafkaBus:
    """kafka-python producer and consumer; the consumer starts at the end of the
    recommendations topic, before anything is published, so no answer is missed."""

    def __init__(
        self, kafka: KafkaConnection, topics: SimTopics, partitions: int, replication: int = 0
    ) -> None:
        from kafka import KafkaConsumer, KafkaProducer
        from kafka.structs import TopicPartition

        from recstream.streams.topics import TopicSpec, ensure_topics

        # The same topics the worker creates, in case the simulator starts first.
        specs = [
            TopicSpec(topics.events, partitions),
            TopicSpec(topics.recommendations, partitions),
            TopicSpec(topics.items, partitions, compacted=True),
        ]
        ensure_topics(kafka, specs, replication=replication)
        self.topics = topics
        self.producer = KafkaProducer(**kafka.kafka_python_kwargs(), acks="all", linger_ms=5)
        self.consumer = KafkaConsumer(**kafka.kafka_python_kwargs(), enable_auto_commit=False)
        parts = self._partitions(topics.recommendations)
        assigned = [TopicPartition(topics.recommendations, p) for p in parts]
        self.consumer.assign(assigned)
        self.consumer.seek_to_end(*assigned)
        for tp in assigned:  # seek_to_end is lazy: resolve the end offsets now
            self.consumer.position(tp)

    def _partitions(self, topic: str, timeout_s: float = 30) -> set[int]:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            parts = self.consumer.partitions_for_topic(topic)
            if parts:
                return set(parts)
            time.sleep(0.2)
        raise RuntimeError(f"topic {topic} has no partitions after {timeout_s:g} s")

    def publish_items(self, records: Sequence[dict[str, Any]]) -> None:
        for rec in records:
            self.producer.send(
                self.topics.items, key=rec["item_id"].encode(), value=json.dumps(rec).encode()
            )
        self.producer.flush()

    def publish_events(self, events: Sequence[dict[str, Any]]) -> list[Position]:
        futures = [
            self.producer.send(
                self.topics.events, key=e["user_id"].encode(), value=json.dumps(e).encode()
            )
            for e in events
        ]
        self.producer.flush()
        return [(meta.partition, meta.offset) for meta in (f.get(timeout=30) for f in futures)]

    def collect(
        self, wanted: Mapping[Position, str], timeout_s: float
    ) -> dict[Position, dict[str, Any]]:
        pending = dict(wanted)
        got: dict[Position, dict[str, Any]] = {}
        deadline = time.monotonic() + timeout_s
        while pending:
            if time.monotonic() > deadline:
                raise NoRecommendation(pending[min(pending)], timeout_s)
            for records in self.consumer.poll(timeout_ms=200).values():
                for record in records:
                    rec = _decode(record.value)
                    position = self._source(rec)
                    # Answers to other events (reactions, probes, other producers) pass by.
                    if rec is not None and position is not None and position in pending:
                        del pending[position]
                        got[position] = rec
                        # Progress resets the clock: a slow worker is not a dead one.
                        deadline = time.monotonic() + timeout_s
        return got

    def _source(self, rec: dict[str, Any] | None) -> Position | None:
        src = rec.get("source") if rec else None
        if not isinstance(src, dict) or src.get("topic") != self.topics.events:
            return None
        part, offset = src.get("partition"), src.get("offset")
        return (part, offset) if isinstance(part, int) and isinstance(offset, int) else None

    def close(self) -> None:
        self.producer.close()
        self.consumer.close()


def _decode(raw: bytes | None) -> dict[str, Any] | None:
    try:
        value = json.loads(raw or b"")
    except ValueError:
        return None
    return value if isinstance(value, dict) else None
