"""The faust application: topics declared once, agents that read like a sentence."""

from __future__ import annotations

import asyncio
import functools
import json
import logging
import os
import socket
import tempfile
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, cast

import faust
from faust.web import Request, View
from faust.web import Response as WebResponse
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest
from prometheus_client.process_collector import ProcessCollector

from recstream.streams.ab import Split
from recstream.streams.api import Api, add_api
from recstream.streams.batches import (
    RawMessage,
    Rejected,
    Valid,
    parse_items,
    reject,
    split_batch,
)
from recstream.streams.catalog import refresh, store_items
from recstream.streams.connection import KafkaConnection, redis_client
from recstream.streams.consume import ConsumerConfig, EventConsumer
from recstream.streams.decoding import Limits
from recstream.streams.keys import Keys
from recstream.streams.metrics import OnlineMetrics
from recstream.streams.pipeline import Outgoing, Pipeline, PipelineConfig, StoreFailed
from recstream.streams.recommender import ModelRecommender, Recommender
from recstream.streams.records import ModelUpdate
from recstream.streams.snapshots import read_cluster, read_events, snapshot
from recstream.streams.store import RedisClient, retry, transient
from recstream.streams.swap import follow, load_update

log = logging.getLogger("recstream.worker")


@dataclass(frozen=True, kw_only=True)
class WorkerConfig:
    """Everything a worker is configured with, as plain values. No defaults here: the
    settings (recstream/settings.py) are their one home, and recstream.serving maps them."""

    app_id: str
    topic_events: str
    topic_dlq: str
    topic_recommendations: str
    topic_items: str
    topic_model_updates: str
    topic_metrics: str
    partitions: int
    web_host: str
    web_port: int
    redis_url: str
    redis_password: str | None
    redis_prefix: str
    limits: Limits
    pipeline: PipelineConfig
    # Micro-batches, commits and the group's session timeout (faust's catalogue consumer too).
    consumer: ConsumerConfig
    mmr_by_category: bool
    metrics_interval_s: float
    worker_id: str  # empty: host-pid
    artifacts_root: Path  # where announced versions are looked for
    catalog_refresh_s: float = 1.0  # how stale a worker's copy of the catalogue may get
    ab_split: Split | None = None  # an A/B test between pinned versions (RECSTREAM_AB)


def default_worker_id() -> str:
    return f"{socket.gethostname()}-{os.getpid()}"


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


async def process_isolating_failures(
    pipeline: Pipeline, batch: Sequence[Valid]
) -> tuple[list[Outgoing], list[Rejected]]:
    """Process a batch, writing behind; if it fails for a non-transient reason, retry event by
    event, each written at once, so that a poison event fails alone. Returns the lists made and
    dead letters for events that failed. :class:`StoreFailed` (an earlier batch's write) is
    raised: the consumer must resume from its last commit."""
    try:
        process = functools.partial(pipeline.process, batch, behind=True)
        return await retry(process, "processing a batch"), []
    except StoreFailed:
        raise
    except Exception:
        log.exception("batch of %d failed; retrying one event at a time", len(batch))
    recs: list[Outgoing] = []
    failed: list[Rejected] = []
    for item in batch:
        try:
            recs += await retry(functools.partial(pipeline.process, [item]), "processing an event")
        except Exception as exc:
            log.exception("event at %s failed", item.source)
            failed.append(reject(item.message, f"processing failed: {exc!r}", now_ms()))
    return recs, failed


def micro_batches(stream: faust.StreamT, size: int, wait_s: float) -> AsyncIterator[list[Any]]:
    """Batches of at most ``size`` events, waiting at most ``wait_s`` for a batch to fill.
    faust acks (so commits) the events of a batch only once the loop body has finished."""
    # take_events is on the concrete Stream but missing from faust's StreamT interface.
    return cast(Any, stream).take_events(size, wait_s)


def _faust_dir() -> Path:
    path = Path(tempfile.gettempdir()) / "recstream-faust"
    path.mkdir(parents=True, exist_ok=True)  # faust creates only the last level
    return path


def raw_topic(app: faust.App, name: str) -> faust.TopicT:
    """Bytes in, bytes out: validation is ours, so that bad input reaches the DLQ, not a log."""
    return app.topic(
        name, key_type=bytes, value_type=bytes, key_serializer="raw", value_serializer="raw"
    )


def create_app(
    kafka: KafkaConnection,
    config: WorkerConfig,
    recommender: Recommender,
    load: Callable[[Path], Recommender] | None = None,
    arms: dict[str, Recommender] | None = None,
) -> faust.App:
    """The worker. ``load`` (artifact version directory → recommender) enables hot swaps;
    ``arms`` are the models of ``config.ab_split``'s arms, by name."""
    app = faust_app(kafka, config)
    keys = Keys(config.redis_prefix)
    redis = redis_client(config.redis_url, config.redis_password)
    metrics = OnlineMetrics(recommender.version, now_ms())
    pipeline = Pipeline(redis, keys, recommender, config.pipeline, metrics=metrics)
    output = Output(app, config, redis, keys)
    swapper = ModelSwapper(pipeline, metrics, redis, keys, config)
    pipeline.recommender = swapper.prepare(recommender)
    if config.ab_split is not None:
        pinned = {name: swapper.prepare(model) for name, model in (arms or {}).items()}
        pipeline.start_test(config.ab_split, pinned)
        metrics.ab = config.ab_split.spec
    consumer = add_events(app, kafka, config, pipeline, output)
    add_catalogue(app, config, pipeline, output)
    add_model_updates(app, kafka, config, swapper, load)
    add_metrics(app, config, swapper)
    add_web(app, metrics)
    add_api(app, _api(app, config, pipeline, output, consumer))
    app.pipeline = pipeline  # type: ignore[attr-defined]
    app.events_consumer = consumer  # type: ignore[attr-defined]
    return app


def faust_app(kafka: KafkaConnection, config: WorkerConfig) -> faust.App:
    return faust.App(
        # The events group is config.app_id (see consume.py); faust's own consumer, for the
        # catalogue, joins a group of its own: the two use different assignment protocols.
        f"{config.app_id}-catalogue",
        broker=kafka.faust_broker(),
        broker_credentials=kafka.faust_credentials(),
        store="memory://",
        # faust keeps nothing of ours on disk (memory store); keep its folder out of the cwd.
        datadir=str(_faust_dir() / "{conf.name}-data"),
        web_host=config.web_host,
        web_port=config.web_port,
        topic_partitions=config.partitions,
        consumer_auto_offset_reset="earliest",
        producer_acks=-1,
        broker_session_timeout=config.consumer.session_timeout_s,
        broker_heartbeat_interval=min(3.0, config.consumer.session_timeout_s / 3),
        # Without linger every list is its own produce request; 2 ms batches them at high rates.
        producer_linger=0.002,
    )


class Output:
    """Lists to ``recommendations``, rejected input to the DLQ, straight to faust's producer
    (its Topic.send wraps every message in futures and callbacks we do not use). Returns the
    delivery futures: the consumer commits only once they are delivered."""

    def __init__(
        self, app: faust.App, config: WorkerConfig, redis: RedisClient, keys: Keys
    ) -> None:
        self.app, self.config, self.redis, self.keys = app, config, redis, keys

    async def lists(self, recs: Sequence[Outgoing]) -> list[Awaitable[Any]]:
        send, topic = self.app.producer.send, self.config.topic_recommendations
        return [await send(topic, r.user_id.encode(), r.payload, None, None, None) for r in recs]

    async def dead_letters(self, rejected: Sequence[Rejected]) -> list[Awaitable[Any]]:
        send, topic = self.app.producer.send, self.config.topic_dlq
        sent = []
        for item in rejected:
            value = item.letter.model_dump_json().encode()
            sent.append(await send(topic, item.key, value, None, None, None))
        count = functools.partial(self.redis.hincrby, self.keys.stats(), "rejected", len(rejected))
        await retry(count, "counting")
        return sent


def add_events(
    app: faust.App,
    kafka: KafkaConnection,
    config: WorkerConfig,
    pipeline: Pipeline,
    output: Output,
) -> EventConsumer:
    """The events consumer (aiokafka, beside faust) and the task that keeps it running."""

    async def handle(batch: Sequence[RawMessage]) -> list[Awaitable[Any]]:
        valid, rejected = split_batch(batch, now_ms(), config.limits)
        recs, failed = await process_isolating_failures(pipeline, valid) if valid else ([], [])
        sent = await output.lists(recs)
        if pipeline.writing is not None:  # committed only once Redis has the batch too
            sent.append(pipeline.writing)
        if rejected or failed:
            sent += await output.dead_letters(rejected + failed)
        return sent

    consumer = EventConsumer(
        kafka,
        config.topic_events,
        config.app_id,
        config.consumer,
        handle,
        app.producer.flush,
        lag=pipeline.metrics.lag,
        on_rebalance=pipeline.forget,
    )

    @app.task
    async def consume_events() -> None:
        while not (consumer.stopping or app.should_stop):
            try:
                await consumer.run()
            except Exception:
                if consumer.stopping or app.should_stop:
                    break
                # Nothing past the last commit is lost: a new consumer resumes from it.
                log.exception(
                    "reading %s failed; resuming from the last commit in 2 s", config.topic_events
                )
                await asyncio.sleep(2.0)

    @app.on_before_shutdown.connect
    async def stop_consuming(sender: Any, /, *args: Any, signal: Any, **kwargs: Any) -> None:
        # Before the producer stops: the batch in hand is delivered and committed, and the
        # group is left, so the partitions move on at once and nothing is read twice.
        await consumer.stop()

    return consumer


def add_catalogue(app: faust.App, config: WorkerConfig, pipeline: Pipeline, output: Output) -> None:
    """The ``items`` topic into Redis, and every worker's copy of it refreshed on a timer."""
    redis, keys = pipeline.redis, pipeline.keys

    @app.agent(raw_topic(app, config.topic_items), concurrency=1)
    async def catalogue(stream: faust.StreamT) -> None:
        async for batch in micro_batches(stream, 500, 0.05):
            items, rejected = parse_items([raw_message(e) for e in batch], now_ms())
            if items:
                await retry(functools.partial(store_items, redis, keys, items), "storing items")
            if rejected:
                await output.dead_letters(rejected)

    @app.timer(config.catalog_refresh_s)
    async def reload_catalogue() -> None:
        try:
            pipeline.catalog = await refresh(redis, keys, pipeline.catalog)
        except Exception as exc:
            if not transient(exc):
                raise
            log.warning("catalogue refresh failed: %r", exc)


class ModelSwapper:
    """Hands announced versions to the pipeline between batches, and records in Redis which
    version this worker serves since when."""

    def __init__(
        self,
        pipeline: Pipeline,
        metrics: OnlineMetrics,
        redis: RedisClient,
        keys: Keys,
        config: WorkerConfig,
    ) -> None:
        self.pipeline, self.metrics, self.redis, self.keys = pipeline, metrics, redis, keys
        self.config = config
        self.worker_id = config.worker_id or default_worker_id()

    def prepare(self, model: Recommender) -> Recommender:
        """Category similarity for MMR, when configured, from the catalogue of the moment."""
        if self.config.mmr_by_category and isinstance(model, ModelRecommender):
            return model.with_categories(lambda item: self.pipeline.catalog.category(item))
        return model

    async def record_serving(self) -> None:
        """Which version this worker serves since when, for scripts that wait for a swap."""
        m = self.metrics
        entry = {"version": m.serving, "since_ms": m.since_ms, "seen_ms": now_ms()}
        await self.redis.hset(self.keys.workers(), self.worker_id, json.dumps(entry))

    async def apply(self, load: Callable[[Path], Recommender], update: ModelUpdate) -> bool:
        current = self.pipeline.recommender.version
        log.info("model %s announced (%s); serving %s", update.version, update.path, current)
        try:
            fresh = self.prepare(await load_update(update, self.config.artifacts_root, load))
        except Exception as exc:
            log.error("refusing model %s, still serving %s: %s", update.version, current, exc)
            self.metrics.refuse(update.version, str(exc), now_ms())
            count = functools.partial(self.redis.hincrby, self.keys.stats(), "swap_failures", 1)
            await retry(count, "counting")
            return False
        if self.pipeline.split is not None:
            log.info(
                "A/B test %s: %s is loaded but serves no arm",
                self.pipeline.split.spec,
                fresh.version,
            )
        # The pipeline takes the recommender once per batch: the swap lands between batches.
        self.pipeline.recommender = fresh
        self.metrics.serve(fresh.version, now_ms())
        self.metrics.swaps["ok"] += 1
        log.info("now serving model %s", fresh.version)
        await retry(self.record_serving, "recording the served version")
        return True


def add_model_updates(
    app: faust.App,
    kafka: KafkaConnection,
    config: WorkerConfig,
    swapper: ModelSwapper,
    load: Callable[[Path], Recommender] | None,
) -> None:
    @app.task
    async def follow_model_updates() -> None:
        await retry(swapper.record_serving, "recording the served version")
        if load is None:
            return
        apply = functools.partial(swapper.apply, load)
        topic = config.topic_model_updates
        while True:
            try:
                await follow(kafka, topic, lambda: swapper.pipeline.recommender.version, apply)
            except Exception:
                log.exception("following %s failed; again in 2 s", topic)
                await asyncio.sleep(2.0)


def add_metrics(app: faust.App, config: WorkerConfig, swapper: ModelSwapper) -> None:
    """A snapshot on the ``metrics`` topic every interval (the heartbeat in Redis with it)."""
    worker_id = swapper.worker_id

    @app.timer(config.metrics_interval_s)
    async def publish_metrics() -> None:
        try:
            cluster = await read_cluster(swapper.redis, swapper.keys)
            events = await read_events(swapper.redis, swapper.keys)
            await swapper.record_serving()  # doubles as a heartbeat (seen_ms)
        except Exception as exc:
            if not transient(exc):
                raise
            log.warning("metrics snapshot skipped: %r", exc)
            return
        record = snapshot(worker_id, now_ms(), swapper.metrics, cluster, events)
        value = json.dumps(record, separators=(",", ":")).encode()
        await app.producer.send(config.topic_metrics, worker_id.encode(), value, None, None, None)


def _api(
    app: faust.App,
    config: WorkerConfig,
    pipeline: Pipeline,
    output: Output,
    consumer: EventConsumer,
) -> Api:
    """The HTTP API around this worker's pipeline, producer and events consumer."""

    async def send_events(pairs: list[tuple[bytes, bytes]]) -> None:
        send, topic = app.producer.send, config.topic_events
        sent = [await send(topic, key, value, None, None, None) for key, value in pairs]
        await asyncio.gather(*sent)  # delivered (acks=all) before the API answers

    async def dead_letters(rejected: list[Rejected]) -> None:
        await asyncio.gather(*await output.dead_letters(rejected))

    async def kafka_ready() -> bool:
        kafka = consumer.consumer  # None until the consumer has started
        return kafka is not None and config.topic_events in await kafka.topics()

    return Api(
        pipeline,
        pipeline.redis,
        pipeline.keys,
        config.limits,
        send_events,
        dead_letters,
        kafka_ready,
    )


def add_web(app: faust.App, metrics: OnlineMetrics) -> None:
    """``/metrics`` (Prometheus); the API is ``api.py``."""
    registry = CollectorRegistry()
    registry.register(metrics)
    ProcessCollector(registry=registry)

    @app.page("/metrics")
    async def prometheus(web: View, request: Request) -> WebResponse:
        """This process's metrics in Prometheus' text format."""
        # As a header: aiohttp refuses a charset inside its content_type argument.
        headers = {"Content-Type": CONTENT_TYPE_LATEST}
        return web.bytes(generate_latest(registry), headers=headers)
