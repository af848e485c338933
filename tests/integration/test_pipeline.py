"""The real-time pipeline on the real broker and Redis, without a model (trending only):
cold start, catalogue filtering, pull API, replay idempotence, crash and resume."""

from __future__ import annotations

import json
import signal
import time
import urllib.error
import urllib.request
from collections.abc import Callable

import pytest
import redis
from kafka import KafkaProducer

from recstream.streams.keys import Keys
from recstream.streams.uservalue import unpack
from tests.integration.conftest import Names, read_topic, stored_state, sync_redis, wait_until

pytestmark = pytest.mark.integration


def send(producer: KafkaProducer, topic: str, user: str, item: str, kind: str = "click", **kw):
    payload = {"user_id": user, "item_id": item, "type": kind, **kw}
    return producer.send(topic, key=user.encode(), value=json.dumps(payload).encode())


def lists_by_user(bootstrap: str, topic: str, count: int) -> dict[str, list[dict]]:
    out: dict[str, list[dict]] = {}
    for rec in read_topic(bootstrap, topic, count):
        value = json.loads(rec.value)
        out.setdefault(value["user_id"], []).append(value)
    return out


def user_state_snapshot(r: redis.Redis, prefix: str) -> dict[bytes, bytes]:
    """Every user's state, byte for byte, and the trending sets (a replay makes new lists, so
    the users' served lists are left out)."""
    users = sorted(r.scan_iter(f"{prefix}:user:*"))
    assert users, "no users in Redis"
    snapshot = {k: unpack(r.get(k)).state.to_json().encode() for k in users}
    trending = sorted(r.scan_iter(f"{Keys(prefix).shared_head}:trending*"))
    return snapshot | {k: r.dump(k) for k in trending}


def test_cold_start_user_gets_trending_items_and_unavailable_items_are_filtered(
    start_worker, producer: KafkaProducer, names: Names, kafka_bootstrap: str, redis_url: str
) -> None:
    items_topic = f"items-{names.tag}"
    worker = start_worker(RECSTREAM_TOPIC_ITEMS=items_topic)
    # "hot" is the most popular item, "warm" second, "gone" popular but withdrawn.
    for n in range(30):
        send(producer, names.events, f"fan-{n}", "hot")
        if n < 20:
            send(producer, names.events, f"fan-{n}", "gone")
        if n < 12:
            send(producer, names.events, f"fan-{n}", "warm", "purchase")
    producer.send(items_topic, key=b"gone", value=b'{"item_id": "gone", "available": false}')
    producer.flush()
    read_topic(kafka_bootstrap, names.recommendations, 62)
    r = sync_redis(redis_url)
    assert wait_until(lambda: r.hget(Keys(names.redis_prefix).catalog(), "gone") is not None)
    time.sleep(1.5)  # the worker reloads the catalogue every second

    send(producer, names.events, "newcomer", "never-seen-before").get(30)
    lists = lists_by_user(kafka_bootstrap, names.recommendations, 63)
    (newcomer,) = lists["newcomer"]
    ranked = [i["item_id"] for i in newcomer["items"]]
    # 12 purchases (weight 3) outweigh 30 clicks (weight 1).
    assert ranked[:2] == ["warm", "hot"], worker.log_tail()
    assert "gone" not in ranked
    assert "never-seen-before" not in ranked
    assert newcomer["model_version"] == "none"

    # Pull API: the latest list for the user, the record published (rebuilt from the user's one
    # value in Redis, scores exact); a stranger gets trending items.
    port = worker.env["RECSTREAM_WEB_PORT"]
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/users/newcomer/recommendations") as resp:
        pulled = json.loads(resp.read())
    assert pulled.pop("origin") == "stream" and pulled == newcomer
    # A user never seen: trending items now, never a 404.
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/users/stranger/recommendations") as resp:
        stranger = json.loads(resp.read())
    assert stranger["origin"] == "trending" and stranger["rec_id"] is None
    assert [i["item_id"] for i in stranger["items"]][:2] == ["warm", "hot"]
    # Without a model: similar items cannot be found, and readiness says why lists are trending.
    with pytest.raises(urllib.error.HTTPError) as info:
        urllib.request.urlopen(f"http://127.0.0.1:{port}/items/hot/similar")
    assert info.value.code == 503 and b"no model" in info.value.read()
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/readyz") as resp:
        ready = json.loads(resp.read())
    assert ready["ready"] and ready["checks"]["model"]["version"] == "none"
    assert "trending" in ready["checks"]["model"]["detail"]


def test_replaying_the_log_leaves_user_state_byte_identical(
    start_worker, producer: KafkaProducer, names: Names, kafka_bootstrap: str, redis_url: str
) -> None:
    for n in range(40):
        send(
            producer, names.events, f"u{n % 7}", f"i{n % 11}", "purchase" if n % 5 == 0 else "click"
        )
    send(producer, names.events, "u1", "i3", event_id="dup-1")
    send(producer, names.events, "u1", "i4", event_id="dup-1")  # a producer retry: dropped
    producer.flush()
    first = start_worker()
    read_topic(kafka_bootstrap, names.recommendations, 42)
    first.stop()
    r = sync_redis(redis_url)
    before = user_state_snapshot(r, names.redis_prefix)
    assert stored_state(r, names.redis_prefix, "u1")["seq"][-1] == "i3"

    # A second consumer group reads the same log from the start: a full replay.
    replay = start_worker(RECSTREAM_APP_ID=f"{names.app_id}-replay")
    recs = read_topic(kafka_bootstrap, names.recommendations, 84)
    assert len(recs) >= 84, replay.log_tail()
    assert user_state_snapshot(r, names.redis_prefix) == before
    sources = [json.dumps(json.loads(x.value)["source"], sort_keys=True) for x in recs]
    assert len(set(sources)) == 42  # every event answered, replays with the same source


def test_a_killed_worker_resumes_from_committed_offsets_and_loses_no_event(
    start_worker, producer: KafkaProducer, names: Names, kafka_bootstrap: str, redis_url: str
) -> None:
    users = [f"k{n}" for n in range(20)]
    worker = start_worker()
    sent = 0
    for n in range(300):
        send(producer, names.events, users[n % 20], f"i{n}")
        sent += 1
        if n == 150:
            producer.flush()
            read_topic(kafka_bootstrap, names.recommendations, 100)
            worker.stop(signal.SIGKILL)  # no goodbye: offsets only as far as committed
            worker = start_worker()
    producer.flush()
    recs = read_topic(kafka_bootstrap, names.recommendations, sent, timeout_s=120)
    sources = {json.dumps(json.loads(x.value)["source"], sort_keys=True) for x in recs}
    assert len(sources) == sent, worker.log_tail()
    r = sync_redis(redis_url)
    for user in users:  # each event applied exactly once, despite the replay after the kill
        state = stored_state(r, names.redis_prefix, user)
        assert state["n"] == 15


def test_workers_joining_and_leaving_the_group_lose_no_event_and_apply_each_once(
    start_worker, producer: KafkaProducer, names: Names, kafka_bootstrap: str, redis_url: str
) -> None:
    users = [f"g{n}" for n in range(40)]
    first = start_worker()
    sent = 0

    def burst(n: int = 1, until: Callable[[], bool] = lambda: True) -> None:
        """At least ``n`` events, and on until ``until()``; spaced so that they keep coming
        while partitions move."""
        nonlocal sent
        deadline = time.monotonic() + 120
        while n > 0 or not until():
            assert time.monotonic() < deadline, "the group never settled"
            send(producer, names.events, users[sent % len(users)], f"i{sent}")
            sent, n = sent + 1, n - 1
            time.sleep(0.003)
        producer.flush()

    burst(120)
    read_topic(kafka_bootstrap, names.recommendations, 120)
    second = start_worker()  # joins the group: partitions move while events keep coming
    burst(until=lambda: "assigned" in second.log_tail())
    burst(120)
    first.proc.send_signal(signal.SIGTERM)  # a graceful leave: its partitions move on
    burst(until=lambda: not first.alive)
    burst(120 + (-sent - 120) % len(users))  # a whole number of events per user
    recs = read_topic(kafka_bootstrap, names.recommendations, sent, timeout_s=120, settle_s=3)
    sources = [json.dumps(json.loads(x.value)["source"], sort_keys=True) for x in recs]
    assert len(set(sources)) == sent, second.log_tail()  # every event answered
    # Handled batches are committed before partitions move, so nothing is processed twice —
    # unless a worker starved of CPU missed its session timeout and was fenced out before it
    # could commit (it logs the refused commit); then replays are allowed, and harmless.
    logs = first.log_tail(2000) + second.log_tail(2000)
    duplicates = len(sources) - sent
    assert duplicates == 0 or "refused" in logs, f"{duplicates} duplicate lists\n{logs[-5000:]}"
    r = sync_redis(redis_url)
    for user in users:
        state = stored_state(r, names.redis_prefix, user)
        assert state["n"] == sent // len(users)
    assert "assigned" in second.log_tail()


def test_redis_connections_killed_mid_stream_lose_no_event_and_apply_each_once(
    start_worker, producer: KafkaProducer, names: Names, kafka_bootstrap: str, redis_url: str
) -> None:
    """The worker writes each batch behind the next one's work: a write cut off with its
    connection is sent again only if its partitions' watermarks show it did not land, and
    reads cut off retry the batch — each event applied once, every one answered."""
    users = [f"c{n}" for n in range(20)]
    worker = start_worker()
    r = sync_redis(redis_url)
    send(producer, names.events, "warm-up", "i").get(30)
    read_topic(kafka_bootstrap, names.recommendations, 1, timeout_s=60)
    kills = 0  # connections killed (the pool reconnects; a kill may find none open)
    for n in range(1000):
        send(producer, names.events, users[n % 20], f"i{n}")
        if n % 50 == 25:
            # Every connection but this one, the worker's included, while events flow.
            kills += r.client_kill_filter(_type="normal", skipme=True)
        time.sleep(0.002)
    producer.flush()
    assert kills >= 1
    recs = read_topic(kafka_bootstrap, names.recommendations, 1001, timeout_s=120, settle_s=3)
    sources = {json.dumps(json.loads(x.value)["source"], sort_keys=True) for x in recs}
    assert len(sources) == 1001, worker.log_tail()  # every event answered
    for user in users:  # each applied exactly once
        state = stored_state(r, names.redis_prefix, user)
        assert state["n"] == 50, (user, state["n"])
    assert read_topic(kafka_bootstrap, names.dlq, 0, timeout_s=3, settle_s=1) == []
