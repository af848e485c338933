"""Settings read once from ``RECSTREAM_*`` environment variables into a frozen object.

The entry point (the CLI) builds one :class:`Settings` and passes plain values on to
constructors; nothing below the CLI reads the environment.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import Field, SecretStr, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from recstream.contract import DEFAULT_EVENT_WEIGHTS, EVENT_TYPES


class Settings(BaseSettings):
    """Every knob of recstream, one frozen object. Environment names are ``RECSTREAM_<FIELD>``."""

    model_config = SettingsConfigDict(env_prefix="RECSTREAM_", frozen=True, extra="ignore")

    # Kafka connection.
    kafka_bootstrap: str = "127.0.0.1:9092"
    kafka_security_protocol: Literal["PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL"] = "PLAINTEXT"
    kafka_sasl_mechanism: Literal["PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512"] = "PLAIN"
    kafka_sasl_username: str | None = None
    kafka_sasl_password: SecretStr | None = None
    kafka_ssl_cafile: Path | None = None
    kafka_ssl_certfile: Path | None = None
    kafka_ssl_keyfile: Path | None = None
    kafka_ssl_check_hostname: bool = True

    # Redis connection; a password given here overrides one embedded in the URL.
    redis_url: str = "redis://127.0.0.1:6379/0"
    redis_password: SecretStr | None = None
    redis_prefix: str = "recstream"

    # Topic names.
    topic_events: str = "events"
    topic_recommendations: str = "recommendations"
    topic_dlq: str = "events.dlq"
    topic_items: str = "items"
    topic_model_updates: str = "model-updates"
    topic_metrics: str = "metrics"

    # Worker.
    app_id: str = "recstream"
    artifacts: Path = Path("./artifacts")
    web_host: str = "127.0.0.1"
    web_port: int = Field(default=6066, ge=1, le=65535)
    # Partitions of the topics the worker creates when missing: the most workers one group can use.
    partitions: int = Field(default=4, ge=1, le=1024)
    # Replication of the topics recstream creates; 0: the brokers' default.replication.factor.
    replication_factor: int = Field(default=0, ge=0, le=16)
    # How long a crashed worker keeps its partitions before the group hands them on.
    session_timeout_s: float = Field(default=30.0, ge=6.0, le=300.0)
    # Static group membership: a stable name per worker (say, its pod name). A worker that
    # restarts under it within the session timeout keeps its partitions, no rebalance.
    group_instance_id: str | None = None
    # Micro-batches: whatever has arrived, at most this many events; an idle worker waits at
    # most this long for the first.
    batch_size: int = Field(default=256, ge=1, le=100_000)
    batch_wait_ms: float = Field(default=5.0, ge=0.0, le=10_000.0)
    # How often offsets are committed (after the lists are delivered): what a crash replays.
    commit_interval_ms: float = Field(default=1000.0, ge=0.0, le=600_000.0)
    # Users whose state a worker keeps in memory between batches (it is their only writer
    # while it owns their partition); 0 reads every state from Redis each batch.
    state_cache_users: int = Field(default=50_000, ge=0, le=100_000_000)
    # A user's keys in Redis (state, latest list, served lists) expire this long after their
    # last event: inactive users stop costing memory, and come back as new users. 0: never.
    user_ttl_days: float = Field(default=90.0, ge=0.0, le=36_500.0)
    # What the user encoder computes in. int8 (ONNX Runtime, the version's encoder.int8.onnx,
    # published when it ranks like torch, its activation scales calibrated at publish time) is
    # the fastest on one thread. bfloat16 (torch) helps only large batches on CPUs with native
    # bfloat16. auto: int8 when the version has a calibrated copy and the CPU has integer
    # dot-product instructions (VNNI, AMX, Arm dotprod), else float32.
    encoder_dtype: Literal["auto", "float32", "bfloat16", "int8"] = "auto"
    # Who runs the user encoder: ONNX Runtime (the version's encoder.onnx or its int8 copy;
    # faster on one thread, needs no torch) or torch. auto: ONNX Runtime when the version has
    # the file for the dtype, else torch.
    encoder_backend: Literal["auto", "onnx", "torch"] = "auto"
    # Retrieval and re-ranking: candidates fetched from the index, then MMR down to top_k.
    candidates: int = Field(default=100, ge=1, le=10_000)
    mmr_lambda: float = Field(default=0.7, ge=0.0, le=1.0)
    mmr_similarity: Literal["embedding", "category"] = "embedding"
    trending_half_life_hours: float = Field(default=6.0, gt=0.0)
    top_k: int = Field(default=10, ge=1, le=1000)
    event_weights: dict[str, float] = Field(default_factory=lambda: dict(DEFAULT_EVENT_WEIGHTS))
    max_event_bytes: int = Field(default=65536, ge=256)
    # Events stamped further than this in the future are rejected (clock skew allowance).
    max_future_skew_ms: int = Field(default=86_400_000, ge=0)
    # Online metrics: an interaction without rec_id counts as a hit on the user's last list
    # when it happens within this window after the list was made.
    attribution_window_s: float = Field(default=1800.0, ge=0.0)
    # Lists kept per user to attribute interactions that carry a rec_id.
    attribution_lists: int = Field(default=5, ge=1, le=100)
    # Seconds between two metrics snapshots on the metrics topic.
    metrics_interval_s: float = Field(default=10.0, ge=0.1, le=3600.0)
    # Names this worker in snapshots and in Redis (which version it serves); default host-pid.
    worker_id: str | None = None
    # An A/B test between model versions: "v7:50,v8:50" (versions under RECSTREAM_ARTIFACTS and
    # their shares); users split by a stable hash; empty: no test (streams/ab.py).
    ab: str = ""
    # Each recommended item's `because` (the history items nearest it); false saves the work
    # (10–15 µs per list measured: docs/streams.md) where nobody reads the reasons.
    explain: bool = True

    @field_validator("event_weights")
    @classmethod
    def _known_event_types(cls, value: dict[str, float]) -> dict[str, float]:
        unknown = sorted(set(value) - set(EVENT_TYPES))
        if unknown:
            raise ValueError(f"unknown event types {unknown}; known: {list(EVENT_TYPES)}")
        if any(w < 0 for w in value.values()):
            raise ValueError("event weights must be >= 0")
        return {**DEFAULT_EVENT_WEIGHTS, **value}

    @field_validator("ab")
    @classmethod
    def _ab_split(cls, value: str) -> str:
        from recstream.streams.ab import parse_split

        parse_split(value)  # raises with the reason
        return value.strip()

    @field_validator("redis_prefix")
    @classmethod
    def _prefix_without_tags(cls, value: str) -> str:
        # Braces would move the keys' Redis Cluster hash tags (streams/keys.py).
        if not value or any(c in value for c in "{} \t\n"):
            raise ValueError("the Redis key prefix must be non-empty, without braces or spaces")
        return value

    @field_validator("kafka_bootstrap")
    @classmethod
    def _bootstrap_has_port(cls, value: str) -> str:
        for server in value.split(","):
            host, sep, port = server.strip().rpartition(":")
            if not sep or not host or not port.isdigit():
                raise ValueError(f"bootstrap server {server!r} must look like host:port")
        return value
