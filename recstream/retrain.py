"""The retrain job: read the event log, train (warm), index, publish ``v<N>``, announce it.

The log is read with kafka-python, without a consumer group: every partition from the
beginning (or, ``since_last``, from the end offsets the current version recorded) up to the end
offsets captured when the read started. Records are validated exactly as the worker validates
them; an invalid one is counted and skipped. The offsets a version was trained up to are kept in
its ``log_offsets.json`` (covered by the manifest), so the next run knows where to continue.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from kafka import KafkaConsumer, KafkaProducer
from kafka.errors import KafkaError
from kafka.structs import TopicPartition

from recstream.artifacts import (
    MANIFEST,
    ArtifactError,
    newest_version,
    read_manifest,
    sha256_file,
    verify_manifest,
    version_sha256,
)
from recstream.model.artifact import LoadedModel, load_artifact, save_artifact
from recstream.model.config import (
    COLD_EPOCHS,
    MIN_EVENTS,
    RETRAIN_EPOCHS,
    ModelConfig,
    TrainConfig,
)
from recstream.model.data import Interactions
from recstream.model.training import Trained, train
from recstream.serving import kafka_connection
from recstream.settings import Settings
from recstream.streams.batches import RawMessage, split_batch
from recstream.streams.connection import KafkaConnection
from recstream.streams.decoding import Limits
from recstream.streams.records import ModelUpdate
from recstream.streams.topics import TopicSpec, ensure_topics

log = logging.getLogger("recstream.retrain")

OFFSETS_FILE = "log_offsets.json"
STALL_S = 60.0  # a read that gets no record for this long while behind the end offsets fails


class RetrainError(ValueError):
    """Retraining is refused (too few events, no such topic) or the log cannot be read."""


@dataclass(frozen=True)
class LogOffsets:
    """Where a read of ``topic`` stopped: partition -> the next offset it did not read."""

    topic: str
    end: dict[int, int]

    def to_json(self) -> bytes:
        payload = {"topic": self.topic, "end": {str(p): o for p, o in sorted(self.end.items())}}
        return (json.dumps(payload, indent=2) + "\n").encode()

    @classmethod
    def from_json(cls, data: bytes) -> LogOffsets:
        try:
            raw = json.loads(data)
            topic, end = raw["topic"], raw["end"]
            if not isinstance(topic, str) or not isinstance(end, dict):
                raise TypeError("expected {'topic': str, 'end': {partition: offset}}")
            offsets = {int(p): o for p, o in end.items()}
            if not all(type(o) is int and o >= 0 for o in offsets.values()):
                raise TypeError("offsets must be non-negative integers")
        except (UnicodeDecodeError, json.JSONDecodeError, KeyError, TypeError, ValueError) as exc:
            raise ArtifactError(f"{OFFSETS_FILE}: unreadable log offsets ({exc})") from exc
        return cls(topic, offsets)


def recorded_offsets(version_dir: Path) -> LogOffsets | None:
    """The log offsets ``version_dir`` was trained up to (verified); None if it has none, e.g.
    a version trained from a dataset file."""
    if OFFSETS_FILE not in read_manifest(version_dir)["files"]:
        return None
    verify_manifest(version_dir, [OFFSETS_FILE])
    return LogOffsets.from_json((version_dir / OFFSETS_FILE).read_bytes())


def start_offsets(
    recorded: LogOffsets | None, topic: str, begin: Mapping[int, int], end: Mapping[int, int]
) -> dict[int, int]:
    """Where to start reading each partition of ``topic``: after what ``recorded`` read, or at
    the beginning where it read nothing, read another topic, or holds an offset the log no
    longer has (retention deleted it, or the topic was recreated)."""
    if recorded is not None and recorded.topic != topic:
        log.warning("last version read topic %r, not %r: reading all", recorded.topic, topic)
        recorded = None
    starts = {}
    for partition, first in sorted(begin.items()):
        previous = recorded.end.get(partition, first) if recorded else first
        if previous > end[partition]:
            log.warning(
                "partition %d ends at %d, before the recorded %d: topic recreated?",
                partition,
                end[partition],
                previous,
            )
            previous = first
        starts[partition] = max(previous, first)
    return starts


@dataclass(frozen=True)
class LogRead:
    """The valid events of one read of the log, as interactions, and what was left out."""

    interactions: Interactions
    topic: str
    start: dict[int, int]
    end: dict[int, int]
    records: int  # every record read, valid or not
    skipped: int  # invalid records (what the worker would dead-letter)
    duplicates: int  # repeated event_ids, each used once
    seconds: float
    errors: list[str] = field(default_factory=list)  # the first few reasons for skipping

    @property
    def events(self) -> int:
        return len(self.interactions)

    @property
    def offsets(self) -> LogOffsets:
        return LogOffsets(self.topic, self.end)

    def files(self) -> dict[str, bytes]:
        """Files to store beside the model trained on this read."""
        return {OFFSETS_FILE: self.offsets.to_json()}

    def describe(self, trained: Trained, event_weights: Mapping[str, float]) -> dict[str, Any]:
        """The artifact's ``dataset`` entry (metrics.json and manifest)."""
        return {
            "name": "kafka",
            "topic": self.topic,
            "start": {str(p): o for p, o in sorted(self.start.items())},
            "end": {str(p): o for p, o in sorted(self.end.items())},
            "reload": f"recstream.retrain.read_events(settings, start=<start>) on {self.topic!r}",
            "records": self.records,
            "skipped": self.skipped,
            "duplicates": self.duplicates,
            "n_interactions": self.events,
            "n_users": len(trained.split.train),
            "n_items": len(trained.vocab),
            "n_eval_users": len(trained.split.eval_rows),
            "event_weights": dict(event_weights),
        }


def read_events(
    settings: Settings,
    *,
    start: LogOffsets | None = None,
    stall_s: float = STALL_S,
) -> LogRead:
    """Read ``settings.topic_events`` after ``start`` (all of it without) up to its end now."""
    kafka = kafka_connection(settings)
    limits = Limits(settings.max_event_bytes, settings.max_future_skew_ms)
    try:
        return _read(kafka, settings.topic_events, start, limits, stall_s)
    except KafkaError as exc:
        raise RetrainError(
            f"cannot read {settings.topic_events!r} from {settings.kafka_bootstrap}: {exc!r}"
        ) from exc


def _read(
    kafka: KafkaConnection,
    topic: str,
    recorded: LogOffsets | None,
    limits: Limits,
    stall_s: float,
) -> LogRead:
    started = time.perf_counter()
    consumer = KafkaConsumer(**kafka.kafka_python_kwargs(), group_id=None, enable_auto_commit=False)
    try:
        parts = [TopicPartition(topic, p) for p in sorted(consumer.partitions_for_topic(topic))]
        if not parts:
            raise RetrainError(f"topic {topic!r} does not exist: no events to train on")
        consumer.assign(parts)
        end = _by_partition(consumer.end_offsets(parts))
        begin = _by_partition(consumer.beginning_offsets(parts))
        start = start_offsets(recorded, topic, begin, end)
        for tp in parts:
            consumer.seek(tp, start[tp.partition])
        log.info("reading %s from %s to %s", topic, start, end)
        collector = _Collector(limits)
        _drain(consumer, parts, end, collector, stall_s)
    finally:
        consumer.close()
    rows = sorted(collector.rows, key=lambda r: r[0])  # by (partition, offset): log order
    return LogRead(
        interactions=Interactions.from_rows([r[1] for r in rows]),
        topic=topic,
        start=start,
        end=end,
        records=collector.records,
        skipped=collector.skipped,
        duplicates=collector.duplicates,
        seconds=time.perf_counter() - started,
        errors=collector.errors,
    )


def _by_partition(offsets: Mapping[TopicPartition, int]) -> dict[int, int]:
    return {tp.partition: offset for tp, offset in sorted(offsets.items())}


def _drain(
    consumer: KafkaConsumer,
    parts: list[TopicPartition],
    end: Mapping[int, int],
    collector: _Collector,
    stall_s: float,
) -> None:
    """Poll until every partition's position reaches the end offset captured at the start."""
    pending = {tp for tp in parts if consumer.position(tp) < end[tp.partition]}
    consumer.pause(*(set(parts) - pending))
    last_progress = time.monotonic()
    while pending:
        polled = consumer.poll(timeout_ms=500, max_records=5000)
        for tp, records in polled.items():
            # Records appended after the read began belong to the next version.
            collector.add(r for r in records if r.offset < end[tp.partition])
        if polled:
            last_progress = time.monotonic()
        done = {tp for tp in pending if consumer.position(tp) >= end[tp.partition]}
        if done:
            consumer.pause(*done)
            pending -= done
        if pending and time.monotonic() - last_progress > stall_s:
            where = {tp.partition: consumer.position(tp) for tp in pending}
            raise RetrainError(f"reading the log stalled for {stall_s:.0f} s at {where}")


class _Collector:
    """Validates records like the worker does; keeps ``((partition, offset), row)`` pairs."""

    def __init__(self, limits: Limits) -> None:
        self.limits = limits
        self.rows: list[tuple[tuple[int, int], tuple[str, str, int, str]]] = []
        self.records = self.skipped = self.duplicates = 0
        self.errors: list[str] = []
        self._event_ids: set[str] = set()

    def add(self, records: Iterable[Any]) -> None:
        messages = [
            RawMessage(r.topic, r.partition, r.offset, r.timestamp, r.key, r.value) for r in records
        ]
        self.records += len(messages)
        valid, rejected = split_batch(messages, int(time.time() * 1000), self.limits)
        self.skipped += len(rejected)
        for bad in rejected[: max(0, 5 - len(self.errors))]:
            where = bad.letter.source
            self.errors.append(f"{where.partition}@{where.offset}: {bad.letter.error}")
        for item in valid:
            event = item.event
            if event.event_id is not None:
                if event.event_id in self._event_ids:
                    self.duplicates += 1  # a producer's retry: the worker applies it once too
                    continue
                self._event_ids.add(event.event_id)
            row = (event.user_id, event.item_id, event.ts, event.type)
            self.rows.append(((item.source.partition, item.source.offset), row))


@dataclass(frozen=True)
class RetrainResult:
    """What one retrain did; ``to_json`` is the CLI's ``--json`` line."""

    version: str
    version_dir: Path
    warm_from: str | None  # the version the weights started from; None for a cold start
    sha256: str  # of the version's manifest.json, as announced
    events_read: int  # valid events trained on
    events_skipped: int  # invalid records
    duplicates: int
    n_items: int
    new_items: int
    offsets: dict[int, int]
    valid_ndcg: float
    popularity_ndcg: float
    epochs: int
    chosen: dict[str, Any]  # the settings a cold start chose from the data ({} when warm)
    read_s: float
    train_s: float
    index_s: float
    publish_s: float

    def to_json(self) -> dict[str, Any]:
        return {
            "version": self.version,
            "path": str(self.version_dir),
            "warm_from": self.warm_from,
            "sha256": self.sha256,
            "events_read": self.events_read,
            "events_skipped": self.events_skipped,
            "duplicates": self.duplicates,
            "n_items": self.n_items,
            "new_items": self.new_items,
            "offsets": {str(p): o for p, o in sorted(self.offsets.items())},
            "valid_ndcg@10": round(self.valid_ndcg, 4),
            "valid_ndcg@10_popularity": round(self.popularity_ndcg, 4),
            "epochs": self.epochs,
            "chosen": self.chosen,
            "read_s": round(self.read_s, 3),
            "train_s": round(self.train_s, 3),
            "index_s": round(self.index_s, 3),
            "publish_s": round(self.publish_s, 3),
        }


def retrain_once(
    settings: Settings,
    artifacts_root: Path,
    *,
    since_last: bool = False,
    cold: bool = False,
    train_config: TrainConfig | None = None,
    model_config: ModelConfig | None = None,
    min_events: int = MIN_EVENTS,
    announce: bool = True,
    progress: bool = False,
    cold_epochs: int | None = None,
    auto: frozenset[str] = frozenset(),
    shape: Mapping[str, Any] | None = None,
) -> RetrainResult:
    """Train on the event log, build the index, publish the next version, announce it.

    Warm-starts from the newest version under ``artifacts_root`` unless ``cold`` (or there is
    none); fresh weights train ``cold_epochs`` (None: COLD_EPOCHS) instead of
    ``train_config.epochs``.
    ``since_last``: read only the events after the offsets that version recorded.
    ``auto``: on a cold start, the settings chosen from the data (as ``train``'s ``auto``).
    ``shape``: ModelConfig fields the user gave (``retrain --dim`` ...), laid over
    ``model_config`` (default ``ModelConfig()``) on a cold start and over the newest version's
    config on a warm start, where one that differs from it is refused by name.
    Raises RetrainError (nothing is published) when fewer than ``min_events`` valid events
    were read, ArtifactError when the newest version is damaged.
    """
    base = newest_version(artifacts_root)
    loaded: LoadedModel | None = None if cold or base is None else load_artifact(base)
    start = recorded_offsets(base) if since_last and base is not None else None
    if since_last and base is not None and start is None:
        log.warning("%s recorded no log offsets: reading the whole log", base)
    read = read_events(settings, start=start)
    log.info(
        "read %d records: %d events, %d skipped, %d duplicates in %.1f s",
        read.records,
        read.events,
        read.skipped,
        read.duplicates,
        read.seconds,
    )
    for error in read.errors:
        log.info("skipped %s", error)
    if read.events < min_events:
        raise RetrainError(
            f"only {read.events} valid events in {read.topic!r} between offsets {read.start} "
            f"and {read.end} ({read.skipped} invalid); at least {min_events} are needed to "
            "train, so nothing was published"
        )
    if shape:
        over = loaded.config if loaded is not None else model_config or ModelConfig()
        model_config = replace(over, **shape)
    train_config = train_config or TrainConfig(epochs=RETRAIN_EPOCHS)
    if loaded is None:
        train_config = replace(train_config, epochs=cold_epochs or COLD_EPOCHS)
    started = time.perf_counter()
    trained = train(
        read.interactions,
        model_config,
        train_config,
        event_weights=settings.event_weights,
        progress=progress,
        init_from=loaded,
        auto=auto,
    )
    train_s = time.perf_counter() - started
    started = time.perf_counter()
    index_s = 0.0

    def add_index(staged: Path) -> None:
        nonlocal index_s
        began = time.perf_counter()
        build_index(staged, trained.train_config)
        index_s = time.perf_counter() - began

    description = read.describe(trained, settings.event_weights)
    version_dir = save_artifact(
        trained, artifacts_root, description, extra_files=read.files(), before_publish=add_index
    ).resolve()
    update = model_update(version_dir)
    if announce:
        announce_version(settings, update)
    publish_s = time.perf_counter() - started - index_s
    result = RetrainResult(
        version=version_dir.name,
        version_dir=version_dir,
        warm_from=loaded.path.name if loaded else None,
        sha256=update.sha256,
        events_read=read.events,
        events_skipped=read.skipped,
        duplicates=read.duplicates,
        n_items=len(trained.vocab),
        new_items=trained.warm_start.get("new_items", len(trained.vocab)),
        offsets=dict(read.end),
        valid_ndcg=trained.best_ndcg,
        popularity_ndcg=trained.popularity_ndcg,
        epochs=trained.epochs_run,
        chosen=dict(trained.adapted.get("chosen", {})),
        read_s=read.seconds,
        train_s=train_s,
        index_s=index_s,
        publish_s=publish_s,
    )
    log.info("published %s", json.dumps(result.to_json()))
    return result


def build_index(version_dir: Path, train_config: TrainConfig) -> None:
    """The FAISS index of a (staged) version, as ``recstream build-index`` builds it."""
    from recstream.index import build, save
    from recstream.index.model_files import read_model_arrays

    embeddings, ids = read_model_arrays(version_dir)
    index = build(embeddings, ids, seed=train_config.seed, threads=train_config.threads)
    save(index, version_dir)


def model_update(version_dir: Path) -> ModelUpdate:
    """The ``model-updates`` record for a published version."""
    return ModelUpdate(
        version=version_dir.name,
        path=str(version_dir),
        sha256=sha256_file(version_dir / MANIFEST),
        version_sha256=version_sha256(version_dir),
    )


def announce_version(settings: Settings, update: ModelUpdate, timeout_s: float = 30) -> None:
    """Publish ``update`` on ``model-updates`` (keyed by the version) and wait for the ack."""
    kafka = kafka_connection(settings)
    topic = settings.topic_model_updates
    try:
        # One partition: announcements stay in order for every reader.
        ensure_topics(kafka, [TopicSpec(topic, 1)], settings.replication_factor)
        producer = KafkaProducer(**kafka.kafka_python_kwargs(), acks="all")
        try:
            value = update.model_dump_json().encode()
            producer.send(topic, key=update.version.encode(), value=value).get(timeout_s)
        finally:
            producer.close()
    except KafkaError as exc:
        raise RetrainError(
            f"{update.version} was published at {update.path} but announcing it on "
            f"{topic!r} failed: {exc!r}"
        ) from exc
    log.info("announced %s on %s", update.version, topic)


def pending_events(settings: Settings, artifacts_root: Path) -> int:
    """Records in the events log after the offsets the newest version recorded (all records
    when it recorded none): a cheap check of end offsets, no record is fetched."""
    base = newest_version(artifacts_root)
    recorded = recorded_offsets(base) if base is not None else None
    kafka = kafka_connection(settings)
    topic = settings.topic_events
    try:
        consumer = KafkaConsumer(
            **kafka.kafka_python_kwargs(), group_id=None, enable_auto_commit=False
        )
        try:
            parts = [TopicPartition(topic, p) for p in consumer.partitions_for_topic(topic)]
            if not parts:
                return 0
            end = _by_partition(consumer.end_offsets(parts))
            begin = _by_partition(consumer.beginning_offsets(parts))
        finally:
            consumer.close()
    except KafkaError as exc:
        raise RetrainError(f"cannot read the end offsets of {topic!r}: {exc!r}") from exc
    start = start_offsets(recorded, topic, begin, end)
    return sum(end[p] - start[p] for p in end)
