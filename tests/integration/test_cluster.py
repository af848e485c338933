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
import threading
import time
import uuid
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import orjson
import pytest
from kafka import KafkaProducer
from kafka.admin import KafkaAdminClient

from recstream.streams.batches import RawMessage, split_batch
from recstream.streams.connection import KafkaConnection, redis_client
from recstream.streams.decoding import Limits
from recstream.streams.keys import Keys
from recstream.streams.pipeline import Pipeline, PipelineConfig
from recstream.streams.recommender import ModelRecommender
from recstream.streams.topics import TopicSpec, ensure_topics
from tests.fakes import ExactIndex, MeanEncoder, genre_world
from tests.integration.conftest import Names, read_topic, sync_redis, wait_until

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
    states = await redis.mget_nonatomic([keys.state(u) for u in users])
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
            mine = {redis.get_node_from_key(k).name for k in (keys.state(user), keys.recs(user))}
            assert len(mine) == 1
            nodes |= mine
        assert len(nodes) == 3
        shared = {redis.get_node_from_key(k).name for k in (keys.stats(), keys.trending(1))}
        assert len(shared) == 1
        assert all(
            v is not None for v in await redis.mget_nonatomic([keys.state(u) for u in users])
        )

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
    got_states = [json.loads(s) for s in got["states"]]
    want_states = [json.loads(s) for s in expected["states"]]
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


class Load:
    """Events at a steady rate from a thread, each with an event id, recording where each
    landed (partition, offset) and when it was sent."""

    def __init__(self, bootstrap: str, topic: str, rate: float, users: int) -> None:
        self.producer = KafkaProducer(
            bootstrap_servers=bootstrap, acks="all", linger_ms=5, retries=20
        )
        self.topic, self.rate, self.users = topic, rate, users
        self.sent: list[tuple[str, str, float, Any]] = []  # user, event id, sent at, future
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._run)

    def _run(self) -> None:
        start, n = time.monotonic(), 0
        while not self.stop.is_set():
            user = f"fu{n % self.users}"
            eid = f"e{n}"
            ts = int(time.time() * 1000)
            value = {"user_id": user, "item_id": f"g{n % 3}-{n % 11}", "type": "click"}
            payload = json.dumps({**value, "ts": ts, "event_id": eid}).encode()
            future = self.producer.send(self.topic, key=user.encode(), value=payload)
            self.sent.append((user, eid, time.time(), future))
            n += 1
            time.sleep(max(0.0, start + n / self.rate - time.monotonic()))

    def __enter__(self) -> Load:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop.set()
        self.thread.join()
        self.producer.flush(60)
        self.producer.close()


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
    faults: dict[str, float] = {}
    with Load(bootstrap, names.events, rate=500, users=200) as load:
        time.sleep(4)
        faults["broker 2 SIGKILLed"] = time.time()
        _kill(SERVICES / "kafka-2" / "kafka.pid")
        time.sleep(4)
        faults["broker 2 restarted"] = time.time()
        _restart_missing_nodes()
        time.sleep(3)
        faults["redis 17002 SIGKILLed"] = time.time()
        _kill(SERVICES / "redis-17002" / "redis.pid")
        time.sleep(1)
        faults["redis 17002 restarted"] = time.time()
        _restart_missing_nodes()
        time.sleep(4)
    landed = {(f.get(30).partition, f.get(30).offset): (u, e, at) for u, e, at, f in load.sent}
    recs = read_topic(bootstrap, names.recommendations, len(landed), timeout_s=180)
    answered: dict[tuple[int, int], float] = {}
    for rec in recs:
        value = json.loads(rec.value)
        where = (value["source"]["partition"], value["source"]["offset"])
        answered.setdefault(where, value["created_ts"] / 1000)
    missing = set(landed) - set(answered)
    assert not missing, (len(missing), worker.log_tail())
    assert not read_topic(bootstrap, names.dlq, 1, timeout_s=3)
    # Applied once: every user's state counts exactly the distinct events sent for them.
    r = sync_redis(redis_url)
    keys = Keys(names.redis_prefix)
    sent_per_user: dict[str, set[str]] = {}
    for user, eid, _, _ in load.sent:
        sent_per_user.setdefault(user, set()).add(eid)
    for user, eids in sent_per_user.items():
        assert json.loads(r.get(keys.state(user)))["n"] == len(eids), user
    waits = [answered[w] - at for w, (_, _, at) in landed.items()]
    print(_resume_report(faults, landed, answered, len(waits)))


def _resume_report(
    faults: dict[str, float],
    landed: dict[tuple[int, int], tuple[str, str, float]],
    answered: dict[tuple[int, int], float],
    events: int,
) -> str:
    """For each fault: the longest wait of an event sent in the 5 s after it (s)."""
    out = {"events": events}
    for name, at in faults.items():
        waits = [answered[w] - sent for w, (_, _, sent) in landed.items() if at <= sent < at + 5]
        out[name] = round(max(waits), 2) if waits else None
    return "fault report: " + json.dumps(out)
