"""Attribution and online metrics end to end on the real broker and Redis: a scripted user
clicks and buys from the lists the worker served; the counters in Redis, the worker's
``/metrics`` and a snapshot on the metrics topic count exactly the hits."""

from __future__ import annotations

import json
import time
import urllib.request
from typing import Any

import pytest
from kafka import KafkaProducer

from recstream.streams.keys import Keys
from tests.integration.conftest import Names, read_topic, stored_value, sync_redis, wait_until

pytestmark = pytest.mark.integration

ITEMS = [f"c{c}-{n}" for c in range(3) for n in range(20)]  # 20 per category
FANS = 80


def send(producer: KafkaProducer, topic: str, user: str, item: str, kind: str = "click", **kw):
    payload = {"user_id": user, "item_id": item, "type": kind, **kw}
    return producer.send(topic, key=user.encode(), value=json.dumps(payload).encode()).get(30)


def http(port: str, path: str) -> bytes:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=10) as resp:
        return resp.read()


def list_for(port: str, user: str, meta: Any) -> dict:
    """The list the worker made for the event at ``meta`` (via the pull API)."""
    found: dict = {}

    def check() -> bool:
        try:
            rec = json.loads(http(port, f"/users/{user}/recommendations"))
        except OSError:
            return False
        found.update(rec)
        if rec["origin"] != "stream":  # made on the spot: the stream's list is not in yet
            return False
        src = rec["source"]
        return (src["partition"], src["offset"]) == (meta.partition, meta.offset)

    assert wait_until(check, 60), found
    return found


def items_of(rec: dict) -> list[str]:
    return [i["item_id"] for i in rec["items"]]


def test_hits_are_attributed_and_counted_everywhere(
    start_worker, producer: KafkaProducer, names: Names, kafka_bootstrap: str, redis_url: str
) -> None:
    items_topic = f"items-{names.tag}"
    worker_id = f"w-{names.tag}"
    worker = start_worker(
        RECSTREAM_TOPIC_ITEMS=items_topic,
        RECSTREAM_METRICS_INTERVAL_S="1",
        RECSTREAM_WORKER_ID=worker_id,
    )
    port = worker.env["RECSTREAM_WEB_PORT"]
    # A catalogue with categories, then trending items (per category) for cold-start lists.
    for item in ITEMS:
        value = {"item_id": item, "category": item[:2], "available": True}
        producer.send(items_topic, key=item.encode(), value=json.dumps(value).encode())
    producer.flush()
    r = sync_redis(redis_url)
    prefix = names.redis_prefix
    assert wait_until(lambda: r.hlen(Keys(prefix).catalog()) == len(ITEMS)), worker.log_tail()
    time.sleep(1.5)  # the worker reloads the catalogue every second
    for n in range(FANS):
        fan = {"user_id": f"fan-{n}", "item_id": ITEMS[n % len(ITEMS)], "type": "click"}
        producer.send(names.events, key=fan["user_id"].encode(), value=json.dumps(fan).encode())
    producer.flush()
    assert len(read_topic(kafka_bootstrap, names.recommendations, FANS)) == FANS, worker.log_tail()

    def step(item: str, kind: str = "click", **kw: Any) -> dict:
        return list_for(port, "alice", send(producer, names.events, "alice", item, kind, **kw))

    l1 = step("c0-0")
    assert len(l1["items"]) == 10
    l2 = step(items_of(l1)[2], rec_id=l1["rec_id"])  # rec_id: L1's third item
    l3 = step(items_of(l2)[0])  # no rec_id: in the last list (L2), within the window
    l4 = step(items_of(l1)[3], "purchase", rec_id=l1["rec_id"])  # an older list's fourth item
    l5 = step("zzz", rec_id=l4["rec_id"])  # not in the list it names: no hit
    late = l5["created_ts"] + 31 * 60_000
    l6 = step(items_of(l5)[1], ts=late)  # no rec_id, after the window: no hit
    # A producer's retry (same event_id) is applied once, so counted once.
    dup = {"rec_id": l6["rec_id"], "event_id": f"dup-{names.tag}"}
    step(items_of(l6)[1], **dup)
    step(items_of(l6)[4], **dup)
    lists = FANS + 8
    assert l3["model_version"] == "none"

    counters = {k.decode(): v.decode() for k, v in r.hgetall(Keys(prefix).metrics("none")).items()}
    assert int(counters["lists"]) == lists
    assert int(counters["hit:click"]) == 3
    assert int(counters["hit:purchase"]) == 1
    positions = {k: int(v) for k, v in counters.items() if k.startswith("pos:")}
    assert positions == {"pos:click:2": 1, "pos:click:0": 1, "pos:click:1": 1, "pos:purchase:3": 1}
    assert int(counters["catalog_size"]) == len(ITEMS)
    assert int(counters["diversity_n"]) >= 8
    assert r.smembers(Keys(prefix).metrics_versions()) == {b"none"}
    assert 10 <= r.pfcount(Keys(prefix).metrics_items("none")) <= len(ITEMS) + 1
    served = [s.row() for s in stored_value(r, prefix, "alice").served]
    assert len(served) == 5  # alice's last lists, at most RECSTREAM_ATTRIBUTION_LISTS (5)
    assert [row[0] for row in served[:3]] == [x["rec_id"] for x in (l4, l5, l6)]

    text = http(port, "/metrics").decode()
    for line in (
        'recstream_attributed_total{type="click",version="none"} 3.0',
        'recstream_attributed_total{type="purchase",version="none"} 1.0',
        f'recstream_lists_total{{version="none"}} {float(lists)}',
        'recstream_model_serving{version="none"} 1.0',
        'recstream_events_total{outcome="replayed"} 1.0',
    ):
        assert line in text, line
    assert 'recstream_event_to_list_seconds_bucket{le="+Inf",version="none"}' in text
    # Every event was read: the partitions the worker fetched from show no lag.
    lags = [line for line in text.splitlines() if line.startswith("recstream_consumer_lag{")]
    assert lags and all(line.endswith(" 0.0") for line in lags), lags

    def latest_snapshot() -> dict:
        records = read_topic(kafka_bootstrap, names.metrics, 1, timeout_s=5, settle_s=0.5)
        snaps = [json.loads(x.value) for x in records]
        done = [s for s in snaps if s["versions"].get("none", {}).get("clicks") == 3]
        found.extend(snaps)
        return done[-1] if done else {}

    found: list[dict] = []
    assert wait_until(lambda: bool(latest_snapshot()), 30), found[-1:]
    snap = latest_snapshot()
    assert snap["worker"] == worker_id
    assert snap["serving"]["version"] == "none"
    assert snap["lag"] and set(snap["lag"].values()) == {0}
    none = snap["versions"]["none"]
    assert (none["impressions"], none["clicks"], none["purchases"]) == (lists, 3, 1)
    assert none["ctr"] == pytest.approx(3 / lists)
    assert none["conversion"] == pytest.approx(1 / lists)
    assert none["clicks_by_position"] == [1, 1, 1]
    assert 0 < none["coverage"] <= 1
    assert none["coverage"] == pytest.approx(none["distinct_items"] / len(ITEMS))
    assert 0 <= none["diversity"] <= 1
    assert any(s["versions"].get("none", {}).get("latency_ms", {}).get("n", 0) > 0 for s in found)

    entry = json.loads(r.hget(Keys(prefix).workers(), worker_id))
    assert entry["version"] == "none"
    assert entry["seen_ms"] >= entry["since_ms"]
