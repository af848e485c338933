"""The worker on the real broker and Redis: bad events to the DLQ with a reason, good ones
processed, and the worker keeps running."""

from __future__ import annotations

import base64
import json
import time

import pytest
from kafka import KafkaProducer

from recstream.streams.keys import Keys
from tests.integration.conftest import Names, read_topic, stored_state, sync_redis

pytestmark = pytest.mark.integration

NOW = int(time.time() * 1000)


def event(user: str, **extra: object) -> bytes:
    return json.dumps({"user_id": user, "item_id": "i1", "type": "click", **extra}).encode()


BAD: list[tuple[bytes | None, str]] = [
    (b'{"user_id": "u", "item_id":', "malformed JSON"),
    (json.dumps({"item_id": "i", "type": "click"}).encode(), "user_id: Field required"),
    (json.dumps({"user_id": 5, "item_id": "i", "type": "click"}).encode(), "valid string"),
    (event("u", ts="yesterday"), "ts: Input should be a valid integer"),
    (event("x" * 300), "at most 256 characters"),
    (event("u", type="teleport"), "type: Input should be"),
    (b"\xc3\x28\xff not utf-8", "not valid UTF-8"),
    (b"", "empty value"),
    (None, "empty value"),
]


def dlq_raw(letter: dict) -> bytes:
    if letter["raw_encoding"] == "base64":
        return base64.b64decode(letter["raw"])
    return letter["raw"].encode()


def test_bad_events_go_to_the_dlq_and_good_ones_are_processed(
    start_worker, producer: KafkaProducer, names: Names, kafka_bootstrap: str, redis_url: str
) -> None:
    good = [event(f"good-{i}", ts=NOW + i) for i in range(len(BAD))]
    where_bad = {}
    for i, (value, reason) in enumerate(BAD):
        producer.send(names.events, key=f"good-{i}".encode(), value=good[i]).get(30)
        meta = producer.send(names.events, key=b"bad", value=value).get(30)
        where_bad[(meta.partition, meta.offset)] = (value, reason)
    worker = start_worker()

    letters = read_topic(kafka_bootstrap, names.dlq, len(BAD), settle_s=3)
    assert len(letters) == len(BAD), worker.log_tail()
    for record in letters:
        letter = json.loads(record.value)
        src = letter["source"]
        assert src["topic"] == names.events
        value, reason = where_bad[(src["partition"], src["offset"])]
        assert reason in letter["error"]
        assert dlq_raw(letter) == (value or b"")
        assert letter["key"] == "bad"
        assert abs(letter["ts"] - NOW) < 600_000

    # Every good event yields one list on the recommendations topic (trending: no model here).
    recs = read_topic(kafka_bootstrap, names.recommendations, len(good), settle_s=2)
    assert sorted(json.loads(r.value)["user_id"] for r in recs) == sorted(
        f"good-{i}" for i in range(len(good))
    ), worker.log_tail()
    r = sync_redis(redis_url)
    state = stored_state(r, names.redis_prefix, "good-3")
    assert state["seq"] == ["i1"]
    assert state["n"] == 1
    stats = r.hgetall(Keys(names.redis_prefix).stats())
    assert int(stats[b"valid"]) == len(good)
    assert int(stats[b"rejected"]) == len(BAD)

    # Still alive and still working after all that.
    assert worker.alive
    producer.send(names.events, key=b"late", value=event("late")).get(30)
    recs = read_topic(kafka_bootstrap, names.recommendations, len(good) + 1)
    assert "late" in {json.loads(r.value)["user_id"] for r in recs}, worker.log_tail()
    assert worker.alive
