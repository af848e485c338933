"""The events consumer: whole fetches from aiokafka, handed to the pipeline as micro-batches.

faust's stream layer costs about 57 µs of CPU per event here (an Event object, ack tracking and
sensors for each message), aiokafka's ``getmany`` about 2 µs (measured on the 2-core
development machine): at 3,000 events/s that difference is a sixth of a core. So the hot path reads
raw fetches itself, as a task of the faust app, which still owns the producer, the web server
and the timers.

Delivery is at-least-once. A batch's offsets are committed only after the producer has delivered
every list made for the events below them; a failed delivery stops this consumer before it
commits (the app starts a new one, which resumes from the last commit). A crash replays at most
the uncommitted tail, and a replay changes no user state (the pipeline is idempotent). One batch
is handled at a time (no concurrency on stateful work), and a rebalance waits for the batch in
hand to be committed before the partitions move.

The periodic commit runs beside the read loop: it waits for the deliveries of the batches
handled so far and commits their offsets while the next batches are read and handled. Done
inline, that wait (the producer's acknowledgements, then the group coordinator's) stalled the
one thread once a second, and the events arriving meanwhile waited with it.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Any

from aiokafka import AIOKafkaConsumer, ConsumerRebalanceListener, TopicPartition
from aiokafka.errors import CommitFailedError, IllegalStateError

from recstream.streams.batches import RawMessage
from recstream.streams.connection import KafkaConnection

log = logging.getLogger("recstream.consume")


@dataclass(frozen=True)
class ConsumerConfig:
    batch_size: int = 256
    # With nothing buffered, wait this long for the first record; a fetch that already holds
    # records returns at once, so a busy worker never waits for a batch to fill.
    wait_s: float = 0.005
    commit_interval_s: float = 1.0
    session_timeout_s: float = 30.0
    # Static membership (KIP-345): a worker restarted under the same id within the session
    # timeout gets its partitions back without a rebalance of the whole group.
    group_instance_id: str | None = None


def raw_messages(fetched: dict[TopicPartition, list[Any]]) -> list[RawMessage]:
    """aiokafka records → our plain records, partition by partition, each in offset order."""
    return [
        RawMessage(r.topic, r.partition, r.offset, r.timestamp, r.key, r.value)
        for records in fetched.values()
        for r in records
    ]


class DeliveryFailed(RuntimeError):
    """Records handed to the producer were not delivered, or a batch's write to the store
    failed: their events must be read again."""


class EventConsumer(ConsumerRebalanceListener):
    """Reads ``topic`` in the consumer group ``group_id``.

    ``handle`` processes one micro-batch, hands its output to the producer and returns the
    delivery futures (and any other work its offsets must wait for); ``flush`` makes the
    producer send what it holds now.
    """

    def __init__(
        self,
        kafka: KafkaConnection,
        topic: str,
        group_id: str,
        config: ConsumerConfig,
        handle: Callable[[Sequence[RawMessage]], Awaitable[Sequence[Awaitable[Any]]]],
        flush: Callable[[], Awaitable[None]],
        lag: dict[int, int] | None = None,
        on_rebalance: Callable[[], None] = lambda: None,
    ) -> None:
        self.kafka = kafka
        self.on_rebalance = on_rebalance  # partitions move: what was known of them is stale
        self.lag = {} if lag is None else lag  # partition -> records behind, kept up to date
        self.topic = topic
        self.group_id = group_id
        self.config = config
        self.handle = handle
        self.flush = flush
        self.consumer: AIOKafkaConsumer | None = None
        self._lock = asyncio.Lock()  # held while a batch is in hand, and while committing
        self._done: dict[TopicPartition, int] = {}  # next offset to commit, per partition
        self._sent: list[Awaitable[Any]] = []  # deliveries the next commit waits for
        self._failed: DeliveryFailed | None = None  # set by a commit: this consumer must stop
        self._committing: asyncio.Task[None] | None = None  # the periodic commit in flight
        self._stopping = asyncio.Event()  # set by stop(): finish the batch in hand, commit, leave
        self._idle = asyncio.Event()  # set while no run() is in progress
        self._idle.set()

    @property
    def stopping(self) -> bool:
        return self._stopping.is_set()

    async def stop(self, timeout_s: float = 15.0) -> None:
        """Stop reading: the batch in hand is delivered and committed, then the group is left.

        Call it before the producer stops; a run() that outlives ``timeout_s`` is left to the
        caller's cancellation (its uncommitted tail is replayed by the next owner)."""
        self._stopping.set()
        try:
            await asyncio.wait_for(self._idle.wait(), timeout_s)
        except TimeoutError:
            log.warning("the events consumer did not stop within %.0f s", timeout_s)

    async def run(self) -> None:
        cfg = self.config
        consumer = AIOKafkaConsumer(
            **self.kafka.aiokafka_kwargs(),
            group_id=self.group_id,
            enable_auto_commit=False,
            auto_offset_reset="earliest",
            session_timeout_ms=int(cfg.session_timeout_s * 1000),
            group_instance_id=cfg.group_instance_id,
            heartbeat_interval_ms=int(min(3.0, cfg.session_timeout_s / 3) * 1000),
        )
        consumer.subscribe([self.topic], listener=self)
        self.consumer = consumer
        # Resume from the last commit.
        self._done, self._sent, self._failed, self._committing = {}, [], None, None
        self._idle.clear()
        try:
            await consumer.start()
            try:
                await self._loop(consumer)
            finally:
                try:
                    await asyncio.wait_for(self.commit(), timeout=10)
                except Exception as exc:  # stopping anyway: the uncommitted tail is replayed
                    log.warning("final commit skipped: %r", exc)
                await consumer.stop()
        finally:
            self._idle.set()

    async def _loop(self, consumer: AIOKafkaConsumer) -> None:
        cfg = self.config
        wait_ms = max(1, int(cfg.wait_s * 1000))
        last_commit = time.monotonic()
        while not self._stopping.is_set():
            if self._failed:  # a commit (maybe in a rebalance callback) found lost records
                raise self._failed
            fetched = await consumer.getmany(timeout_ms=wait_ms, max_records=cfg.batch_size)
            if fetched:
                async with self._lock:
                    self._sent += await self.handle(raw_messages(fetched))
                    for tp, records in fetched.items():
                        self._done[tp] = records[-1].offset + 1
                        end = consumer.highwater(tp)
                        if end is not None:
                            self.lag[tp.partition] = max(0, end - records[-1].offset - 1)
            if time.monotonic() - last_commit >= cfg.commit_interval_s and self._commit_idle():
                self._committing = asyncio.create_task(self._commit(*self._take()))
                last_commit = time.monotonic()

    def _commit_idle(self) -> bool:
        """No periodic commit in flight (a slow one delays the next; its offsets wait). One
        that failed stops this consumer here, as it did when commits ran inline."""
        task = self._committing
        if task is None:
            return True
        if not task.done():
            return False
        self._committing = None
        task.result()
        return True

    def _take(self) -> tuple[dict[TopicPartition, int], list[Awaitable[Any]]]:
        """The offsets handled so far and the deliveries they wait for, now this commit's."""
        done, sent = self._done, self._sent
        self._done, self._sent = {}, []
        return done, sent

    async def commit(self) -> None:
        """After the periodic commit in flight, flush the producer and commit every handled
        offset still assigned to us (on stop and before a rebalance)."""
        async with self._lock:
            if self._committing is not None:
                await asyncio.gather(self._committing, return_exceptions=True)
            if self._done:
                await self.flush()
            await self._commit(*self._take())

    async def _commit(self, done: dict[TopicPartition, int], sent: list[Awaitable[Any]]) -> None:
        consumer = self.consumer
        if self._failed is not None:  # lists were lost below these offsets: commit nothing
            await asyncio.gather(*sent, return_exceptions=True)  # (their errors are known)
            raise self._failed
        if not done or consumer is None:
            return
        results = await asyncio.gather(*sent, return_exceptions=True)
        failures = [r for r in results if isinstance(r, BaseException)]
        if failures:
            # Our position is past events whose lists are lost: commit nothing more, and stop
            # so that a new consumer reads them again from the last commit.
            self._failed = DeliveryFailed(
                f"{len(failures)} of {len(sent)} records not delivered: {failures[0]!r}"
            )
            raise self._failed
        mine = consumer.assignment()
        offsets = {tp: off for tp, off in done.items() if tp in mine}
        if not offsets:
            return
        try:
            await consumer.commit(offsets)
        except (CommitFailedError, IllegalStateError) as exc:
            # The group moved on: the new owner replays these events, which changes nothing.
            log.warning("commit of %s refused (%r); the events will be replayed", offsets, exc)

    async def on_partitions_revoked(self, revoked: Sequence[TopicPartition]) -> None:
        # Called by aiokafka before a rebalance: the batch in hand finishes, then is committed.
        for tp in revoked:
            self.lag.pop(tp.partition, None)
        try:
            await self.commit()
        except DeliveryFailed as exc:  # the consumer loop raises it at its next turn
            log.error("before the rebalance: %s", exc)
        self.on_rebalance()

    async def on_partitions_assigned(self, assigned: Sequence[TopicPartition]) -> None:
        self.on_rebalance()
        log.info("assigned %s", sorted((tp.topic, tp.partition) for tp in assigned))
