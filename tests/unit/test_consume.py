"""The events consumer's commit rule, with a stand-in for aiokafka's consumer (pure unit test;
the real broker is exercised in tests/integration/test_pipeline.py)."""

from __future__ import annotations

import asyncio

import pytest
from aiokafka import TopicPartition

from recstream.streams.connection import KafkaConnection
from recstream.streams.consume import ConsumerConfig, DeliveryFailed, EventConsumer

A, B, GONE = (TopicPartition("events", p) for p in (0, 1, 2))


class StubConsumer:
    def __init__(self) -> None:
        self.commits: list[dict[TopicPartition, int]] = []

    def assignment(self) -> set[TopicPartition]:
        return {A, B}

    async def commit(self, offsets: dict[TopicPartition, int]) -> None:
        self.commits.append(dict(offsets))


def _consumer(flushes: list[int]) -> tuple[EventConsumer, StubConsumer]:
    async def handle(batch):  # never called here
        return []

    async def flush() -> None:
        flushes.append(1)

    events = EventConsumer(
        KafkaConnection("unused:9092"), "events", "g", ConsumerConfig(), handle, flush
    )
    stub = StubConsumer()
    events.consumer = stub  # type: ignore[assignment]
    return events, stub


def _delivered(loop: asyncio.AbstractEventLoop, error: Exception | None = None) -> asyncio.Future:
    future = loop.create_future()
    future.set_exception(error) if error else future.set_result("metadata")
    return future


def test_commits_after_a_flush_only_partitions_still_assigned():
    async def scenario() -> None:
        flushes: list[int] = []
        events, stub = _consumer(flushes)
        loop = asyncio.get_running_loop()
        events._done = {A: 10, B: 7, GONE: 3}  # GONE moved to another worker meanwhile
        events._sent = [_delivered(loop), _delivered(loop)]
        await events.commit()
        assert flushes == [1]
        assert stub.commits == [{A: 10, B: 7}]
        await events.commit()  # nothing new handled: nothing to commit
        assert len(stub.commits) == 1

    asyncio.run(scenario())


def test_a_lost_delivery_commits_nothing_and_stops_the_consumer():
    async def scenario() -> None:
        events, stub = _consumer([])
        loop = asyncio.get_running_loop()
        events._done = {A: 10}
        events._sent = [_delivered(loop), _delivered(loop, TimeoutError("broker gone"))]
        with pytest.raises(DeliveryFailed, match="1 of 2 records not delivered"):
            await events.commit()
        assert stub.commits == []
        assert events._failed is not None  # the read loop raises it and the app restarts it
        # During a rebalance the error is logged, not raised into aiokafka's coordinator.
        events._done, events._sent = {A: 11}, [_delivered(loop, TimeoutError("again"))]
        await events.on_partitions_revoked([A])
        assert stub.commits == []

    asyncio.run(scenario())


class Record:
    def __init__(self, tp: TopicPartition, offset: int) -> None:
        self.topic, self.partition, self.offset = tp.topic, tp.partition, offset
        self.timestamp, self.key, self.value = 0, b"u", b"{}"


class FetchingStub(StubConsumer):
    """Hands out two fetches, then asks the consumer to stop."""

    def __init__(self, events: EventConsumer) -> None:
        super().__init__()
        self.events = events
        self.fetches = [
            {A: [Record(A, 0), Record(A, 1)], B: [Record(B, 5)]},
            {},  # nothing arrived within the wait
            {A: [Record(A, 2)]},
        ]

    async def getmany(self, timeout_ms: int, max_records: int) -> dict:
        assert max_records == self.events.config.batch_size
        if len(self.fetches) == 1:
            self.events._stopping.set()
        return self.fetches.pop(0)

    def highwater(self, tp: TopicPartition) -> int:
        return {A: 10, B: 6}[tp]


def test_the_read_loop_hands_batches_over_commits_what_was_handled_and_tracks_lag():
    async def scenario() -> None:
        handled: list[list[tuple[int, int]]] = []

        async def handle(batch):
            handled.append([(m.partition, m.offset) for m in batch])
            return [_delivered(asyncio.get_running_loop())]

        async def flush() -> None:
            return None

        config = ConsumerConfig(batch_size=7, commit_interval_s=0.0)
        events = EventConsumer(KafkaConnection("unused:9092"), "events", "g", config, handle, flush)
        stub = FetchingStub(events)
        events.consumer = stub  # type: ignore[assignment]
        await events._loop(stub)  # type: ignore[arg-type]
        await events.commit()  # as run() does when the loop ends
        # Partition by partition, each in offset order; an empty fetch hands nothing over.
        assert handled == [[(0, 0), (0, 1), (1, 5)], [(0, 2)]]
        # The next offset to read, per partition: the first turn's in the commit started after
        # it, the rest (the commit still in flight meanwhile) by the final one.
        assert stub.commits == [{A: 2, B: 6}, {A: 3}]
        assert events.lag == {0: 7, 1: 0}  # highwater 10 after offset 2; B is at its end

    asyncio.run(scenario())


def test_the_read_loop_goes_on_while_a_commit_waits_for_its_deliveries():
    async def scenario() -> None:
        loop = asyncio.get_running_loop()
        slow = loop.create_future()  # the first batch's list, not yet acknowledged
        handled: list[int] = []

        async def handle(batch):
            handled.append(len(batch))
            return [slow] if len(handled) == 1 else [_delivered(loop)]

        async def flush() -> None:
            return None

        config = ConsumerConfig(commit_interval_s=0.0)
        events = EventConsumer(KafkaConnection("unused:9092"), "events", "g", config, handle, flush)
        stub = FetchingStub(events)
        events.consumer = stub  # type: ignore[assignment]
        reading = asyncio.create_task(events._loop(stub))  # type: ignore[arg-type]
        await asyncio.sleep(0.01)
        assert handled == [3, 1]  # the second batch did not wait for the first's delivery
        assert stub.commits == []  # nor was anything committed before it
        slow.set_result("metadata")
        await reading
        await events.commit()
        assert stub.commits == [{A: 2, B: 6}, {A: 3}]

    asyncio.run(scenario())


def test_a_lost_delivery_found_by_the_periodic_commit_stops_the_read_loop():
    async def scenario() -> None:
        loop = asyncio.get_running_loop()

        async def handle(batch):
            return [_delivered(loop, TimeoutError("broker gone"))]

        async def flush() -> None:
            return None

        config = ConsumerConfig(commit_interval_s=0.0)
        events = EventConsumer(KafkaConnection("unused:9092"), "events", "g", config, handle, flush)
        stub = FetchingStub(events)
        stub.fetches.insert(1, {})  # a turn for the commit to run in
        events.consumer = stub  # type: ignore[assignment]

        async def yielding_getmany(timeout_ms: int, max_records: int) -> dict:
            await asyncio.sleep(0)
            return await FetchingStub.getmany(stub, timeout_ms, max_records)

        stub.getmany = yielding_getmany  # type: ignore[method-assign]
        with pytest.raises(DeliveryFailed):
            await events._loop(stub)  # type: ignore[arg-type]
        with pytest.raises(DeliveryFailed):
            await events.commit()  # the final commit of run() commits nothing either
        assert stub.commits == []

    asyncio.run(scenario())
