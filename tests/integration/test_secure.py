"""The secure layout (``scripts/services up --secure``): a broker that takes only SASL_SSL with
SCRAM-SHA-512 and a Redis that takes only TLS and an ACL user. With the settings it writes, the
worker, ``train``/``retrain`` from the log and the CLI work; a plaintext client, a wrong
password or Redis's default user are refused."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import redis
from aiokafka import AIOKafkaProducer
from aiokafka.errors import KafkaConnectionError
from kafka import KafkaProducer
from typer.testing import CliRunner

from recstream.serving import kafka_connection
from recstream.settings import Settings
from recstream.streams.connection import redis_client
from recstream.streams.topics import TopicSpec, ensure_topics
from tests.integration.conftest import Names, stored_state, wait_until
from tests.integration.test_retrain import genre_events

ROOT = Path(__file__).resolve().parents[2]
SECURE = Path(os.environ.get("RECSTREAM_SERVICES_DIR", ROOT / ".services")) / "secure"
HOW = "start it with ./scripts/test (or scripts/services up --secure)"
RECSTREAM = str(Path(sys.executable).with_name("recstream"))


@pytest.fixture(scope="module")
def secure() -> dict[str, str]:
    """The RECSTREAM_* settings the secure layout wrote, checked to reach both servers."""
    try:
        lines = (SECURE / "recstream.env").read_text().splitlines()
        env = dict(line.split("=", 1) for line in lines if "=" in line)
        settings = Settings(**_fields(env))
        ensure_topics(kafka_connection(settings), [])
        asyncio.run(_ping(env["RECSTREAM_REDIS_URL"], env["RECSTREAM_REDIS_PASSWORD"]))
    except Exception as exc:
        pytest.fail(f"no secure layout under {SECURE} ({exc!r}); {HOW}")
    return env


def _fields(env: dict[str, str]) -> dict[str, Any]:
    return {k.removeprefix("RECSTREAM_").lower(): v for k, v in env.items()}


async def _ping(url: str, password: str | None) -> None:
    client = redis_client(url, password)
    try:
        await client.ping()
    finally:
        await client.aclose()


def _run(args: list[str], env: dict[str, str], stdin: str = "") -> subprocess.CompletedProcess:
    return subprocess.run(
        [RECSTREAM, *args],
        input=stdin,
        env={**os.environ, **env},
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_worker_and_cli_work_with_the_right_credentials(
    secure: dict[str, str], start_worker: Callable[..., Any]
) -> None:
    names = Names()
    env = {**secure, **names.env()}
    ensure_topics(kafka_connection(Settings(**_fields(env))), [TopicSpec(names.events, 4)])
    worker = start_worker(**env)
    events = [{"user_id": f"s{n % 5}", "item_id": f"i{n}", "type": "click"} for n in range(20)]
    sent = _run(["publish"], env, "\n".join(json.dumps(e) for e in events) + "\n")
    assert sent.returncode == 0, sent.stderr
    assert "sent 20" in sent.stdout + sent.stderr
    args = ["tail", "--topic", names.recommendations, "--from-beginning", "--max", "20"]
    tailed = _run([*args, "--timeout", "60"], env)
    assert tailed.returncode == 0, (tailed.stderr, worker.log_tail())
    lists = [json.loads(line) for line in tailed.stdout.splitlines() if line.strip()]
    assert len(lists) == 20
    assert {x["user_id"] for x in lists} == {f"s{n}" for n in range(5)}
    # The states are in the TLS Redis, as the ACL user wrote them.
    client = redis.Redis.from_url(
        env["RECSTREAM_REDIS_URL"], password=env["RECSTREAM_REDIS_PASSWORD"]
    )
    state = stored_state(client, names.redis_prefix, "s0")
    assert state["n"] == 4


def test_train_and_retrain_read_the_log_over_sasl_ssl(
    secure: dict[str, str], tmp_path: Path
) -> None:
    from recstream.cli import app

    names = Names()
    root = tmp_path / "artifacts"
    env = {**secure, **names.env(), "RECSTREAM_ARTIFACTS": str(root)}
    settings = Settings(**_fields(env))
    ensure_topics(kafka_connection(settings), [TopicSpec(names.events, 1)])
    producer = KafkaProducer(**kafka_connection(settings).kafka_python_kwargs(), acks="all")
    for batch, seed in ((range(30), 0), (range(30, 45), 1)):
        for e in genre_events(batch, range(3), range(10), seed):
            producer.send(names.events, key=e["user_id"].encode(), value=json.dumps(e).encode())
        producer.flush(30)
        shape = ["--max-len", "20", "--dim", "16", "--layers", "1", "--heads", "1"]
        quick = ["--epochs", "1", "--threads", "1"]
        if seed == 0:
            args = ["train", "--from-kafka", *shape, *quick, "--no-progress", "--json"]
        else:
            args = ["retrain", "--since-last", "--min-events", "10", *quick, "--json"]
        done = CliRunner().invoke(app, args, env=env)
        assert done.exit_code == 0, done.output
    line = json.loads(done.stdout.strip().splitlines()[-1])
    assert (line["version"], line["warm_from"], line["events_read"]) == ("v2", "v1", 120)
    producer.close()


async def _start_producer(**kwargs: Any) -> None:
    """An aiokafka producer, as the worker's, started and stopped."""
    producer = AIOKafkaProducer(**kwargs, request_timeout_ms=5000)
    try:
        await producer.start()
    finally:
        await producer.stop()


def test_plaintext_and_wrong_kafka_passwords_are_refused(secure: dict[str, str]) -> None:
    good = kafka_connection(Settings(**_fields(secure))).aiokafka_kwargs()
    wrong = {**good, "sasl_plain_password": "not-the-password"}
    plaintext = {"bootstrap_servers": good["bootstrap_servers"]}
    log = SECURE / "kafka" / "kafka.log"

    def failed_logins() -> int:
        return log.read_text(errors="replace").count("Failed authentication")

    before = failed_logins()
    with pytest.raises(KafkaConnectionError):
        asyncio.run(_start_producer(**wrong))
    # The broker saw the wrong password and said why.
    assert wait_until(lambda: failed_logins() > before, 10)
    with pytest.raises(KafkaConnectionError):
        asyncio.run(_start_producer(**plaintext))
    asyncio.run(_start_producer(**good))
    # The CLI says so plainly, without a traceback.
    refused = _run(["publish"], {**secure, "RECSTREAM_KAFKA_SASL_PASSWORD": "nope"}, "{}\n")
    assert refused.returncode == 1
    assert "Traceback" not in refused.stderr
    assert "recstream publish: cannot reach Kafka" in refused.stderr


def test_plaintext_default_user_and_wrong_redis_passwords_are_refused(
    secure: dict[str, str],
) -> None:
    url, password = secure["RECSTREAM_REDIS_URL"], secure["RECSTREAM_REDIS_PASSWORD"]
    host_port = url.split("@", 1)[1].split("/", 1)[0]
    with pytest.raises(redis.ConnectionError):  # plain TCP to the TLS port
        redis.Redis.from_url(f"redis://{host_port}/0", socket_timeout=5).ping()
    with pytest.raises(redis.AuthenticationError):
        redis.Redis.from_url(url, password="not-the-password").ping()
    no_user = url.replace("recstream@", "")  # Redis's default user is off
    with pytest.raises((redis.AuthenticationError, redis.ResponseError)):
        redis.Redis.from_url(no_user, password=password).ping()
    assert redis.Redis.from_url(url, password=password).ping()
