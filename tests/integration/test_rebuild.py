"""Redis lost: ``recstream rebuild-state`` rewinds the workers' groups (refused while a worker
runs) and the restarted worker rebuilds every user's state from the events log, each event
applied once — the same states as before the loss."""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from typing import Any

from kafka import KafkaProducer
from typer.testing import CliRunner

from recstream.cli import app
from recstream.streams.keys import Keys
from tests.integration.conftest import Names, read_topic, stored_state, sync_redis, wait_until


def test_a_wiped_redis_is_rebuilt_from_the_log(
    start_worker: Callable[..., Any],
    names: Names,
    producer: KafkaProducer,
    kafka_bootstrap: str,
    redis_url: str,
) -> None:
    users = [f"rb{n}" for n in range(20)]
    worker = start_worker()
    for n in range(200):
        user = users[n % 20]
        kind = "purchase" if n % 9 == 0 else "click"
        event = {"user_id": user, "item_id": f"i{n % 37}", "type": kind, "event_id": f"e{n}"}
        producer.send(names.events, key=user.encode(), value=json.dumps(event).encode())
    # A producer's retry: the same event again, same key, so same partition.
    producer.send(names.events, key=user.encode(), value=json.dumps(event).encode())
    producer.flush()
    assert len(read_topic(kafka_bootstrap, names.recommendations, 201)) == 201
    r, keys = sync_redis(redis_url), Keys(names.redis_prefix)
    before = {u: stored_state(r, names.redis_prefix, u) for u in users}
    assert sum(s["n"] for s in before.values()) == 200

    env = {"RECSTREAM_KAFKA_BOOTSTRAP": kafka_bootstrap, "RECSTREAM_REDIS_URL": redis_url}
    env |= names.env()
    refused = CliRunner().invoke(app, ["rebuild-state", "--wipe"], env=env)
    assert refused.exit_code == 1 and "active member" in refused.output
    assert r.get(keys.user("rb0")) is not None  # nothing wiped

    worker.stop()
    done = CliRunner().invoke(app, ["rebuild-state", "--wipe", "--json"], env=env)
    assert done.exit_code == 0, done.output
    report = json.loads(done.stdout.strip().splitlines()[-1])
    assert report["deleted_keys"] > 40
    assert set(report["groups"][names.app_id].values()) == {0}
    assert r.get(keys.user("rb0")) is None

    started = time.monotonic()
    worker = start_worker()
    assert wait_until(lambda: r.get(keys.user("rb19")) is not None, 60), worker.log_tail()
    rebuilt_s = time.monotonic() - started
    assert len(read_topic(kafka_bootstrap, names.recommendations, 402)) == 402
    after = {u: stored_state(r, names.redis_prefix, u) for u in users}
    assert after == before
    print(f"rebuild: 201 events replayed, states back {rebuilt_s:.1f} s after the worker started")
