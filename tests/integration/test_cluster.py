"""The cluster layout (``scripts/services up --cluster``): three Kafka brokers (replication 3,
min.insync.replicas 2) and a 3-master Redis Cluster. A user's keys stay on one node and users
spread over all three; a crash between a write's shared call and its users' calls applies
each event once; and a worker under load loses nothing while a broker is SIGKILLed and
restarted and a Redis node is SIGKILLed and restarted (AOF)."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import time
import uuid
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import orjson
import pytest
from kafka.admin import KafkaAdminClient

from recstream.streams.batches import RawMessage, split_batch
from recstream.streams.connection import KafkaConnection, redis_client
from recstream.streams.decoding import Limits
from recstream.streams.keys import Keys
from recstream.streams.pipeline import Pipeline, PipelineConfig
from recstream.streams.recommender import ModelRecommender
from recstream.streams.topics import TopicSpec, ensure_topics
from recstream.streams.uservalue import unpack
from tests.fakes import ExactIndex, MeanEncoder, genre_world
from tests.integration.conftest import Names, sync_redis, wait_ready, wait_until
from tests.integration.faults import SteadyLoad, check_every_event

ROOT = Path(__file__).resolve().parents[2]
SERVICES = Path(os.environ.get("RECSTREAM_SERVICES_DIR", ROOT / ".services")) / "cluster"
KAFKA = os.environ.get(
    "RECSTREAM_TEST_CLUSTER_KAFKA", "127.0.0.1:19092,127.0.0.1:19094,127.0.0.1:19096"
)
REDIS = os.environ.get(
    "RECSTREAM_TEST_CLUSTER_REDIS",
    "redis+cluster://127.0.0.1:17001,127.0.0.1:17002,127.0.0.1:17003",
)
HOW = "start it with ./scripts/test (or scripts/services up --cluster)"
WEIGHTS = {"click": 1.0, "purchase": 3.0}


@pytest.fixture(scope="module")
def cluster() -> tuple[str, str]:
    try:
        admin = KafkaAdminClient(bootstrap_servers=KAFKA, request_timeout_ms=10_000)
        brokers = len(admin.describe_cluster()["brokers"])
        admin.close()
        assert brokers == 3, f"{brokers} brokers"
        assert sync_redis(REDIS).cluster_info()["cluster_state"] == "ok"
    except Exception as exc:
        pytest.fail(f"no cluster layout at {KAFKA} / {REDIS} ({exc!r}); {HOW}")
    return KAFKA, REDIS


# ---- the pipeline on a Redis Cluster ----


def _message(offset: int, user: str, item: str, kind: str = "click") -> RawMessage:
    now = int(time.time() * 1000)
    value = orjson.dumps({"user_id": user, "item_id": item, "type": kind, "ts": now})
    return RawMessage("events", 0, offset, now, user.encode(), value)


def _batches() -> list[list[RawMessage]]:
    """Two batches of 60 users, a few events each, the second with purchases."""
    users = [f"cu{n}" for n in range(60)]
    first = [_message(n, u, f"g{n % 3}-{n % 7}") for n, u in enumerate(users)]
    second = [
        _message(60 + n, u, f"g{n % 3}-{(n + 3) % 7}", "purchase" if n % 4 == 0 else "click")
        for n, u in enumerate(users)
    ]
    return [first, second]


def _on_cluster(test: Callable[[Any, Callable[[], Pipeline], Keys], Awaitable[Any]]) -> Any:
    ids, vectors = genre_world()
    recommender = ModelRecommender(MeanEncoder(ids, vectors), ExactIndex(ids, vectors), 20, 1.0)
    keys = Keys(f"rstest-cluster-{uuid.uuid4().hex[:8]}")
    config = PipelineConfig(k=5, weights=WEIGHTS)

    async def run() -> Any:
        redis = redis_client(REDIS)
        try:
            return await test(redis, lambda: Pipeline(redis, keys, recommender, config), keys)
        finally:
            await redis.aclose()

    return asyncio.run(run())


async def _process(pipeline: Pipeline, messages: list[RawMessage]) -> None:
    valid, rejected = split_batch(messages, int(time.time() * 1000), Limits())
    assert not rejected
    await pipeline.process(valid)


async def _snapshot(redis: Any, keys: Keys, users: list[str]) -> dict[str, Any]:
    states = await redis.mget_nonatomic([keys.user(u) for u in users])
    scores = await redis.zrange(keys.trending(_epoch()), 0, -1, withscores=True)
    return {
        "states": states,
        "applied": await redis.hget(keys.stats(), "applied"),
        "trending": sorted((m, round(s, 9)) for m, s in scores),
    }


def _epoch() -> int:
    from recstream.streams.trending import epoch_of

    return epoch_of(int(time.time() * 1000), PipelineConfig().trending_half_life_ms)


def test_a_users_keys_stay_on_one_node_and_users_spread_over_all(
    cluster: tuple[str, str],
) -> None:
    async def test(redis: Any, make: Callable[[], Pipeline], keys: Keys) -> None:
        await _process(make(), _batches()[0])
        users = [f"cu{n}" for n in range(60)]
        nodes = set()
        for user in users:
            mine = {
                redis.get_node_from_key(k).name
                for k in (keys.user(user), keys.event_id(user, "e1"))
            }
            assert len(mine) == 1
            nodes |= mine
        assert len(nodes) == 3
        shared = {redis.get_node_from_key(k).name for k in (keys.stats(), keys.trending(1))}
        assert len(shared) == 1
        assert all(v is not None for v in await redis.mget_nonatomic([keys.user(u) for u in users]))

    _on_cluster(test)


def test_a_crash_between_the_shared_call_and_the_users_calls_applies_each_event_once(
    cluster: tuple[str, str],
) -> None:
    """The shared keys (watermark, counters, trending) landed, the users' calls did not: the
    replay after the restart redoes the states from the offsets they record and counts
    nothing twice — the same Redis as a run without the crash."""
    first, second = _batches()
    users = [f"cu{n}" for n in range(60)]

    async def clean(redis: Any, make: Callable[[], Pipeline], keys: Keys) -> dict[str, Any]:
        pipeline = make()
        await _process(pipeline, first)
        await _process(pipeline, second)
        return await _snapshot(redis, keys, users)

    async def crashed(redis: Any, make: Callable[[], Pipeline], keys: Keys) -> dict[str, Any]:
        pipeline = make()
        await _process(pipeline, first)
        calls = 0
        run = pipeline.store._run

        async def dies_after_the_shared_call(call: Any) -> None:
            nonlocal calls
            calls += 1
            if calls > 1:
                raise RuntimeError("worker killed")
            await run(call)

        pipeline.store._run = dies_after_the_shared_call  # type: ignore[method-assign]
        with pytest.raises(RuntimeError, match="killed"):
            await _process(pipeline, second)
        assert await redis.hget(keys.stats(), "applied") == b"120"  # the shared call landed
        restarted = make()  # a new worker: nothing cached, the batch again from the commit
        await _process(restarted, second)
        await _process(restarted, second)  # and once more, as a second crash would
        return await _snapshot(redis, keys, users)

    expected = _on_cluster(clean)
    got = _on_cluster(crashed)
    assert got["applied"] == expected["applied"] == b"120"
    assert got["trending"] == expected["trending"]
    # The states (the lists in the users' values differ: each run makes lists of its own).
    got_states = [json.loads(unpack(s).state.to_json()) for s in got["states"]]
    want_states = [json.loads(unpack(s).state.to_json()) for s in expected["states"]]
    assert got_states == want_states
    assert all(s["n"] == 2 for s in got_states)


# ---- a worker on the cluster under load, with faults ----


def _kill(pidfile: Path) -> None:
    pid = int(pidfile.read_text())
    os.kill(pid, signal.SIGKILL)
    wait_until(lambda: not Path(f"/proc/{pid}").exists(), 10, 0.05)


def _restart_missing_nodes() -> None:
    subprocess.run(
        [str(ROOT / "scripts/services"), "up", "--cluster"],
        check=True,
        stdout=subprocess.DEVNULL,
        timeout=180,
    )


@pytest.fixture
def cluster_names(cluster: tuple[str, str]) -> Names:
    names = Names()
    ensure_topics(KafkaConnection(cluster[0]), [TopicSpec(names.events, 4)])
    return names


def test_a_worker_loses_nothing_while_a_broker_and_a_redis_node_are_killed_and_restarted(
    start_worker: Callable[..., Any], cluster_names: Names, cluster: tuple[str, str]
) -> None:
    bootstrap, redis_url = cluster
    names = cluster_names
    worker = start_worker(
        RECSTREAM_KAFKA_BOOTSTRAP=bootstrap, RECSTREAM_REDIS_URL=redis_url, **names.env()
    )
    # The faults start once the worker is up: one still starting dies with a broker (faust's
    # start-up declares topics and gives up on a node that went away; a supervisor restarts it).
    wait_ready(worker)
    steps: list[tuple[str, Callable[[], None], float]] = [
        ("broker 2 SIGKILLed", lambda: _kill(SERVICES / "kafka-2" / "kafka.pid"), 4),
        ("broker 2 restarted", _restart_missing_nodes, 3),
        ("redis 17002 SIGKILLed", lambda: _kill(SERVICES / "redis-17002" / "redis.pid"), 1),
        ("redis 17002 restarted", _restart_missing_nodes, 4),
    ]
    faults: dict[str, float] = {}
    with SteadyLoad(bootstrap, names.events, rate=500) as load:
        time.sleep(4)
        for name, fault, then_s in steps:  # each under load, then a pause under load
            faults[name] = time.time()
            fault()
            time.sleep(then_s)
    outcome = check_every_event(
        load, bootstrap, redis_url, names.redis_prefix, names.recommendations, names.dlq
    )
    report = {name: outcome.worst_wait_after(at) for name, at in faults.items()}
    print("fault report:", json.dumps({"events": outcome.events, "worst_wait_s": report}))
