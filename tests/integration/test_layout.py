"""Key layout 3 on the real Redis: a worker refuses layout-1 and layout-2 data, ``recstream
redis-migrate`` moves it (values and times to live kept, each user's keys merged into one value),
and the worker then finds its users again."""

from __future__ import annotations

import asyncio
import json
import uuid

import orjson
import pytest
from typer.testing import CliRunner

from recstream.cli import app
from recstream.streams.connection import redis_client
from recstream.streams.keys import LAYOUT, Keys
from recstream.streams.layout import LayoutError, check_layout
from recstream.streams.records import Source, recommendation_json
from recstream.streams.uservalue import latest_record
from tests.integration.conftest import stored_value, sync_redis

STATE = json.dumps({"seq": ["i1"], "seen": ["i1"], "bought": [], "cats": {}, "n": 1})
RECORD = recommendation_json(
    "ab" * 16,
    "u:1",
    [("i7", 0.5), ("i9", 0.25)],
    "v3",
    Source(topic="events", partition=0, offset=41),
    7,
    9,
)
SERVED = orjson.dumps([["ab" * 16, 9, "v3", ["i7", "i9"], ["click:0"]]])


def _check(url: str, keys: Keys) -> None:
    async def run() -> None:
        client = redis_client(url)
        try:
            await check_layout(client, keys)
        finally:
            await client.aclose()

    asyncio.run(run())


def _migrate(redis_url: str, prefix: str) -> dict:
    env = {"RECSTREAM_REDIS_URL": redis_url, "RECSTREAM_REDIS_PREFIX": prefix}
    done = CliRunner().invoke(app, ["redis-migrate", "--json"], env=env)
    assert done.exit_code == 0, done.output
    return json.loads(done.stdout.strip().splitlines()[-1])


def test_layout1_is_refused_then_migrated_with_values_and_ttls(redis_url: str) -> None:
    prefix = f"rstest-layout-{uuid.uuid4().hex[:8]}"
    keys = Keys(prefix)
    r = sync_redis(redis_url)
    r.set(f"{prefix}:user:u:1:state", STATE, px=3_600_000)  # a user id with a colon
    r.set(f"{prefix}:user:u:1:recs", RECORD, px=1_000_000)
    r.set(f"{prefix}:user:u:1:served", SERVED, px=2_000_000)
    r.hset(f"{prefix}:stats", mapping={"valid": 5, "applied": 5})
    r.set(f"{prefix}:offset:events:0", 41)
    r.zadd(f"{prefix}:trending:3:books", {"i1": 2.5})
    r.set(f"{prefix}:eid:e1", 1, ex=600)
    with pytest.raises(LayoutError, match="redis-migrate"):
        _check(redis_url, keys)

    report = _migrate(redis_url, prefix)
    # 6 renamed to layout 2, then the user's 3 merged into one value.
    assert report == {
        "layout": LAYOUT,
        "moved": 9,
        "users": 1,
        "left": {"layout-1 event ids (expire on their own)": 1},
    }
    value = stored_value(r, prefix, "u:1")
    assert json.loads(value.state.to_json()) == json.loads(STATE)
    assert [s.row() for s in value.served] == orjson.loads(SERVED)
    assert latest_record("u:1", value) == RECORD  # the pull API answers as before, byte for byte
    assert 3_500_000 < r.pttl(keys.user("u:1")) <= 3_600_000  # the longest of the three
    assert r.hgetall(keys.stats()) == {b"valid": b"5", b"applied": b"5"}
    assert r.get(keys.watermark("events", 0)) == b"41"
    assert r.zscore(keys.trending(3, "books"), "i1") == 2.5
    assert not r.exists(f"{prefix}:user:u:1:state", f"{prefix}:stats")
    assert not r.exists(*(f"{prefix}:user:{{u:1}}:{k}" for k in ("state", "recs", "served")))
    _check(redis_url, keys)  # accepted now

    assert _migrate(redis_url, prefix)["moved"] == 0


def test_layout2_is_refused_then_merged_into_one_value_per_user(redis_url: str) -> None:
    prefix = f"rstest-layout-{uuid.uuid4().hex[:8]}"
    keys = Keys(prefix)
    r = sync_redis(redis_url)
    r.set(keys.layout(), "2")
    r.set(f"{prefix}:user:{{a}}:state", STATE)  # no time to live: the value keeps none
    r.set(f"{prefix}:user:{{a}}:recs", RECORD, px=1_000_000)
    r.set(f"{prefix}:user:{{b}}:state", STATE, px=1_000_000)  # never served a list
    r.set(keys.event_id("a", "e1"), 1, ex=600)
    with pytest.raises(LayoutError, match=r"layout 2 .*redis-migrate"):
        _check(redis_url, keys)

    report = _migrate(redis_url, prefix)
    assert (report["moved"], report["users"], report["left"]) == (3, 2, {})
    a, b = stored_value(r, prefix, "a"), stored_value(r, prefix, "b")
    assert r.pttl(keys.user("a")) == -1 and 0 < r.pttl(keys.user("b")) <= 1_000_000
    # A newest list without served lists (made before they were kept) becomes the first.
    assert [s.rec_id for s in a.served] == ["ab" * 16] and latest_record("a", a) is not None
    assert b.served == [] and latest_record("b", b) is None and b.state.events == 1
    assert r.exists(keys.event_id("a", "e1"))  # event ids keep their layout-2 names
    _check(redis_url, keys)


def test_an_empty_redis_is_marked_with_the_current_layout(redis_url: str) -> None:
    keys = Keys(f"rstest-layout-{uuid.uuid4().hex[:8]}")
    _check(redis_url, keys)
    assert sync_redis(redis_url).get(keys.layout()) == LAYOUT.encode()
