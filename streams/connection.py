"""How to reach Kafka and Redis, as plain values (built from the settings by recstream.serving).

Both the faust worker (aiokafka underneath) and the small synchronous tools (kafka-python:
publish, tail, tests) are configured from the same :class:`KafkaConnection`, so SASL and TLS
behave identically everywhere.
"""

from __future__ import annotations

import ssl
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import faust
from aiokafka import AIOKafkaConsumer
from redis.asyncio import Redis
from redis.asyncio.cluster import ClusterNode, RedisCluster

from recstream.streams.store import RedisClient


@dataclass(frozen=True)
class KafkaConnection:
    bootstrap: str
    security_protocol: str = "PLAINTEXT"
    sasl_mechanism: str = "PLAIN"
    sasl_username: str | None = None
    sasl_password: str | None = None
    ssl_cafile: Path | None = None
    ssl_certfile: Path | None = None
    ssl_keyfile: Path | None = None
    ssl_check_hostname: bool = True

    @property
    def servers(self) -> list[str]:
        return [s.strip() for s in self.bootstrap.split(",") if s.strip()]

    @property
    def uses_tls(self) -> bool:
        return self.security_protocol in ("SSL", "SASL_SSL")

    @property
    def uses_sasl(self) -> bool:
        return self.security_protocol.startswith("SASL_")

    def ssl_context(self) -> ssl.SSLContext | None:
        if not self.uses_tls:
            return None
        context = ssl.create_default_context(cafile=self.ssl_cafile)
        if self.ssl_certfile:
            context.load_cert_chain(self.ssl_certfile, self.ssl_keyfile)
        context.check_hostname = self.ssl_check_hostname
        return context

    def faust_broker(self) -> list[str]:
        return [f"kafka://{server}" for server in self.servers]

    def faust_credentials(self) -> faust.SASLCredentials | faust.SSLCredentials | None:
        if self.uses_sasl:
            if not self.sasl_username or self.sasl_password is None:
                raise ValueError(
                    f"{self.security_protocol} needs RECSTREAM_KAFKA_SASL_USERNAME and "
                    "RECSTREAM_KAFKA_SASL_PASSWORD"
                )
            return faust.SASLCredentials(
                username=self.sasl_username,
                password=self.sasl_password,
                ssl_context=self.ssl_context(),
                mechanism=self.sasl_mechanism,
            )
        context = self.ssl_context()
        return faust.SSLCredentials(context) if context else None

    def aiokafka_kwargs(self) -> dict[str, Any]:
        """Keyword arguments for aiokafka's clients beside the faust app (e.g. the consumer
        that follows model-updates): the same names as kafka-python's."""
        return self.kafka_python_kwargs()

    def kafka_python_kwargs(self) -> dict[str, Any]:
        """Keyword arguments for kafka-python's KafkaProducer/KafkaConsumer/KafkaAdminClient."""
        kwargs: dict[str, Any] = {
            "bootstrap_servers": self.servers,
            "security_protocol": self.security_protocol,
        }
        if self.uses_tls:
            kwargs["ssl_context"] = self.ssl_context()
        if self.uses_sasl:
            kwargs["sasl_mechanism"] = self.sasl_mechanism
            kwargs["sasl_plain_username"] = self.sasl_username
            kwargs["sasl_plain_password"] = self.sasl_password
        return kwargs


def groupless_consumer(kafka: KafkaConnection, topic: str) -> AIOKafkaConsumer:
    """A consumer of every partition of ``topic`` outside any group: aiokafka assigns them all,
    starts at the earliest offset (nothing is committed) and notices new partitions, or the
    topic created later, at the next metadata refresh."""
    return AIOKafkaConsumer(
        topic,
        **kafka.aiokafka_kwargs(),
        group_id=None,
        enable_auto_commit=False,
        auto_offset_reset="earliest",
        metadata_max_age_ms=10_000,
    )


CLUSTER_SCHEMES = {"redis+cluster": False, "rediss+cluster": True}  # scheme → TLS


def redis_client(url: str, password: str | None = None) -> RedisClient:
    """An asyncio Redis client; ``password`` (from settings) overrides one in the URL. A
    ``redis+cluster://host:port,host:port`` URL (``rediss+cluster://`` with TLS) names a Redis
    Cluster by some of its nodes; the client learns the rest from them."""
    kwargs: dict[str, Any] = {} if password is None else {"password": password}
    cluster = cluster_url(url)
    if cluster is None:
        return Redis.from_url(url, **kwargs)
    first, nodes = cluster
    return RedisCluster.from_url(
        first, startup_nodes=[ClusterNode(host, port) for host, port in nodes], **kwargs
    )


def cluster_url(url: str) -> tuple[str, list[tuple[str, int]]] | None:
    """For a Redis Cluster URL: a plain URL of its first node (with the credentials and
    options, which apply to every node) and every node it names; None for any other URL."""
    scheme, sep, rest = url.partition("://")
    if not sep or scheme not in CLUSTER_SCHEMES:
        return None
    userinfo, at, hosts = rest.rpartition("@")
    hosts, _, tail = hosts.partition("/")
    nodes = [_cluster_node(h) for h in hosts.split(",") if h.strip()]
    if not nodes:
        raise ValueError(f"{scheme}:// URL names no node: {url!r}")
    plain = "rediss" if CLUSTER_SCHEMES[scheme] else "redis"
    query = tail.partition("?")[2]
    first = f"{plain}://{userinfo}{at}{nodes[0][0]}:{nodes[0][1]}" + (f"?{query}" if query else "")
    return first, nodes


def _cluster_node(text: str) -> tuple[str, int]:
    host, sep, port = text.strip().rpartition(":")
    if not sep or not host or not port.isdigit():
        raise ValueError(f"Redis Cluster node {text!r} must look like host:port")
    return host, int(port)
