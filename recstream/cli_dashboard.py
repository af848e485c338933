"""CLI commands ``dashboard`` (the live web page of the workers) and ``playground`` (services
already up: a worker, a simulated world, its first model trained in the background, and the
dashboard, in one command)."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated, NoReturn

import typer

if TYPE_CHECKING:
    from aiohttp import web

    from recstream.dashboard.server import DashboardConfig
    from recstream.settings import Settings

DEFAULT_PORT = 8088


def register(app: typer.Typer, bench_app: typer.Typer) -> None:
    app.command("dashboard")(dashboard)
    app.command("playground")(playground)


def dashboard_config(
    s: Settings, worker_url: str | None, history_minutes: int, artifacts: Path | None
) -> DashboardConfig:
    from recstream.dashboard.server import DashboardConfig

    return DashboardConfig(
        worker_url=worker_url or f"http://{_reachable(s.web_host)}:{s.web_port}",
        topic_metrics=s.topic_metrics,
        topic_model_updates=s.topic_model_updates,
        redis_prefix=s.redis_prefix,
        history_ms=history_minutes * 60_000,
        artifacts_root=artifacts or s.artifacts,
    )


def _reachable(host: str) -> str:
    """A worker listening on every address is reached on this host's loopback."""
    return "127.0.0.1" if host in ("0.0.0.0", "::", "") else host


def dashboard(
    ctx: typer.Context,
    host: Annotated[str, typer.Option(help="Address to listen on (0.0.0.0: every one).")] = (
        "127.0.0.1"
    ),
    port: Annotated[int, typer.Option(min=1, max=65535, help="Port to listen on.")] = DEFAULT_PORT,
    worker_url: Annotated[
        str | None,
        typer.Option(
            help="A worker's web server, for the user lookup "
            "[http://RECSTREAM_WEB_HOST:RECSTREAM_WEB_PORT]."
        ),
    ] = None,
    history_minutes: Annotated[
        int, typer.Option(min=1, max=24 * 60, help="Minutes of snapshots kept and read at start.")
    ] = 360,
    artifacts: Annotated[
        Path | None,
        typer.Option(help="Artifact root, for the trained versions [RECSTREAM_ARTIFACTS]."),
    ] = None,
) -> None:
    """Serve the live dashboard: event and list rates, CTR, conversion, coverage and diversity
    per model version and A/B arm, the latency histogram, consumer lag, the model timeline and
    a user lookup, from the `metrics` and `model-updates` topics."""
    from aiohttp import web

    from recstream.cli import log_to_stderr, settings_of

    s = settings_of(ctx)
    log_to_stderr()
    quiet()
    _require_chart_lib("recstream dashboard")
    config = dashboard_config(s, worker_url, history_minutes, artifacts)
    app = _dashboard_app(s, config)
    typer.echo(f"recstream dashboard: http://{_reachable(host)}:{port}/", err=True)
    web.run_app(app, host=host, port=port, print=None)


def playground(
    ctx: typer.Context,
    scenario: Annotated[str, typer.Option(help="The simulated world (see simulate).")] = (
        "ecommerce"
    ),
    seed: Annotated[int, typer.Option(help="Seed of the world.")] = 0,
    users: Annotated[int, typer.Option(min=10, max=20_000, help="Simulated users.")] = 300,
    round_every: Annotated[
        float, typer.Option(min=0.1, help="Seconds between rounds (each user: one event).")
    ] = 2.0,
    first_epochs: Annotated[int, typer.Option(min=1, help="Epochs of the first model.")] = 20,
    retrain_epochs: Annotated[int, typer.Option(min=1, help="Epochs of each retrain.")] = 5,
    retrain_minutes: Annotated[
        float, typer.Option(min=0.5, help="Minutes between retrains (warm-started).")
    ] = 3.0,
    name: Annotated[
        str, typer.Option(help="Prefix of the playground's topics, Redis keys and group.")
    ] = "playground",
    artifacts: Annotated[
        Path | None,
        typer.Option(help="Its artifact root [RECSTREAM_ARTIFACTS/<name>]."),
    ] = None,
    host: Annotated[str, typer.Option(help="Address of the dashboard.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(min=1, max=65535, help="Port of the dashboard.")] = (
        DEFAULT_PORT
    ),
) -> None:
    """Everything at once on a running Kafka and Redis (scripts/run --playground starts them):
    a worker, a simulated shop's users browsing and reacting to its lists, the first model
    trained from their events in the background and retrained every few minutes, and the
    dashboard. Ctrl-C stops it all."""
    from aiohttp import web

    from recstream.cli import log_to_stderr, settings_of
    from recstream.playground import Playground, PlaygroundConfig, environment
    from recstream.sim.scenarios import SCENARIO_NAMES

    s = settings_of(ctx)
    log_to_stderr()
    quiet()
    if scenario not in SCENARIO_NAMES:
        raise typer.BadParameter(f"{scenario!r} is not one of {', '.join(SCENARIO_NAMES)}")
    _require_chart_lib("recstream playground")
    _require_services(s)
    root = artifacts or s.artifacts / name
    config = PlaygroundConfig(
        name=name,
        artifacts=root,
        scenario=scenario,
        seed=seed,
        users=users,
        round_every_s=round_every,
        first_epochs=first_epochs,
        retrain_epochs=retrain_epochs,
        retrain_every_s=retrain_minutes * 60,
    )
    log = lambda line: typer.echo(line, err=True)  # noqa: E731
    world = Playground(s, config, log)
    world.start()
    worker_url = f"http://{_reachable(s.web_host)}:{s.web_port}"
    app = _dashboard_app(world.s, dashboard_config(world.s, worker_url, 60, root))
    names = " ".join(f"{k}={v}" for k, v in environment(config).items())
    typer.echo(
        f"\nrecstream playground: open http://{_reachable(host)}:{port}/ "
        f"(lists are trending items until the first model is served, in a minute or two)\n"
        f"  the worker's API: {worker_url}/openapi.json\n"
        f"  other commands on the playground: {names} recstream …\n",
        err=True,
    )
    try:
        web.run_app(app, host=host, port=port, print=None)
    finally:
        world.close()


def quiet() -> None:
    """Keep the terminal for what a person reads: aiokafka's and the web server's routine
    lines, kafka-python's slow-poll warnings (the playground shares two cores with training)
    and each training epoch go below the level shown."""
    import logging

    for name, level in (
        ("aiokafka", logging.WARNING),
        ("aiohttp.access", logging.WARNING),
        ("kafka.net", logging.ERROR),
        ("recstream.model.training", logging.WARNING),
    ):
        logging.getLogger(name).setLevel(level)


def _require_chart_lib(command: str) -> None:
    from recstream.dashboard.server import vendor_missing

    missing = vendor_missing()
    if missing:
        typer.echo(
            f"{command}: the chart library is missing ({', '.join(missing)}); run "
            "scripts/install (or scripts/fetch-chart-lib), which installs it from npm",
            err=True,
        )
        raise typer.Exit(1)


def _require_services(s: Settings) -> None:
    """Kafka and Redis answer, or a clear way to start them."""
    import asyncio

    from kafka import KafkaAdminClient
    from kafka.errors import KafkaError

    from recstream.serving import kafka_connection, secret
    from recstream.streams.connection import redis_client

    try:
        admin = KafkaAdminClient(
            **kafka_connection(s).kafka_python_kwargs(), request_timeout_ms=5000
        )
        admin.close()
    except KafkaError as exc:
        _not_answering("Kafka", s.kafka_bootstrap, exc)

    async def ping() -> None:
        redis = redis_client(s.redis_url, secret(s.redis_password))
        try:
            await redis.ping()
        finally:
            await redis.aclose()

    try:
        asyncio.run(ping())
    except Exception as exc:
        _not_answering("Redis", s.redis_url, exc)


def _not_answering(server: str, where: str, exc: Exception) -> NoReturn:
    typer.echo(
        f"recstream playground: {server} does not answer at {where} ({exc!r}); "
        "start it with scripts/services up, or run scripts/run --playground",
        err=True,
    )
    raise typer.Exit(1) from None


def _dashboard_app(s: Settings, config: DashboardConfig) -> web.Application:
    from recstream.dashboard.server import create_dashboard
    from recstream.serving import kafka_connection, secret
    from recstream.streams.connection import redis_client

    redis = redis_client(s.redis_url, secret(s.redis_password))
    return create_dashboard(config, kafka_connection(s), redis)
