"""Key layout 2 (Redis Cluster hash tags), the names layout 1 moves to, and the cluster URL."""

from __future__ import annotations

import pytest
from redis.asyncio import Redis
from redis.asyncio.cluster import RedisCluster
from redis.crc import key_slot

from recstream.streams.connection import redis_client
from recstream.streams.keys import Keys
from recstream.streams.layout import layout2_name

KEYS = Keys("rs")


def slot(key: str) -> int:
    return key_slot(key.encode())


def test_a_users_keys_share_one_slot_and_users_spread() -> None:
    for user in ("u1", "alice", "x:y:z", "with}brace", "{odd"):
        mine = {KEYS.user(user), KEYS.event_id(user, "e9"), KEYS.event_id(user, "e10")}
        assert len({slot(k) for k in mine}) == 1, user
    assert len({slot(KEYS.user(f"u{n}")) for n in range(200)}) > 150


def test_shared_keys_share_one_slot() -> None:
    shared = [
        KEYS.stats(),
        KEYS.layout(),
        KEYS.watermark("events", 3),
        KEYS.trending(7),
        KEYS.trending(7, "books"),
        KEYS.catalog(),
        KEYS.catalog_version(),
        KEYS.metrics("v2"),
        KEYS.metrics_items("v2"),
        KEYS.metrics_versions(),
        KEYS.workers(),
    ]
    assert len({slot(k) for k in shared}) == 1
    assert all(k.startswith("rs:") for k in shared)


@pytest.mark.parametrize(
    ("old", "new"),
    [
        ("rs:user:u1:state", "rs:user:{u1}:state"),
        ("rs:user:a:b:recs", "rs:user:{a:b}:recs"),
        ("rs:user:u1:served", "rs:user:{u1}:served"),
        ("rs:stats", "rs:{rs}:stats"),
        ("rs:offset:events:3", "rs:{rs}:offset:events:3"),
        ("rs:trending:12:books", "rs:{rs}:trending:12:books"),
        ("rs:catalog:version", "rs:{rs}:catalog:version"),
        ("rs:metrics:v1:items", "rs:{rs}:metrics:v1:items"),
        ("rs:workers", "rs:{rs}:workers"),
        # No new name: layout 2 already, event ids (user unknown), others' keys.
        ("rs:user:{u1}:state", None),
        ("rs:{rs}:stats", None),
        ("rs:eid:e-17", None),
        ("rs:user:u1:other", None),
        ("other:stats", None),
        ("rs:somethingelse", None),
    ],
)
def test_layout1_names_map_to_layout2(old: str, new: str | None) -> None:
    assert layout2_name(KEYS, old) == new


def test_a_cluster_url_makes_a_cluster_client_of_every_node() -> None:
    client = redis_client("redis+cluster://:pw@127.0.0.1:17001,127.0.0.1:17002/?socket_timeout=3")
    assert isinstance(client, RedisCluster)
    nodes = {(n.host, n.port) for n in client.nodes_manager.startup_nodes.values()}
    assert {("127.0.0.1", 17001), ("127.0.0.1", 17002)} <= nodes
    assert client.connection_kwargs["password"] == "pw"
    settings_password = redis_client("redis+cluster://127.0.0.1:17001", password="s3")
    assert isinstance(settings_password, RedisCluster)
    assert settings_password.connection_kwargs["password"] == "s3"
    assert isinstance(redis_client("redis://127.0.0.1:6379/0"), Redis)


@pytest.mark.parametrize(
    "url", ["redis+cluster://", "redis+cluster://host", "redis+cluster://a:1,b:x"]
)
def test_a_bad_cluster_url_is_a_clear_error(url: str) -> None:
    with pytest.raises(ValueError, match=r"node|host:port"):
        redis_client(url)
