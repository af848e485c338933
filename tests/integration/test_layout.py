"""Key layout 2 on the real Redis: a worker refuses layout-1 data, ``recstream redis-migrate``
moves it (values and times to live kept), and the worker then finds its users again."""

from __future__ import annotations

import asyncio
import json
import uuid

import pytest
from typer.testing import CliRunner

from recstream.cli import app
from recstream.streams.connection import redis_client
from recstream.streams.keys import LAYOUT, Keys
from recstream.streams.layout import LayoutError, check_layout
from tests.integration.conftest import sync_redis


def _check(url: str, keys: Keys) -> None:
    async def run() -> None:
        client = redis_client(url)
        try:
            await check_layout(client, keys)
        finally:
            await client.aclose()

    asyncio.run(run())


def test_layout1_is_refused_then_migrated_with_values_and_ttls(redis_url: str) -> None:
    prefix = f"rstest-layout-{uuid.uuid4().hex[:8]}"
    keys = Keys(prefix)
    r = sync_redis(redis_url)
    state = json.dumps({"seq": ["i1"], "seen": ["i1"], "bought": [], "cats": {}, "n": 1})
    r.set(f"{prefix}:user:u:1:state", state, px=3_600_000)  # a user id with a colon
    r.set(f"{prefix}:user:u:1:recs", "{}")
    r.hset(f"{prefix}:stats", mapping={"valid": 5, "applied": 5})
    r.set(f"{prefix}:offset:events:0", 41)
    r.zadd(f"{prefix}:trending:3:books", {"i1": 2.5})
    r.set(f"{prefix}:eid:e1", 1, ex=600)
    with pytest.raises(LayoutError, match="redis-migrate"):
        _check(redis_url, keys)

    env = {"RECSTREAM_REDIS_URL": redis_url, "RECSTREAM_REDIS_PREFIX": prefix}
    done = CliRunner().invoke(app, ["redis-migrate", "--json"], env=env)
    assert done.exit_code == 0, done.output
    report = json.loads(done.stdout.strip().splitlines()[-1])
    assert report["layout"] == LAYOUT and report["moved"] == 5
    assert report["left"] == {"layout-1 event ids (expire on their own)": 1}
    assert r.get(keys.state("u:1")).decode() == state
    assert 3_500_000 < r.pttl(keys.state("u:1")) <= 3_600_000
    assert r.pttl(keys.recs("u:1")) == -1
    assert r.hgetall(keys.stats()) == {b"valid": b"5", b"applied": b"5"}
    assert r.get(keys.watermark("events", 0)) == b"41"
    assert r.zscore(keys.trending(3, "books"), "i1") == 2.5
    assert not r.exists(f"{prefix}:user:u:1:state", f"{prefix}:stats")
    _check(redis_url, keys)  # accepted now

    again = CliRunner().invoke(app, ["redis-migrate", "--json"], env=env)
    assert json.loads(again.stdout.strip().splitlines()[-1])["moved"] == 0


def test_an_empty_redis_is_marked_layout_2(redis_url: str) -> None:
    keys = Keys(f"rstest-layout-{uuid.uuid4().hex[:8]}")
    _check(redis_url, keys)
    assert sync_redis(redis_url).get(keys.layout()) == LAYOUT.encode()
