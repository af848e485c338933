"""CLI commands around Kafka and Redis: ``worker``, ``publish``, ``tail``, ``redis-migrate``."""

from __future__ import annotations

import gc
import json
import logging
import os
import sys
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, TextIO, TypeVar

import typer

from recstream.settings import Settings

if TYPE_CHECKING:
    from recstream.streams.bench import Load
    from recstream.streams.keys import Keys

T = TypeVar("T")


GC_THRESHOLDS = (100_000, 50, 1000)

# Options shared by the benchmarks that replay real histories.
HistoriesOption = Annotated[
    Path, typer.Option(help="An ml-1m or ml-100k directory, or a file user,item[,ts,type].")
]
PreloadOption = Annotated[
    int, typer.Option(min=0, help="Each user's first N interactions come first.")
]


def register(app: typer.Typer, bench_app: typer.Typer) -> None:
    app.command()(worker)
    app.command()(publish)
    app.command()(tail)
    app.command("redis-migrate")(redis_migrate)
    app.command("rebuild-state")(rebuild_state)
    ab_app = typer.Typer(no_args_is_help=True, help="A/B tests between model versions.")
    ab_app.command("report")(ab_report)
    app.add_typer(ab_app, name="ab")
    bench_app.command("stream")(bench_stream)
    bench_app.command("pipeline")(bench_pipeline)
    bench_app.command("soak")(bench_soak)


def _settings(ctx: typer.Context) -> Settings:
    from recstream.cli import settings_of

    return settings_of(ctx)


def worker(
    ctx: typer.Context,
    artifacts: Annotated[
        Path | None,
        typer.Option(help="Artifact root (newest version) or one version dir."),
    ] = None,
    loglevel: Annotated[str, typer.Option(help="Log level: debug, info, warning.")] = "info",
) -> None:
    """Run the stream processor (a faust worker) until interrupted."""
    import faust
    from threadpoolctl import threadpool_limits

    from recstream.serving import (
        artifacts_root,
        kafka_connection,
        load_arms,
        load_recommender,
        worker_config,
        worker_topics,
    )
    from recstream.streams.app import create_app
    from recstream.streams.topics import ensure_topics

    s = _settings(ctx)
    logging.basicConfig(level=loglevel.upper(), format="[%(asctime)s] %(levelname)s %(message)s")
    path = artifacts or s.artifacts
    try:
        recommender = load_recommender(path, s)
        arms = load_arms(artifacts_root(path), s)
    except (ValueError, RuntimeError, OSError) as exc:
        typer.echo(f"recstream worker: cannot load a model from {path}: {exc}", err=True)
        raise typer.Exit(1) from None
    _check_layout(s)
    kafka = kafka_connection(s)
    ensure_topics(kafka, worker_topics(s), replication=s.replication_factor)
    config = worker_config(s, artifacts_root(path))
    faust_app = create_app(kafka, config, recommender, lambda p: load_recommender(p, s), arms)
    # One compute thread per worker: numpy's and faiss's OpenBLAS and OpenMP pools default to
    # every core and spin between the small products of a micro-batch. Measured on 2 cores
    # (ML-1M model, catch-up of 30,000 events): 314 µs of CPU per event on 1.5 cores with the
    # pools, 142 µs on 0.9 cores without. Scale out with more worker processes instead.
    threadpool_limits(limits=1)
    # Everything loaded so far (libraries, model, vocabulary) lives as long as the process:
    # keep it out of the cyclic garbage collector's full scans, which otherwise stall the
    # hot path for milliseconds (measured: 8% of a micro-batch's time).
    gc.freeze()
    # Users' states and lists stay in memory between batches (the pipeline's cache): with the
    # default thresholds the collector rescans them every few batches. Young collections
    # every 100,000 allocations and rare full ones (docs/streams.md has the measurement).
    gc.set_threshold(*GC_THRESHOLDS)
    worker = faust.Worker(faust_app, loglevel=loglevel)
    # At --loglevel warning or above faust's start-up spinner hooks the root logger and lowers
    # it to DEBUG for good: every aiokafka debug call then builds a record (4% of the event
    # loop's time under load, measured with py-spy).
    worker.spinner = None
    worker.execute_from_commandline()


def _on_redis(s: Settings, work: Callable[[Any, Keys], Awaitable[T]]) -> T:
    """``work(client, keys)`` on a fresh client of the configured Redis, closed afterwards."""
    import asyncio

    from recstream.serving import secret
    from recstream.streams.connection import redis_client
    from recstream.streams.keys import Keys

    async def run() -> T:
        redis = redis_client(s.redis_url, secret(s.redis_password))
        try:
            return await work(redis, Keys(s.redis_prefix))
        finally:
            await redis.aclose()

    return asyncio.run(run())


def _check_layout(s: Settings) -> None:
    """Refuse to start on a Redis whose keys this version would not find (streams/layout.py)."""
    from recstream.streams.layout import LayoutError, check_layout

    try:
        _on_redis(s, check_layout)
    except LayoutError as exc:
        typer.echo(f"recstream worker: {exc}", err=True)
        raise typer.Exit(1) from None


def redis_migrate(
    ctx: typer.Context,
    as_json: Annotated[bool, typer.Option("--json", help="Print one JSON object.")] = False,
) -> None:
    """Move Redis to key layout 3 (one value per user) from layout 1 or 2, once, with every
    worker stopped; safe to run again."""
    from recstream.streams.keys import LAYOUT
    from recstream.streams.layout import migrate

    done = _on_redis(_settings(ctx), migrate)
    result = {"layout": LAYOUT, "moved": done.moved, "users": done.users, "left": done.left}
    if as_json:
        print(json.dumps(result))
    else:
        typer.echo(
            f"redis-migrate: {done.moved} keys moved to layout {LAYOUT} ({done.users} users "
            f"now have one value each); left alone: {done.left}"
        )


def ab_report(
    ctx: typer.Context,
    split: Annotated[
        str | None, typer.Option(help="The split to report (default: RECSTREAM_AB).")
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print one JSON object.")] = False,
) -> None:
    """The A/B test's arms from the cluster-wide counters in Redis: users, lists, CTR and
    conversion with 95% intervals, each arm against the first, and a sample-ratio check."""
    from recstream.streams.ab import parse_split, report
    from recstream.streams.snapshots import version_counters

    s = _settings(ctx)
    try:
        test = parse_split(split if split is not None else s.ab)
    except ValueError as exc:
        typer.echo(f"recstream ab report: {exc}", err=True)
        raise typer.Exit(2) from None
    if test is None:
        typer.echo("recstream ab report: no A/B test: set RECSTREAM_AB or --split", err=True)
        raise typer.Exit(2)

    async def read(redis: Any, keys: Keys) -> dict[str, dict[str, float]]:
        return await version_counters(redis, keys, test.names)

    result = report(test, _on_redis(s, read))
    if as_json:
        print(json.dumps(result))
        return
    for name, arm in result["arms"].items():
        ctr, conv = arm["ctr"], arm["conversion"]
        typer.echo(
            f"{name}: {arm['users']} users, {arm['lists']} lists, CTR {_pct(ctr)}, "
            f"conversion {_pct(conv)}"
        )
    for name, diff in result["versus"]["arms"].items():
        typer.echo(
            f"{name} - {result['versus']['baseline']}: CTR {_pct_diff(diff['ctr'])}, "
            f"conversion {_pct_diff(diff['conversion'])}"
        )
    srm = result["sample_ratio"]
    verdict = "MISMATCH: the split is broken" if srm["mismatch"] else "ok"
    typer.echo(f"sample ratio: chi2 {srm['chi2']}, p {srm['p']} ({verdict})")


def _pct(p: dict[str, Any]) -> str:
    if p["value"] is None:
        return "n/a"
    return f"{100 * p['value']:.2f}% [{100 * p['low']:.2f}, {100 * p['high']:.2f}]"


def _pct_diff(d: dict[str, Any]) -> str:
    if d["diff"] is None:
        return "n/a"
    return f"{100 * d['diff']:+.2f} pp [{100 * d['low']:+.2f}, {100 * d['high']:+.2f}]"


def rebuild_state(
    ctx: typer.Context,
    wipe: Annotated[
        bool, typer.Option(help="First delete every key under RECSTREAM_REDIS_PREFIX.")
    ] = False,
    as_json: Annotated[bool, typer.Option("--json", help="Print one JSON object.")] = False,
) -> None:
    """Rebuild Redis from the logs: with every worker stopped, move the workers' consumer
    groups back to the oldest retained events and items; the workers, started again, replay
    them (their lists are published again)."""
    from recstream.rebuild import RebuildError
    from recstream.rebuild import rebuild_state as rebuild
    from recstream.serving import kafka_connection, secret

    s = _settings(ctx)
    try:
        result = rebuild(s, kafka_connection(s), secret(s.redis_password), wipe)
    except RebuildError as exc:
        typer.echo(f"recstream rebuild-state: {exc}", err=True)
        raise typer.Exit(1) from None
    if as_json:
        print(json.dumps(result))
        return
    for group, offsets in result["groups"].items():
        typer.echo(f"rebuild-state: group {group} rewound to {offsets}")
    typer.echo(f"rebuild-state: {result['deleted_keys']} keys deleted; start the workers")


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

    from recstream.serving import kafka_connection
    from recstream.streams.decoding import InvalidEvent, Limits, decode_event

    s = _settings(ctx)
    limits = Limits(max_bytes=s.max_event_bytes, max_future_skew_ms=s.max_future_skew_ms)
    producer = KafkaProducer(**kafka_connection(s).kafka_python_kwargs(), acks="all")
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

    from recstream.serving import kafka_connection

    logging.getLogger("kafka").setLevel(logging.WARNING)
    s = _settings(ctx)
    consumer = KafkaConsumer(
        topic or s.topic_recommendations,
        **kafka_connection(s).kafka_python_kwargs(),
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


def bench_stream(
    ctx: typer.Context,
    artifacts: Annotated[
        Path | None, typer.Option(help="Model artifact the worker serves (default: settings).")
    ] = None,
    workload: Annotated[
        str,
        typer.Option(help="real (users replay their histories from --data) or synthetic."),
    ] = "synthetic",
    data: Annotated[
        Path | None,
        typer.Option(
            help="For --workload real: an ml-1m or ml-100k directory, or a CSV/TSV/Parquet file "
            "user,item[,ts,type]."
        ),
    ] = None,
    users: Annotated[
        int, typer.Option(min=1, help="Users replaying (real) or drawn from (synthetic).")
    ] = 3000,
    preload: Annotated[
        int, typer.Option(min=0, help="Real: each user's first N interactions, at full speed.")
    ] = 30,
    seconds: Annotated[float, typer.Option(help="Duration of each fixed-rate run.")] = 10.0,
    rates: Annotated[
        str, typer.Option(help="Comma-separated rates (events/s) to try above 1000/s.")
    ] = "2000,3000,4000,5000,6000",
    repeat: Annotated[int, typer.Option(min=1, help="Independent runs; their spread.")] = 1,
    seed: Annotated[int, typer.Option(help="Seed of the load.")] = 0,
    workers: Annotated[
        int, typer.Option(min=1, max=64, help="Workers in one consumer group (scale-out).")
    ] = 1,
) -> None:
    """End-to-end events/s and latency of the worker (or --workers of them in one group) on
    the real broker and Redis (JSON)."""
    from recstream.artifacts import ITEM_IDS, MANIFEST, list_versions, resolve_version
    from recstream.streams.bench import BenchPlan, Load, run_bench, synthetic_events

    s = _settings(ctx)
    root = artifacts or s.artifacts
    if workload not in ("real", "synthetic"):
        raise typer.BadParameter(f"{workload!r} is not real or synthetic", param_hint="--workload")
    if (root / MANIFEST).is_file() or list_versions(root):
        version = resolve_version(root)
        items = json.loads((version / ITEM_IDS).read_text())
        source = f"model {version}"
    else:
        items = [f"item-{n}" for n in range(3000)]
        source = "no model: trending only"
    if workload == "real":
        if data is None:
            raise typer.BadParameter("--workload real needs --data", param_hint="--data")
        histories = _histories(data)
        make_load = lambda: _real_load(histories, users, preload, seed)  # noqa: E731
        _real_load(histories, users, preload, seed)  # fail now, not after the echo floor
    else:
        make_load = lambda: Load([], synthetic_events(items, users * 3 + 1, seed))  # noqa: E731
    plan = BenchPlan(
        bootstrap=s.kafka_bootstrap,
        redis_url=s.redis_url,
        artifacts=root,
        load=make_load,
        workload=workload,
        ramp_rates=[float(r) for r in rates.split(",") if r.strip()],
        seconds=seconds,
        repeat=repeat,
        workers=workers,
    )
    print(f"bench stream: {workload} load, serving {source}, {len(items)} items", file=sys.stderr)
    result = run_bench(plan)
    result.update({"model": source, "seconds_per_rate": seconds, "cpus": os.cpu_count()})
    if workload == "real":
        result.update({"data": str(data), "users": users, "preload_per_user": preload})
    print(json.dumps(result))


def _real_load(
    histories: dict[str, list[tuple[str, str]]], users: int, preload: int, seed: int
) -> Load:
    from recstream.streams.bench import real_load

    try:
        return real_load(histories, users, preload, seed)
    except ValueError as exc:
        raise typer.BadParameter(str(exc), param_hint="--preload") from None


def _histories(path: Path) -> dict[str, list[tuple[str, str]]]:
    """user → [(item, type)] in time order, from a dataset directory or an interactions file."""
    from recstream.model.data import load_dataset

    if (path / "interactions.tsv.gz").is_file():
        name = "ml-1m"
    elif (path / "ml-100k.inter").is_file():
        name = "ml-100k"
    elif path.is_file():
        name = "file"
    else:
        raise typer.BadParameter(
            f"{path}: not an ml-1m or ml-100k directory nor a file", param_hint="--data"
        )
    try:
        rows = load_dataset(name, path)
    except (ValueError, OSError) as exc:
        raise typer.BadParameter(f"{path}: {exc}", param_hint="--data") from None
    order = sorted(range(len(rows)), key=lambda i: (rows.users[i], rows.ts[i]))  # stable
    out: dict[str, list[tuple[str, str]]] = {}
    for i in order:
        out.setdefault(str(rows.users[i]), []).append((str(rows.items[i]), str(rows.types[i])))
    return out


def bench_soak(
    ctx: typer.Context,
    data: HistoriesOption,
    artifacts: Annotated[
        Path | None, typer.Option(help="Model artifact the worker serves (default: settings).")
    ] = None,
    rate: Annotated[float, typer.Option(min=1, help="Events per second, throughout.")] = 1000,
    minutes: Annotated[float, typer.Option(min=0.5, help="Length of the paced run.")] = 10,
    interval: Annotated[float, typer.Option(min=1, help="Seconds between two samples.")] = 10,
    users: Annotated[int, typer.Option(min=1, help="Users replaying their histories.")] = 6040,
    preload: PreloadOption = 30,
    seed: Annotated[int, typer.Option(help="Seed of the replay's interleaving.")] = 0,
) -> None:
    """One worker at a steady rate on real histories for minutes (JSON): its resident memory
    and Redis's used memory each interval, and their slopes (MB per minute, second half)."""
    from recstream.streams.bench import BenchPlan
    from recstream.streams.soak import SoakPlan, run_soak

    s = _settings(ctx)
    histories = _histories(data)
    _real_load(histories, users, preload, seed)  # fail now
    bench = BenchPlan(
        bootstrap=s.kafka_bootstrap,
        redis_url=s.redis_url,
        artifacts=artifacts or s.artifacts,
        load=lambda: _real_load(histories, users, preload, seed),
        workload="real",
    )
    result = run_soak(SoakPlan(bench, rate=rate, minutes=minutes, interval_s=interval))
    result.update({"data": str(data), "users": users, "preload_per_user": preload})
    print(json.dumps(result))


def bench_pipeline(
    ctx: typer.Context,
    data: HistoriesOption,
    artifacts: Annotated[
        Path | None, typer.Option(help="Model artifact (default: settings).")
    ] = None,
    users: Annotated[int, typer.Option(min=1, help="Users replaying their histories.")] = 3000,
    preload: PreloadOption = 30,
    events: Annotated[int, typer.Option(min=1, help="Events processed.")] = 60_000,
    batch: Annotated[int, typer.Option(min=1, help="Events per micro-batch.")] = 256,
    seed: Annotated[int, typer.Option(help="Seed of the replay's interleaving.")] = 0,
) -> None:
    """The worker's per-batch work on real histories against the real Redis, no Kafka (JSON):
    CPU µs per event at a fixed batch size."""
    import gc

    from threadpoolctl import threadpool_limits

    from recstream.serving import load_recommender, secret, worker_config
    from recstream.streams.bench_pipeline import PipelinePlan, run
    from recstream.streams.connection import redis_client

    s = _settings(ctx)
    root = artifacts or s.artifacts
    recommender = load_recommender(root, s)
    load = _real_load(_histories(data), users, preload, seed)
    config = worker_config(s).pipeline
    password = secret(s.redis_password)
    threadpool_limits(limits=1)  # as the worker
    gc.freeze()
    gc.set_threshold(*GC_THRESHOLDS)
    plan = PipelinePlan(events=events, batch=batch)
    result = run(lambda: redis_client(s.redis_url, password), recommender, config, load, plan)
    result.update({"model": recommender.version, "data": str(data), "users": users})
    print(json.dumps(result))
