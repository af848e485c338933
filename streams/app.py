"""The faust application: topics declared once, one agent that reads like a sentence."""

from __future__ import annotations

import asyncio
import functools
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, cast

import faust
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError

from recstream.streams.batches import RawMessage, Rejected, Valid, reject, split_batch
from recstream.streams.connection import KafkaConnection, redis_client
from recstream.streams.decoding import Limits
from recstream.streams.processor import EventRecorder, Keys, Processor

log = logging.getLogger("recstream.worker")

# Infrastructure hiccups: wait and retry the same batch (offsets are not committed meanwhile).
TRANSIENT = (RedisConnectionError, RedisTimeoutError, OSError, asyncio.TimeoutError)


@dataclass(frozen=True)
class WorkerConfig:
    app_id: str = "recstream"
    topic_events: str = "events"
    topic_dlq: str = "events.dlq"
    topic_recommendations: str = "recommendations"
    partitions: int = 4
    batch_size: int = 256
    batch_wait_s: float = 0.005
    web_host: str = "127.0.0.1"
    web_port: int = 6066
    redis_url: str = "redis://127.0.0.1:6379/0"
    redis_password: str | None = None
    redis_prefix: str = "recstream"
    limits: Limits = field(default_factory=Limits)


def now_ms() -> int:
    return int(time.time() * 1000)


def raw_message(event: Any) -> RawMessage:
    """faust's event → our plain record (faust stamps record time in float seconds)."""
    msg = event.message
    return RawMessage(
        topic=msg.topic,
        partition=msg.partition,
        offset=msg.offset,
        timestamp_ms=int(msg.timestamp * 1000),
        key=msg.key,
        value=event.value,
    )


async def retry(op: Callable[[], Awaitable[None]], what: str, max_sleep_s: float = 5.0) -> None:
    """Run ``op`` until it succeeds when it fails for transient reasons (Redis/Kafka down)."""
    sleep = 0.1
    while True:
        try:
            await op()
            return
        except TRANSIENT as exc:
            log.warning("%s failed (%r); retrying in %.1fs", what, exc, sleep)
            await asyncio.sleep(sleep)
            sleep = min(sleep * 2, max_sleep_s)


async def process_isolating_failures(
    processor: Processor, batch: Sequence[Valid]
) -> list[Rejected]:
    """Process a batch; if it fails for a non-transient reason, retry event by event so that a
    poison event fails alone. Returns dead letters for the events that failed."""
    try:
        await retry(lambda: processor.process(batch), "processing a batch")
        return []
    except Exception:
        log.exception("batch of %d failed; retrying one event at a time", len(batch))
    failed = []
    for item in batch:
        try:
            await retry(functools.partial(processor.process, [item]), "processing an event")
        except Exception as exc:
            log.exception("event at %s failed", item.source)
            failed.append(reject(item.message, f"processing failed: {exc!r}", now_ms()))
    return failed


def micro_batches(stream: faust.StreamT, size: int, wait_s: float) -> AsyncIterator[list[Any]]:
    """Batches of at most ``size`` events, waiting at most ``wait_s`` for a batch to fill.
    faust acks (so commits) the events of a batch only once the loop body has finished."""
    # take_events is on the concrete Stream but missing from faust's StreamT interface.
    return cast(Any, stream).take_events(size, wait_s)


def create_app(kafka: KafkaConnection, config: WorkerConfig) -> faust.App:
    app = faust.App(
        config.app_id,
        broker=kafka.faust_broker(),
        broker_credentials=kafka.faust_credentials(),
        store="memory://",
        web_host=config.web_host,
        web_port=config.web_port,
        topic_partitions=config.partitions,
        consumer_auto_offset_reset="earliest",
        producer_acks=-1,
    )
    events = app.topic(
        config.topic_events,
        key_type=bytes,
        value_type=bytes,
        key_serializer="raw",
        value_serializer="raw",
    )
    dlq = app.topic(config.topic_dlq, key_serializer="raw", value_serializer="raw")

    async def send_dead_letters(rejected: Sequence[Rejected]) -> None:
        for item in rejected:
            await dlq.send(key=item.key, value=item.letter.model_dump_json().encode())

    # concurrency=1: state is per user and offsets must not be committed past an event still
    # in flight (faust-streaming issue #606).
    @app.agent(events, concurrency=1)
    async def consume(stream: faust.StreamT) -> None:
        redis = redis_client(config.redis_url, config.redis_password)
        recorder = EventRecorder(redis, Keys(config.redis_prefix))
        async for batch in micro_batches(stream, config.batch_size, config.batch_wait_s):
            valid, rejected = split_batch(map(raw_message, batch), now_ms(), config.limits)
            if valid:
                rejected += await process_isolating_failures(recorder, valid)
            if rejected:
                await send_dead_letters(rejected)
                count = functools.partial(recorder.count_rejected, len(rejected))
                await retry(count, "counting rejected events")

    return app
