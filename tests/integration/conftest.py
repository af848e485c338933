"""Fixtures for tests that use the real Kafka broker and Redis started by ``scripts/test``.

There is no fake here: when the servers are not reachable, these tests fail and say how to
start them.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest
import redis
import redis.cluster
from kafka import KafkaConsumer, KafkaProducer
from kafka.admin import KafkaAdminClient
from kafka.structs import TopicPartition

KAFKA = os.environ.get("RECSTREAM_KAFKA_BOOTSTRAP", "127.0.0.1:9092")
REDIS_URL = os.environ.get("RECSTREAM_REDIS_URL", "redis://127.0.0.1:6379/0")
HOW = "start them with ./scripts/test (or scripts/services up)"

HERE = Path(__file__).parent

from recstream.streams.connection import cluster_url  # noqa: E402
from recstream.streams.keys import Keys  # noqa: E402
from recstream.streams.uservalue import UserValue, unpack  # noqa: E402


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Every test in this folder is marked ``integration``, whether or not its module says
    so: ``pytest -m "not integration"`` runs the unit tests alone, with no servers."""
    for item in items:
        if HERE in Path(str(item.fspath)).parents:
            item.add_marker(pytest.mark.integration)


@pytest.fixture(scope="session")
def kafka_bootstrap() -> str:
    try:
        admin = KafkaAdminClient(bootstrap_servers=KAFKA, request_timeout_ms=10_000)
        admin.list_topics()
        admin.close()
    except Exception as exc:
        pytest.fail(f"no Kafka broker at {KAFKA} ({exc!r}); {HOW}")
    return KAFKA


def sync_redis(url: str) -> redis.Redis | redis.RedisCluster:
    """A synchronous client for checks, of a single Redis or a Redis Cluster URL."""
    cluster = cluster_url(url)
    if cluster is None:
        return redis.Redis.from_url(url)
    first, nodes = cluster
    startup = [redis.cluster.ClusterNode(host, port) for host, port in nodes]
    return redis.RedisCluster.from_url(first, startup_nodes=startup)


def stored_value(client: redis.Redis | redis.RedisCluster, prefix: str, user: str) -> UserValue:
    """What Redis holds for a user (their one value: state, served lists, newest list)."""
    return unpack(client.get(Keys(prefix).user(user)))  # type: ignore[arg-type]


def stored_state(client: redis.Redis | redis.RedisCluster, prefix: str, user: str) -> dict:
    """A user's state as its JSON form (``seq``, ``seen``, ``n`` …); {} for no state."""
    raw = client.get(Keys(prefix).user(user))
    return json.loads(unpack(raw).state.to_json()) if raw is not None else {}  # type: ignore[arg-type]


@pytest.fixture(scope="session")
def redis_url() -> str:
    try:
        sync_redis(REDIS_URL).ping()
    except Exception as exc:
        pytest.fail(f"no Redis at {REDIS_URL} ({exc!r}); {HOW}")
    return REDIS_URL


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass
class Names:
    """Topic names, consumer group and Redis prefix private to one test."""

    tag: str = field(default_factory=lambda: uuid.uuid4().hex[:10])

    @property
    def events(self) -> str:
        return f"events-{self.tag}"

    @property
    def dlq(self) -> str:
        return f"events.dlq-{self.tag}"

    @property
    def recommendations(self) -> str:
        return f"recommendations-{self.tag}"

    @property
    def model_updates(self) -> str:
        return f"model-updates-{self.tag}"

    @property
    def metrics(self) -> str:
        return f"metrics-{self.tag}"

    @property
    def app_id(self) -> str:
        return f"recstream-test-{self.tag}"

    @property
    def redis_prefix(self) -> str:
        return f"rstest:{self.tag}"

    def env(self) -> dict[str, str]:
        return {
            "RECSTREAM_TOPIC_EVENTS": self.events,
            "RECSTREAM_TOPIC_DLQ": self.dlq,
            "RECSTREAM_TOPIC_RECOMMENDATIONS": self.recommendations,
            "RECSTREAM_TOPIC_MODEL_UPDATES": self.model_updates,
            "RECSTREAM_TOPIC_METRICS": self.metrics,
            "RECSTREAM_APP_ID": self.app_id,
            "RECSTREAM_REDIS_PREFIX": self.redis_prefix,
        }


@pytest.fixture
def names(kafka_bootstrap: str) -> Names:
    """Fresh names, with the events topic already created with 4 partitions (as a worker
    would) so that producers in the test do not auto-create it with the broker default."""
    from recstream.streams.connection import KafkaConnection
    from recstream.streams.topics import TopicSpec, ensure_topics

    fresh = Names()
    ensure_topics(KafkaConnection(kafka_bootstrap), [TopicSpec(fresh.events, 4)])
    return fresh


class Worker:
    """``recstream worker`` in a subprocess, logging to a file the test prints on failure."""

    def __init__(self, env: dict[str, str], log_path: Path, prelude: str | None = None) -> None:
        self.env = env
        self.log_path = log_path
        self._log = log_path.open("wb")
        args = ["worker", "--loglevel", "info"]
        if prelude is None:
            argv = [str(Path(sys.executable).with_name("recstream")), *args]
        else:  # Python run before the CLI in the worker's own process (say, to hide a package)
            code = f"{prelude}\nfrom recstream.cli import main\nmain()"
            argv = [sys.executable, "-c", code, *args]
        self.proc = subprocess.Popen(
            argv,
            env={**os.environ, **env},
            stdout=self._log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )

    @property
    def alive(self) -> bool:
        return self.proc.poll() is None

    def stop(self, sig: int = signal.SIGTERM, timeout_s: float = 30) -> int:
        if self.alive:
            self.proc.send_signal(sig)
            try:
                self.proc.wait(timeout_s)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)
        self._log.close()
        return self.proc.returncode

    def log_tail(self, n: int = 60) -> str:
        return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-n:])


def wait_ready(worker: Worker, timeout_s: float = 90) -> None:
    """Until the worker answers ``/readyz`` with 200 and its events consumer has partitions
    (its own "assigned [(" line; faust's catalogue consumer logs other lines)."""

    def ready() -> bool:
        url = f"http://127.0.0.1:{worker.env['RECSTREAM_WEB_PORT']}/readyz"
        try:
            with urllib.request.urlopen(url, timeout=3) as resp:
                answered = resp.status == 200
        except OSError:
            return False
        return answered and " assigned [(" in worker.log_tail(400)

    assert wait_until(ready, timeout_s), worker.log_tail()


@pytest.fixture
def start_worker(
    kafka_bootstrap: str, redis_url: str, names: Names, tmp_path: Path
) -> Iterator[Callable[..., Worker]]:
    workers: list[Worker] = []

    def start(prelude: str | None = None, **extra_env: str) -> Worker:
        env = {
            "RECSTREAM_KAFKA_BOOTSTRAP": kafka_bootstrap,
            "RECSTREAM_REDIS_URL": redis_url,
            "RECSTREAM_WEB_PORT": str(free_port()),
            # No model unless a test passes one: never pick up ./artifacts by accident.
            "RECSTREAM_ARTIFACTS": str(tmp_path / "no-artifacts"),
            "RECSTREAM_SESSION_TIMEOUT_S": "6",
            **names.env(),
            **extra_env,
        }
        worker = Worker(env, tmp_path / f"worker-{len(workers)}.log", prelude)
        workers.append(worker)
        return worker

    yield start
    for worker in workers:
        worker.stop()
        sys.stderr.write(f"--- {worker.log_path} (tail) ---\n{worker.log_tail()}\n")


@pytest.fixture
def producer(kafka_bootstrap: str) -> Iterator[KafkaProducer]:
    prod = KafkaProducer(bootstrap_servers=kafka_bootstrap, acks="all", linger_ms=0)
    yield prod
    prod.close()


def read_topic(
    bootstrap: str, topic: str, count: int, timeout_s: float = 90, settle_s: float = 0.0
) -> list:
    """Read a topic from the beginning until ``count`` records arrived (or time runs out).
    With ``settle_s`` keep reading that long afterwards to catch unexpected extras."""
    consumer = KafkaConsumer(
        bootstrap_servers=bootstrap, enable_auto_commit=False, consumer_timeout_ms=500
    )
    records: list = []
    deadline = time.monotonic() + timeout_s
    try:
        while not consumer.partitions_for_topic(topic) and time.monotonic() < deadline:
            time.sleep(0.2)
        parts = [TopicPartition(topic, p) for p in consumer.partitions_for_topic(topic) or ()]
        consumer.assign(parts)
        consumer.seek_to_beginning(*parts)
        stop_at = deadline
        while time.monotonic() < stop_at:
            records.extend(consumer)
            if len(records) >= count and stop_at == deadline:
                stop_at = min(deadline, time.monotonic() + settle_s)
    finally:
        consumer.close()
    return records


def wait_until(check: Callable[[], bool], timeout_s: float = 60, every_s: float = 0.2) -> bool:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if check():
            return True
        time.sleep(every_s)
    return check()
