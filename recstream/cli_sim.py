"""CLI command ``simulate``: synthetic users react to a running worker's lists (closed loop)."""

from __future__ import annotations

import json
import secrets
import sys
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from recstream.sim.scenarios import SCENARIO_NAMES

if TYPE_CHECKING:
    from recstream.settings import Settings
    from recstream.sim.loop import BetweenRounds


def register(app: typer.Typer, bench_app: typer.Typer) -> None:
    app.command("simulate")(simulate)


def _scenario(name: str) -> str:
    if name not in SCENARIO_NAMES:
        raise typer.BadParameter(f"{name!r} is not one of {', '.join(SCENARIO_NAMES)}")
    return name


def simulate(
    ctx: typer.Context,
    scenario: Annotated[
        str, typer.Option(callback=_scenario, help=f"One of {', '.join(SCENARIO_NAMES)}.")
    ] = "ecommerce",
    seed: Annotated[int, typer.Option(help="Seed of the world (catalogue, users, behaviour).")] = 0,
    rounds: Annotated[int, typer.Option(min=1, help="Rounds of event → list → reaction.")] = 5,
    users: Annotated[int, typer.Option(min=1, help="Simulated users.")] = 500,
    warmup_events: Annotated[
        int, typer.Option(min=0, help="Organic events per user before round 1.")
    ] = 30,
    timeout: Annotated[
        float, typer.Option(min=0.1, help="Seconds to wait for the worker's list.")
    ] = 60.0,
    retrain: Annotated[
        bool,
        typer.Option(
            "--retrain/--no-retrain",
            help="Retrain from the event log after the warm-up and between rounds, and wait "
            "until the worker serves the new version.",
        ),
    ] = False,
    retrain_epochs: Annotated[int, typer.Option(min=1, help="Epochs per retrain.")] = 10,
    follow: Annotated[
        bool,
        typer.Option(
            "--follow",
            help="Someone else retrains (e.g. `recstream retrain --every-events M`): after the "
            "warm-up and between rounds, wait up to --version-timeout for a newer version in "
            "the artifact root and then for the worker to serve it.",
        ),
    ] = False,
    version_timeout: Annotated[
        float, typer.Option(min=0.0, help="Seconds to wait for the worker to serve a new model.")
    ] = 600.0,
    artifacts: Annotated[
        Path | None,
        typer.Option(help="Artifact root the worker serves from [RECSTREAM_ARTIFACTS]."),
    ] = None,
    run_tag: Annotated[
        str | None,
        typer.Option(help="Tag in user and event ids (default: random, so reruns never collide)."),
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print one JSON object.")] = False,
) -> None:
    """Synthetic users with hidden, drifting tastes browse, get the worker's lists over Kafka
    and react; per round CTR, conversion, coverage and diversity beside a popularity baseline."""
    from kafka.errors import KafkaError

    from recstream.cli import settings_of
    from recstream.sim.bus import KafkaBus, NoRecommendation, SimTopics
    from recstream.sim.loop import LoopConfig, Simulation, SimulationError
    from recstream.sim.scenarios import SCENARIOS
    from recstream.sim.world import World
    from recstream.streams.connection import KafkaConnection

    s = settings_of(ctx)
    log = _stderr
    tag = run_tag or secrets.token_hex(3)
    log(f"simulate: {scenario}, seed {seed}, {users} users, run tag {tag}")
    world = World(SCENARIOS[scenario], seed, users)
    root = artifacts or s.artifacts
    if retrain and follow:
        raise typer.BadParameter("--retrain and --follow exclude each other")
    between = _retrain_between_rounds(s, root, retrain_epochs, seed, log) if retrain else None
    if follow:
        between = _follow_between_rounds(root, version_timeout, log)
    topics = SimTopics(s.topic_events, s.topic_recommendations, s.topic_items)
    try:
        bus = KafkaBus(KafkaConnection.from_settings(s), topics, s.partitions, s.replication_factor)
    except KafkaError as exc:
        log(f"simulate: cannot reach Kafka at {s.kafka_bootstrap}: {exc!r}")
        raise typer.Exit(1) from None
    config = LoopConfig(
        rounds=rounds,
        warmup_events=warmup_events,
        k=s.top_k,
        timeout_s=timeout,
        version_timeout_s=version_timeout,
        run_tag=tag,
    )
    try:
        result = Simulation(world, bus, config, between, log).run()
    except (NoRecommendation, SimulationError) as exc:
        log(f"simulate: {exc}")
        raise typer.Exit(1) from None
    finally:
        bus.close()
    print(json.dumps(result) if as_json else _table(result))


def _stderr(line: str) -> None:
    print(line, file=sys.stderr, flush=True)


def _retrain_between_rounds(
    s: Settings, root: Path, epochs: int, seed: int, log: Callable[[str], None]
) -> BetweenRounds:
    """The seam's production side: retrain in-process, then let the loop wait for the version."""

    def between(round_no: int) -> str:
        from recstream.model.config import TrainConfig
        from recstream.retrain import RetrainError, retrain_once
        from recstream.sim.loop import SimulationError

        after = "the warm-up" if round_no == 0 else f"round {round_no}"
        log(f"retraining on the event log after {after} …")
        try:
            result = retrain_once(s, root, train_config=TrainConfig(epochs=epochs, seed=seed))
        except RetrainError as exc:
            raise SimulationError(f"retraining after {after} failed: {exc}") from exc
        log(f"published {result.version}; waiting for the worker to serve it")
        return result.version

    return between


def _follow_between_rounds(
    root: Path, timeout_s: float, log: Callable[[str], None]
) -> BetweenRounds:
    """Wait for a version published by another process (the compose retrainer); on timeout,
    carry on with the model being served."""
    import time

    from recstream.artifacts import newest_version

    def newest() -> str | None:
        version = newest_version(root)
        return version.name if version else None

    seen = newest()

    def between(round_no: int) -> str | None:
        nonlocal seen
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            current = newest()
            if current is not None and (round_no == 0 or current != seen):
                seen = current
                log(f"following {current}; waiting for the worker to serve it")
                return current
            time.sleep(min(2.0, timeout_s))
        log(f"no new version within {timeout_s:.0f} s; carrying on with the served model")
        return None

    return between


def _table(result: dict[str, Any]) -> str:
    head = f"{'round':>5}  {'model':<10} {'ctr':>6} {'conv':>6} {'cover':>6} {'divers':>6}"
    lines = [f"{result['scenario']} (seed {result['seed']})", head + "   baseline ctr  conv"]
    for r in result["rounds"]:
        b = r["baseline"]
        lines.append(
            f"{r['round']:>5}  {r['model_version'] or '-':<10} {r['ctr']:6.3f} "
            f"{r['conversion']:6.3f} {r['coverage']:6.3f} {r['diversity']:6.3f}"
            f"   {b['ctr']:12.3f} {b['conversion']:5.3f}"
        )
    b = result["baseline"]
    lines.append(
        f"{'base':>5}  {'popular':<10} {b['ctr']:6.3f} {b['conversion']:6.3f} "
        f"{b['coverage']:6.3f} {b['diversity']:6.3f}"
    )
    return "\n".join(lines)
