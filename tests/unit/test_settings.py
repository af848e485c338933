"""Settings come from RECSTREAM_* variables, are frozen, and reject nonsense clearly."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from recstream.contract import DEFAULT_EVENT_WEIGHTS
from recstream.serving import kafka_connection
from recstream.settings import Settings
from recstream.streams.connection import KafkaConnection


def test_defaults_match_the_contract(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("RECSTREAM_KAFKA_BOOTSTRAP", "RECSTREAM_REDIS_URL", "RECSTREAM_TOP_K"):
        monkeypatch.delenv(name, raising=False)
    s = Settings()
    assert s.kafka_bootstrap == "127.0.0.1:9092"
    assert s.redis_url == "redis://127.0.0.1:6379/0"
    assert (s.topic_events, s.topic_recommendations, s.topic_dlq) == (
        "events",
        "recommendations",
        "events.dlq",
    )
    assert s.top_k == 10
    assert s.encoder_dtype == "auto"  # int8 where the version has a calibrated copy
    assert s.event_weights["purchase"] > s.event_weights["click"]


def test_environment_is_read_once_into_a_frozen_object(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("RECSTREAM_TOP_K", "25")
    monkeypatch.setenv("RECSTREAM_EVENT_WEIGHTS", '{"purchase": 5}')
    monkeypatch.setenv("RECSTREAM_REDIS_PASSWORD", "hunter2")
    s = Settings()
    assert s.top_k == 25
    assert s.event_weights == {**DEFAULT_EVENT_WEIGHTS, "purchase": 5.0}
    assert "hunter2" not in repr(s)
    with pytest.raises(ValidationError):
        s.top_k = 3  # type: ignore[misc]


@pytest.mark.parametrize(
    ("name", "value", "message"),
    [
        ("RECSTREAM_EVENT_WEIGHTS", '{"teleport": 1}', "unknown event types"),
        ("RECSTREAM_EVENT_WEIGHTS", '{"click": -1}', "must be >= 0"),
        ("RECSTREAM_KAFKA_BOOTSTRAP", "localhost", "host:port"),
        ("RECSTREAM_TOP_K", "0", "greater than or equal to 1"),
        ("RECSTREAM_KAFKA_SECURITY_PROTOCOL", "SASL_TLS", "SASL_SSL"),
        ("RECSTREAM_COMMIT_INTERVAL_MS", "-1", "greater than or equal to 0"),
        ("RECSTREAM_ENCODER_DTYPE", "float16", "bfloat16"),
        ("RECSTREAM_REDIS_PREFIX", "rs{1}", "without braces"),
    ],
)
def test_bad_values_are_refused_with_a_reason(
    monkeypatch: pytest.MonkeyPatch, name: str, value: str, message: str
) -> None:
    monkeypatch.setenv(name, value)
    with pytest.raises(ValidationError, match=message):
        Settings()


def test_sasl_ssl_settings_reach_both_kafka_clients(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("RECSTREAM_KAFKA_BOOTSTRAP", "b1:9093,b2:9093")
    monkeypatch.setenv("RECSTREAM_KAFKA_SECURITY_PROTOCOL", "SASL_SSL")
    monkeypatch.setenv("RECSTREAM_KAFKA_SASL_MECHANISM", "SCRAM-SHA-512")
    monkeypatch.setenv("RECSTREAM_KAFKA_SASL_USERNAME", "svc")
    monkeypatch.setenv("RECSTREAM_KAFKA_SASL_PASSWORD", "pw")
    kafka = kafka_connection(Settings())
    kwargs = kafka.kafka_python_kwargs()
    assert kwargs["bootstrap_servers"] == ["b1:9093", "b2:9093"]
    assert kwargs["security_protocol"] == "SASL_SSL"
    assert kwargs["sasl_mechanism"] == "SCRAM-SHA-512"
    assert (kwargs["sasl_plain_username"], kwargs["sasl_plain_password"]) == ("svc", "pw")
    assert kwargs["ssl_context"] is not None
    creds = kafka.faust_credentials()
    assert creds is not None
    assert creds.protocol.name == "SASL_SSL"
    assert kafka.faust_broker() == ["kafka://b1:9093", "kafka://b2:9093"]


def test_sasl_without_credentials_is_a_clear_error() -> None:
    kafka = KafkaConnection("b:9092", security_protocol="SASL_PLAINTEXT")
    with pytest.raises(ValueError, match="SASL_USERNAME"):
        kafka.faust_credentials()


def test_plaintext_has_no_credentials() -> None:
    kafka = KafkaConnection("b:9092")
    assert kafka.faust_credentials() is None
    assert "ssl_context" not in kafka.kafka_python_kwargs()


def test_worker_settings_flow_into_the_worker_and_consumer_config(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from recstream.serving import worker_config

    monkeypatch.setenv("RECSTREAM_COMMIT_INTERVAL_MS", "250")
    monkeypatch.setenv("RECSTREAM_BATCH_WAIT_MS", "20")
    config = worker_config(Settings())
    assert config.consumer.commit_interval_s == 0.25 and config.consumer.wait_s == 0.02
