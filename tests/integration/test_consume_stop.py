"""Stopping the events consumer with the real broker: the batch in hand is committed and the
group is left before the producer would stop (a worker's SIGTERM), so nothing is read twice."""

from __future__ import annotations

import asyncio

from kafka import KafkaConsumer, KafkaProducer
from kafka.structs import TopicPartition

from recstream.streams.connection import KafkaConnection
from recstream.streams.consume import ConsumerConfig, EventConsumer

from .conftest import Names


def _committed(bootstrap: str, names: Names) -> int:
    consumer = KafkaConsumer(bootstrap_servers=bootstrap, group_id=names.app_id)
    try:
        parts = [TopicPartition(names.events, p) for p in range(4)]
        return sum(consumer.committed(tp) or 0 for tp in parts)
    finally:
        consumer.close()


def test_stop_commits_what_was_handled_and_ends_the_run(
    kafka_bootstrap: str, names: Names, producer: KafkaProducer
) -> None:
    for n in range(200):
        producer.send(names.events, key=f"u{n % 7}".encode(), value=b"{}")
    producer.flush()
    handled: list[int] = []

    async def handle(batch):
        handled.extend(m.offset for m in batch)
        return []

    async def flush() -> None:
        return None

    async def scenario() -> None:
        config = ConsumerConfig(batch_size=16, commit_interval_s=60.0, session_timeout_s=6.0)
        events = EventConsumer(
            KafkaConnection(kafka_bootstrap), names.events, names.app_id, config, handle, flush
        )
        run = asyncio.create_task(events.run())
        while len(handled) < 50:  # mid-stream: later records are still unread
            await asyncio.sleep(0.01)
        await events.stop(timeout_s=20)
        assert run.done(), "run() still going after stop()"
        await run  # returns, no exception
        assert events.stopping

    asyncio.run(asyncio.wait_for(scenario(), 60))
    # Every handled record, and no more, is committed: a successor starts right after them.
    assert _committed(kafka_bootstrap, names) == len(handled)
