"""The composition root: a worker's parts built from :class:`Settings` — the Kafka connection,
the topics, the worker's configuration and the recommender of an artifact version. The CLI
reads the settings and calls these; streams/, model/ and index/ only ever see plain values."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import TYPE_CHECKING

from recstream.artifacts import MANIFEST, list_versions, resolve_version
from recstream.settings import Settings

if TYPE_CHECKING:
    from recstream.streams.app import WorkerConfig
    from recstream.streams.connection import KafkaConnection
    from recstream.streams.recommender import Recommender
    from recstream.streams.topics import TopicSpec

log = logging.getLogger("recstream.worker")


def kafka_connection(s: Settings) -> KafkaConnection:
    from recstream.streams.connection import KafkaConnection

    return KafkaConnection(
        bootstrap=s.kafka_bootstrap,
        security_protocol=s.kafka_security_protocol,
        sasl_mechanism=s.kafka_sasl_mechanism,
        sasl_username=s.kafka_sasl_username,
        sasl_password=secret(s.kafka_sasl_password),
        ssl_cafile=s.kafka_ssl_cafile,
        ssl_certfile=s.kafka_ssl_certfile,
        ssl_keyfile=s.kafka_ssl_keyfile,
        ssl_check_hostname=s.kafka_ssl_check_hostname,
    )


def secret(value: object) -> str | None:
    """A pydantic ``SecretStr`` (or None) as the plain string a client needs."""
    return None if value is None else value.get_secret_value()  # type: ignore[attr-defined]


def worker_topics(s: Settings) -> list[TopicSpec]:
    """The topics a worker creates when missing."""
    from recstream.streams.topics import TopicSpec

    return [
        TopicSpec(s.topic_events, s.partitions),
        TopicSpec(s.topic_recommendations, s.partitions),
        TopicSpec(s.topic_dlq, s.partitions),
        TopicSpec(s.topic_items, s.partitions, compacted=True),
        # One partition: announcements stay in order (as `retrain` creates it).
        TopicSpec(s.topic_model_updates, 1),
        TopicSpec(s.topic_metrics, 1),
    ]


def artifacts_root(path: Path) -> Path:
    """Where announced versions are looked for: beside one served version, or the root."""
    return path.parent if (path / MANIFEST).is_file() else path


def worker_config(s: Settings, artifacts_root: Path | None = None) -> WorkerConfig:
    from recstream.streams.ab import parse_split
    from recstream.streams.app import WorkerConfig
    from recstream.streams.consume import ConsumerConfig
    from recstream.streams.decoding import Limits
    from recstream.streams.pipeline import PipelineConfig

    return WorkerConfig(
        app_id=s.app_id,
        topic_events=s.topic_events,
        topic_dlq=s.topic_dlq,
        topic_recommendations=s.topic_recommendations,
        topic_items=s.topic_items,
        topic_model_updates=s.topic_model_updates,
        topic_metrics=s.topic_metrics,
        partitions=s.partitions,
        consumer=ConsumerConfig(
            batch_size=s.batch_size,
            wait_s=s.batch_wait_ms / 1000,
            commit_interval_s=s.commit_interval_ms / 1000,
            session_timeout_s=s.session_timeout_s,
            group_instance_id=s.group_instance_id,
        ),
        web_host=s.web_host,
        web_port=s.web_port,
        redis_url=s.redis_url,
        redis_password=secret(s.redis_password),
        redis_prefix=s.redis_prefix,
        limits=Limits(max_bytes=s.max_event_bytes, max_future_skew_ms=s.max_future_skew_ms),
        mmr_by_category=s.mmr_similarity == "category",
        metrics_interval_s=s.metrics_interval_s,
        worker_id=s.worker_id or "",
        artifacts_root=artifacts_root or s.artifacts,
        ab_split=parse_split(s.ab),
        pipeline=PipelineConfig(
            k=s.top_k,
            weights=dict(s.event_weights),
            trending_half_life_ms=s.trending_half_life_hours * 3600 * 1000,
            attribution_window_ms=int(s.attribution_window_s * 1000),
            served_kept=s.attribution_lists,
            cached_users=s.state_cache_users,
            user_ttl_s=int(s.user_ttl_days * 86_400),
            explain=s.explain,
        ),
    )


def load_recommender(path: Path, s: Settings) -> Recommender:
    """The newest (or given) artifact's encoder + index; trending-only when there is none yet."""
    if not (path / MANIFEST).is_file() and not list_versions(path):
        log.warning("no model artifact under %s yet: serving trending items only", path)
        from recstream.streams.recommender import NoModel

        return NoModel()
    if (path / MANIFEST).is_file():
        return _load_version(resolve_version(path), s)  # exactly this version, or an error
    # A root: the newest version that verifies. A broken newest one (say, refused by a hot
    # swap and left on disk) must not keep a restarted worker from serving the previous one.
    problems = []
    for version in reversed(list_versions(path)):
        try:
            return _load_version(version, s)
        except (ValueError, RuntimeError, OSError) as exc:  # ArtifactError, bad config, I/O
            log.error("skipping %s: %s", version, exc)
            problems.append(f"{version.name}: {exc}")
    raise ValueError(f"no usable model version under {path}: " + "; ".join(problems))


def load_arms(root: Path, s: Settings) -> dict[str, Recommender]:
    """The models of the A/B test's arms (``RECSTREAM_AB``): each a version under ``root``,
    verified like any other; none when no test is set."""
    from recstream.streams.ab import parse_split

    split = parse_split(s.ab)
    if split is None:
        return {}
    arms = {}
    for name in split.names:
        if not (root / name / MANIFEST).is_file():
            raise ValueError(f"A/B arm {name!r}: no version {name} under {root}")
        arms[name] = _load_version(resolve_version(root / name), s)
    return arms


def _load_version(version: Path, s: Settings) -> Recommender:
    from recstream.index import load as load_index
    from recstream.model.serving import load_encoder
    from recstream.streams.recommender import ModelRecommender

    encoder = load_encoder(version, s.encoder_backend, s.encoder_dtype, threads=1)
    index = load_index(version, threads=1)
    return ModelRecommender(encoder, index, candidates=s.candidates, mmr_lambda=s.mmr_lambda)
