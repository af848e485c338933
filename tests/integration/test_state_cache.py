"""The pipeline's in-memory user cache against the real Redis: it saves the reads of a worker's
own users, and never serves a state Redis does not hold once partitions move or a write fails."""

from __future__ import annotations

import asyncio
import dataclasses
import time
import uuid
from collections.abc import Awaitable, Callable
from typing import Any

import orjson
import pytest

from recstream.streams.batches import RawMessage, split_batch
from recstream.streams.connection import redis_client
from recstream.streams.decoding import Limits
from recstream.streams.keys import Keys
from recstream.streams.pipeline import Pipeline, PipelineConfig, StoreFailed
from recstream.streams.recommender import ModelRecommender
from recstream.streams.state import UserState
from recstream.streams.uservalue import UserValue, pack, unpack
from tests.fakes import ExactIndex, MeanEncoder, genre_world

pytestmark = pytest.mark.integration

WEIGHTS = {"click": 1.0, "purchase": 3.0}


def _message(partition: int, offset: int, user: str, item: str) -> RawMessage:
    now = int(time.time() * 1000)
    value = orjson.dumps({"user_id": user, "item_id": item, "type": "click", "ts": now})
    return RawMessage("events", partition, offset, now, user.encode(), value)


def _with_pipeline(
    redis_url: str,
    test: Callable[[Pipeline, Keys], Awaitable[Any]],
    cached_users: int = 100,
    user_ttl_s: int = 0,
    explain: bool = True,
) -> Any:
    ids, vectors = genre_world()
    recommender = ModelRecommender(MeanEncoder(ids, vectors), ExactIndex(ids, vectors), 20, 1.0)
    keys = Keys(f"rstest-cache-{uuid.uuid4().hex[:8]}")
    config = PipelineConfig(
        k=5, weights=WEIGHTS, cached_users=cached_users, user_ttl_s=user_ttl_s, explain=explain
    )

    async def run() -> Any:
        redis = redis_client(redis_url)
        try:
            return await test(Pipeline(redis, keys, recommender, config), keys)
        finally:
            await redis.aclose()

    return asyncio.run(run())


async def _process(pipeline: Pipeline, *messages: RawMessage, behind: bool = False) -> list[Any]:
    valid, rejected = split_batch(messages, int(time.time() * 1000), Limits())
    assert not rejected
    return await pipeline.process(valid, behind=behind)


def _with_id(message: RawMessage, event_id: str) -> RawMessage:
    value = {**orjson.loads(message.value), "event_id": event_id}
    return dataclasses.replace(message, value=orjson.dumps(value))


async def _state(pipeline: Pipeline, keys: Keys, user: str) -> UserState:
    return unpack(await pipeline.redis.get(keys.user(user))).state


def test_cached_users_need_no_read_and_match_redis(redis_url: str) -> None:
    async def test(pipeline: Pipeline, keys: Keys) -> None:
        await _process(pipeline, _message(0, 0, "u1", "g0-1"), _message(0, 1, "u2", "g1-1"))
        assert set(pipeline.cache.users) == {"u1", "u2"}
        reads = 0
        original = pipeline.redis.pipeline

        def counting(*args: Any, **kwargs: Any) -> Any:
            nonlocal reads
            reads += 1
            return original(*args, **kwargs)

        pipeline.redis.pipeline = counting  # type: ignore[method-assign]
        await _process(pipeline, _message(0, 2, "u1", "g0-2"))
        assert reads == 0  # state, lists and watermark all came from memory
        cached = pipeline.cache.users["u1"][1]
        assert cached == await _state(pipeline, keys, "u1")
        assert cached.sequence == ("g0-1", "g0-2")

    _with_pipeline(redis_url, test)


def test_a_rebalance_or_another_partition_reads_redis_again(redis_url: str) -> None:
    async def test(pipeline: Pipeline, keys: Keys) -> None:
        await _process(pipeline, _message(0, 0, "u1", "g0-1"))
        # Another worker owned u1's partition meanwhile and wrote a longer history.
        elsewhere = UserState(sequence=("g2-1", "g2-2"), seen=("g2-1", "g2-2"), events=2)
        await pipeline.redis.set(keys.user("u1"), pack(UserValue(elsewhere, [])))
        # The same user from another partition (a producer keying differently): not cached.
        await _process(pipeline, _message(1, 0, "u1", "g2-3"))
        assert (await _state(pipeline, keys, "u1")).sequence == ("g2-1", "g2-2", "g2-3")
        await pipeline.redis.set(keys.user("u1"), pack(UserValue(elsewhere, [])))
        pipeline.cache.clear()  # what the consumer does on every rebalance
        await _process(pipeline, _message(1, 1, "u1", "g2-4"))
        assert (await _state(pipeline, keys, "u1")).sequence == ("g2-1", "g2-2", "g2-4")

    _with_pipeline(redis_url, test)


def test_a_failed_write_leaves_the_cache_as_redis_is(redis_url: str) -> None:
    async def test(pipeline: Pipeline, keys: Keys) -> None:
        await _process(pipeline, _message(0, 0, "u1", "g0-1"))
        before = pipeline.cache.users["u1"]
        write = pipeline.store._script

        async def failing(*args: Any, **kwargs: Any) -> None:
            raise ConnectionError("redis went away")

        pipeline.store._script = failing  # type: ignore[assignment]
        with pytest.raises(ConnectionError):
            await _process(pipeline, _message(0, 1, "u1", "g0-2"))
        assert pipeline.cache.users["u1"] == before
        pipeline.store._script = write
        await _process(pipeline, _message(0, 1, "u1", "g0-2"))  # the retry
        assert (await _state(pipeline, keys, "u1")).sequence == ("g0-1", "g0-2")

    _with_pipeline(redis_url, test)


def test_a_replay_from_the_cache_changes_no_state_but_still_answers(redis_url: str) -> None:
    async def test(pipeline: Pipeline, keys: Keys) -> None:
        batch = [_message(0, 0, "u1", "g0-1"), _message(0, 1, "u1", "g0-2")]
        await _process(pipeline, *batch)
        raw = (await _state(pipeline, keys, "u1")).to_json()
        again = await _process(pipeline, *batch)  # a consumer re-reading after a crash
        assert len(again) == 2
        assert (await _state(pipeline, keys, "u1")).to_json() == raw  # byte for byte

    _with_pipeline(redis_url, test)


def test_writing_behind_answers_first_and_keeps_redis_in_batch_order(redis_url: str) -> None:
    async def test(pipeline: Pipeline, keys: Keys) -> None:
        await _process(pipeline, _message(0, 0, "u1", "g0-1"), behind=True)
        first = pipeline.writing
        assert first is not None and not first.done()  # answered before Redis had it
        # The next batch works from the cache while the first write is on its way; the same
        # producer's event id in both is still seen as a duplicate.
        again = _with_id(_message(0, 1, "u1", "g0-2"), "e-1")
        await _process(pipeline, again, behind=True)
        await _process(pipeline, _with_id(_message(0, 2, "u1", "g0-3"), "e-1"), behind=True)
        await pipeline.settle()
        assert first.done() and first.exception() is None
        assert (await _state(pipeline, keys, "u1")).sequence == ("g0-1", "g0-2")
        assert await pipeline.redis.get(keys.watermark("events", 0)) == b"2"

    _with_pipeline(redis_url, test)


def test_a_user_not_cached_waits_for_the_write_behind_that_carries_them(redis_url: str) -> None:
    async def test(pipeline: Pipeline, keys: Keys) -> None:
        await _process(pipeline, _message(0, 0, "u1", "g0-1"), behind=True)
        await _process(pipeline, _message(0, 1, "u1", "g0-2"), behind=True)  # read from Redis
        await pipeline.settle()
        assert (await _state(pipeline, keys, "u1")).sequence == ("g0-1", "g0-2")

    _with_pipeline(redis_url, test, cached_users=0)


def test_a_failed_write_behind_stops_the_next_batch_and_writes_wait_until_one_succeeds(
    redis_url: str,
) -> None:
    async def test(pipeline: Pipeline, keys: Keys) -> None:
        run = pipeline.store._run

        async def failing(call: Any) -> None:
            raise RuntimeError("OOM command not allowed")

        pipeline.store._run = failing  # type: ignore[method-assign]
        await _process(pipeline, _message(0, 0, "u1", "g0-1"), behind=True)
        failed = pipeline.writing
        with pytest.raises(StoreFailed, match="OOM"):
            await _process(pipeline, _message(0, 1, "u1", "g0-2"), behind=True)
        pipeline.store._run = run  # type: ignore[method-assign]
        assert not pipeline.cache.users  # it held states Redis never got
        assert failed is not None and failed.done()
        # The consumer resumes from its last commit: offset 0 again, written at once.
        pipeline.forget()
        await _process(pipeline, _message(0, 0, "u1", "g0-1"), behind=True)
        assert pipeline.writing is None
        assert (await _state(pipeline, keys, "u1")).sequence == ("g0-1",)
        await _process(pipeline, _message(0, 1, "u1", "g0-2"), behind=True)  # behind again
        assert pipeline.writing is not None
        await pipeline.settle()
        assert (await _state(pipeline, keys, "u1")).sequence == ("g0-1", "g0-2")

    _with_pipeline(redis_url, test)


def test_a_write_behind_cut_off_is_retried_in_place_and_applied_once(redis_url: str) -> None:
    """The first call of a write (one Redis: the whole write; a cluster: the shared keys)
    applied with its reply lost, then refused outright: retried in place, applied once."""

    async def test(pipeline: Pipeline, keys: Keys) -> None:
        run = pipeline.store._run
        sends: list[str] = []
        fault: list[str] = ["applied, reply lost"]

        async def faulty(call: Any) -> None:
            what = fault.pop() if fault else "sent"
            sends.append(what)
            if what == "refused":
                raise ConnectionError("connection refused")
            await run(call)
            if what == "applied, reply lost":
                raise ConnectionError("connection reset")

        pipeline.store._run = faulty  # type: ignore[method-assign]
        await _process(pipeline, _message(0, 0, "u1", "g0-1"), behind=True)
        await pipeline.settle()  # no StoreFailed: retried in place
        # The watermark showed the first call landed: not resent (a cluster's user calls are).
        assert sends[0] == "applied, reply lost" and "applied, reply lost" not in sends[1:]
        assert await pipeline.redis.hget(keys.stats(), "valid") == b"1"  # counted once
        assert (await _state(pipeline, keys, "u1")).sequence == ("g0-1",)

        sends.clear()
        fault.append("refused")
        await _process(pipeline, _message(0, 1, "u1", "g0-2"), behind=True)
        await pipeline.settle()
        assert sends[0] == "refused" and sends[1] == "sent"  # resent
        assert (await _state(pipeline, keys, "u1")).sequence == ("g0-1", "g0-2")
        assert await pipeline.redis.hget(keys.stats(), "valid") == b"2"

    _with_pipeline(redis_url, test)


def test_a_users_keys_expire_after_their_last_event_when_asked(redis_url: str) -> None:
    async def test(pipeline: Pipeline, keys: Keys) -> None:
        await _process(pipeline, _message(0, 0, "u1", "g0-1"))
        assert 3_500_000 < await pipeline.redis.pttl(keys.user("u1")) <= 3_600_000
        await pipeline.redis.pexpire(keys.user("u1"), 1000)
        await _process(pipeline, _message(0, 1, "u1", "g0-2"))
        assert await pipeline.redis.pttl(keys.user("u1")) > 3_500_000  # each event renews it
        assert await pipeline.redis.pttl(keys.watermark("events", 0)) == -1  # not a user's

    _with_pipeline(redis_url, test, user_ttl_s=3600)


def test_without_a_ttl_a_users_keys_are_kept(redis_url: str) -> None:
    async def test(pipeline: Pipeline, keys: Keys) -> None:
        await _process(pipeline, _message(0, 0, "u1", "g0-1"))
        assert await pipeline.redis.pttl(keys.user("u1")) == -1

    _with_pipeline(redis_url, test)


def test_a_redis_out_of_memory_makes_the_write_wait_not_dead_letter(redis_url: str) -> None:
    """maxmemory reached (noeviction): every write is refused alike, so the write waits and
    retries until Redis takes it; nothing is dead-lettered."""
    from recstream.streams.app import process_isolating_failures

    async def test(pipeline: Pipeline, keys: Keys) -> None:
        await _process(pipeline, _message(0, 0, "u1", "g0-1"))
        batch = [_message(0, 1, "u1", "g0-2"), _message(0, 2, "u2", "g1-1")]
        valid, _ = split_batch(batch, int(time.time() * 1000), Limits())
        before = (await pipeline.redis.config_get("maxmemory"))["maxmemory"]
        await pipeline.redis.config_set("maxmemory", 1)
        try:
            recs, failed = await process_isolating_failures(pipeline, valid)
            assert len(recs) == 2 and failed == []
            await asyncio.sleep(1.5)
            assert pipeline.writing is not None and not pipeline.writing.done()  # waiting
        finally:
            await pipeline.redis.config_set("maxmemory", before)
        await asyncio.wait_for(pipeline.settle(), 30)
        assert (await _state(pipeline, keys, "u1")).sequence == ("g0-1", "g0-2")
        assert (await _state(pipeline, keys, "u2")).sequence == ("g1-1",)

    _with_pipeline(redis_url, test)


@pytest.mark.parametrize("explain", [True, False])
def test_lists_carry_their_reasons_unless_told_not_to(redis_url: str, explain: bool) -> None:
    async def test(pipeline: Pipeline, keys: Keys) -> None:
        (out,) = await _process(pipeline, _message(0, 0, "u1", "g1-0"))
        items = orjson.loads(out.payload)["items"]
        assert items and all(i["because"] == (["g1-0"] if explain else []) for i in items)

    _with_pipeline(redis_url, test, explain=explain)
