"""CLI commands around Kafka: ``worker``, ``publish``, ``tail``."""

from __future__ import annotations

import json
import logging
import sys
import time
from pathlib import Path
from typing import Annotated, TextIO

import typer

from recstream.settings import Settings


def register(app: typer.Typer, bench_app: typer.Typer) -> None:
    app.command()(worker)
    app.command()(publish)
    app.command()(tail)


def _settings(ctx: typer.Context) -> Settings:
    from recstream.cli import settings_of

    return settings_of(ctx)


def worker(
    ctx: typer.Context,
    loglevel: Annotated[str, typer.Option(help="Log level: debug, info, warning.")] = "info",
) -> None:
    """Run the stream processor (a faust worker) until interrupted."""
    import faust

    from recstream.streams.app import WorkerConfig, create_app
    from recstream.streams.connection import KafkaConnection
    from recstream.streams.decoding import Limits
    from recstream.streams.topics import TopicSpec, ensure_topics

    s = _settings(ctx)
    kafka = KafkaConnection.from_settings(s)
    config = WorkerConfig(
        app_id=s.app_id,
        topic_events=s.topic_events,
        topic_dlq=s.topic_dlq,
        topic_recommendations=s.topic_recommendations,
        partitions=s.partitions,
        batch_size=s.batch_size,
        batch_wait_s=s.batch_wait_ms / 1000,
        web_host=s.web_host,
        web_port=s.web_port,
        redis_url=s.redis_url,
        redis_password=s.redis_password.get_secret_value() if s.redis_password else None,
        redis_prefix=s.redis_prefix,
        limits=Limits(max_bytes=s.max_event_bytes, max_future_skew_ms=s.max_future_skew_ms),
    )
    specs = [
        TopicSpec(s.topic_events, s.partitions),
        TopicSpec(s.topic_recommendations, s.partitions),
        TopicSpec(s.topic_dlq, s.partitions),
    ]
    ensure_topics(kafka, specs, replication=s.replication_factor)
    faust_app = create_app(kafka, config)
    faust.Worker(faust_app, loglevel=loglevel).execute_from_commandline()


def _lines(path: Path | None) -> TextIO:
    if path is None or str(path) == "-":
        return sys.stdin
    if not path.is_file():
        raise typer.BadParameter(f"{path}: no such file", param_hint="FILE")
    return path.open(encoding="utf-8", errors="surrogateescape")


def publish(
    ctx: typer.Context,
    file: Annotated[
        Path | None, typer.Argument(help="JSON-lines file of events; - for stdin.")
    ] = None,
    topic: Annotated[
        str | None, typer.Option(help="Topic (default RECSTREAM_TOPIC_EVENTS).")
    ] = None,
    validate: Annotated[
        bool, typer.Option(help="Check each event against the contract before sending.")
    ] = True,
    as_json: Annotated[bool, typer.Option("--json", help="Print a JSON summary.")] = False,
) -> None:
    """Publish events (one JSON object per line) keyed by user_id."""
    from kafka import KafkaProducer

    from recstream.streams.connection import KafkaConnection
    from recstream.streams.decoding import InvalidEvent, Limits, decode_event

    s = _settings(ctx)
    limits = Limits(max_bytes=s.max_event_bytes, max_future_skew_ms=s.max_future_skew_ms)
    producer = KafkaProducer(**KafkaConnection.from_settings(s).kafka_python_kwargs(), acks="all")
    sent, bad = 0, 0
    now = int(time.time() * 1000)
    for lineno, line in enumerate(_lines(file), start=1):
        raw = line.rstrip("\n").encode("utf-8", errors="surrogateescape")
        if not raw.strip():
            continue
        key = None
        try:
            event = decode_event(raw, now, now, limits)
            key = event.user_id.encode()
        except InvalidEvent as exc:
            if validate:
                print(f"line {lineno}: {exc}", file=sys.stderr)
                bad += 1
                continue
        producer.send(topic or s.topic_events, key=key, value=raw)
        sent += 1
    producer.flush()
    producer.close()
    summary = {"sent": sent, "rejected": bad}
    print(json.dumps(summary) if as_json else f"sent {sent}, rejected {bad}", file=sys.stdout)
    if bad:
        raise typer.Exit(1)


def tail(
    ctx: typer.Context,
    topic: Annotated[
        str | None, typer.Option(help="Topic (default RECSTREAM_TOPIC_RECOMMENDATIONS).")
    ] = None,
    from_beginning: Annotated[bool, typer.Option(help="Start at the oldest record.")] = False,
    max_records: Annotated[int | None, typer.Option("--max", help="Stop after N records.")] = None,
    timeout: Annotated[
        float | None, typer.Option(help="Stop after this many seconds without a record.")
    ] = None,
) -> None:
    """Print records (recommendations by default) as they arrive, one JSON object per line."""
    from kafka import KafkaConsumer

    from recstream.streams.connection import KafkaConnection

    logging.getLogger("kafka").setLevel(logging.WARNING)
    s = _settings(ctx)
    consumer = KafkaConsumer(
        topic or s.topic_recommendations,
        **KafkaConnection.from_settings(s).kafka_python_kwargs(),
        auto_offset_reset="earliest" if from_beginning else "latest",
        enable_auto_commit=False,
        consumer_timeout_ms=int(timeout * 1000) if timeout else float("inf"),
    )
    seen = 0
    try:
        for record in consumer:
            print(record.value.decode("utf-8", errors="replace"), flush=True)
            seen += 1
            if max_records is not None and seen >= max_records:
                break
    except KeyboardInterrupt:
        pass
    finally:
        consumer.close()
