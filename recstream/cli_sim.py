"""CLI commands ``simulate`` (synthetic users react to a running worker's lists, beside
counterfactual arms), ``simulate-report`` (several runs pooled into tables and plots) and
``sim-offline`` (a world's organic log measured offline, leave-one-out, like ``evaluate``)."""

from __future__ import annotations

import json
import secrets
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from recstream.model.config import COLD_EPOCHS, RETRAIN_EPOCHS
from recstream.sim.scenarios import SCENARIO_NAMES

if TYPE_CHECKING:
    from recstream.settings import Settings
    from recstream.sim.arms import FrozenModel, FrozenRequest
    from recstream.sim.loop import BetweenRounds, LoadFrozen

# Users per call of the frozen model: bounds the encoder's and MMR's memory.
FROZEN_BATCH = 256


def register(app: typer.Typer, bench_app: typer.Typer) -> None:
    app.command("simulate")(simulate)
    app.command("simulate-report")(simulate_report)
    app.command("sim-offline")(sim_offline)


def _scenario(name: str) -> str:
    if name not in SCENARIO_NAMES:
        raise typer.BadParameter(f"{name!r} is not one of {', '.join(SCENARIO_NAMES)}")
    return name


def _one_of(*choices: str) -> Callable[[str], str]:
    def check(value: str) -> str:
        if value not in choices:
            raise typer.BadParameter(f"{value!r} is not one of {', '.join(choices)}")
        return value

    return check


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
    retrain_epochs: Annotated[
        int, typer.Option(min=1, help="Epochs per retrain.")
    ] = RETRAIN_EPOCHS,
    cold_epochs: Annotated[
        int, typer.Option(min=1, help="Epochs of the first (fresh-weights) training.")
    ] = COLD_EPOCHS,
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
    per_user: Annotated[
        bool,
        typer.Option(
            "--per-user",
            help="Add every user's clicks and purchases per arm and round (key per_user), for "
            "pooling seeds with simulate-report.",
        ),
    ] = False,
) -> None:
    """Synthetic users with hidden, drifting tastes browse, get the worker's lists over Kafka
    and react; per round CTR, conversion, coverage and diversity of the served lists beside
    counterfactual arms (popularity, category trending, item kNN, the first model kept frozen,
    an oracle) judged with the same random numbers, and paired differences with 95% intervals
    (see docs/simulator.md)."""
    from kafka.errors import KafkaError

    from recstream.cli import settings_of
    from recstream.serving import kafka_connection
    from recstream.sim.bus import KafkaBus, NoRecommendation, SimTopics
    from recstream.sim.loop import LoopConfig, Simulation, SimulationError
    from recstream.sim.scenarios import SCENARIOS
    from recstream.sim.world import World

    s = settings_of(ctx)
    log = _stderr
    tag = run_tag or secrets.token_hex(3)
    log(f"simulate: {scenario}, seed {seed}, {users} users, run tag {tag}")
    world = World(SCENARIOS[scenario], seed, users)
    root = artifacts or s.artifacts
    if retrain and follow:
        raise typer.BadParameter("--retrain and --follow exclude each other")
    between = (
        _retrain_between_rounds(s, root, retrain_epochs, cold_epochs, seed, log)
        if retrain
        else None
    )
    if follow:
        between = _follow_between_rounds(root, version_timeout, log)
    frozen = _frozen_loader(s, root) if retrain or follow else None
    topics = SimTopics(s.topic_events, s.topic_recommendations, s.topic_items)
    try:
        bus = KafkaBus(kafka_connection(s), topics, s.partitions, s.replication_factor)
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
        weights=dict(s.event_weights),
        per_user=per_user,
    )
    try:
        result = Simulation(world, bus, config, between, log, load_frozen=frozen).run()
    except (NoRecommendation, SimulationError) as exc:
        log(f"simulate: {exc}")
        raise typer.Exit(1) from None
    finally:
        bus.close()
    print(json.dumps(result) if as_json else _table(result))


def _stderr(line: str) -> None:
    print(line, file=sys.stderr, flush=True)


def _retrain_between_rounds(
    s: Settings,
    root: Path,
    epochs: int,
    cold_epochs: int | None,
    seed: int,
    log: Callable[[str], None],
) -> BetweenRounds:
    """The seam's production side: retrain in-process, then let the loop wait for the version."""

    def between(round_no: int) -> str:
        from recstream.model.config import TrainConfig
        from recstream.retrain import RetrainError, retrain_once
        from recstream.sim.loop import SimulationError

        after = "the warm-up" if round_no == 0 else f"round {round_no}"
        log(f"retraining on the event log after {after} …")
        try:
            config = TrainConfig(epochs=epochs, seed=seed)
            result = retrain_once(s, root, train_config=config, cold_epochs=cold_epochs)
        except RetrainError as exc:
            raise SimulationError(f"retraining after {after} failed: {exc}") from exc
        log(f"published {result.version}; waiting for the worker to serve it")
        return result.version

    return between


def _frozen_loader(s: Settings, root: Path) -> LoadFrozen:
    """The model_frozen arm: the version served in round 1, loaded as the worker loads it and
    asked as the worker asks it (Request(sequence, excluded), top_k)."""

    def load(version: str) -> FrozenModel:
        from recstream.serving import load_recommender
        from recstream.sim.arms import FrozenModel
        from recstream.sim.loop import SimulationError
        from recstream.streams.recommender import Request

        try:
            recommender = load_recommender(root / version, s)
        except (ValueError, RuntimeError, OSError) as exc:
            raise SimulationError(f"cannot load {version} for model_frozen: {exc}") from exc

        def recommend(requests: Sequence[FrozenRequest], k: int) -> list[list[str]]:
            lists: list[list[str]] = []
            for start in range(0, len(requests), FROZEN_BATCH):
                batch = [Request(h, e) for h, e in requests[start : start + FROZEN_BATCH]]
                lists += [[i for i, _ in scored] for scored in recommender.recommend(batch, k)]
            return lists

        return FrozenModel(recommender.version, recommender.max_len, recommend)

    return load


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


def simulate_report(
    files: Annotated[
        list[Path], typer.Argument(help="simulate --json outputs (seeds of one or more scenarios).")
    ],
    out: Annotated[
        Path | None, typer.Option(help="Folder for one PNG per scenario (<scenario>.png).")
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print one JSON object.")] = False,
) -> None:
    """Pool several simulate runs per scenario: every arm's CTR per round (mean over seeds) and
    the paired differences model_retrain − arm over the users of every seed (needs
    simulate --per-user); a markdown table (or --json) and, with --out, a plot per scenario."""
    from recstream.sim.report import by_scenario, markdown, plot, summarise

    results = []
    for path in files:
        try:
            results.append(json.loads(path.read_text()))
        except (OSError, ValueError) as exc:  # a failed run leaves an empty file
            _stderr(f"simulate-report: skipping {path}: {exc}")
    if not results:
        _stderr("simulate-report: no results to report")
        raise typer.Exit(1)
    summaries = [summarise(runs) for runs in by_scenario(results).values()]
    plots = {}
    if out is not None:
        out.mkdir(parents=True, exist_ok=True)
        for summary in summaries:
            plots[summary["scenario"]] = str(out / f"{summary['scenario']}.png")
            plot(summary, Path(plots[summary["scenario"]]))
    if as_json:
        print(json.dumps({"scenarios": summaries, "plots": plots}))
    else:
        print(markdown(summaries), end="")


def sim_offline(
    ctx: typer.Context,
    scenario: Annotated[
        str, typer.Option(callback=_scenario, help=f"One of {', '.join(SCENARIO_NAMES)}.")
    ] = "ecommerce",
    seed: Annotated[int, typer.Option(help="Seed of the world (catalogue, users, behaviour).")] = 0,
    users: Annotated[int, typer.Option(min=1, help="Simulated users.")] = 1000,
    events: Annotated[
        int, typer.Option(min=3, help="Organic events per user (the last one is the test item).")
    ] = 30,
    events_per_round: Annotated[
        int,
        typer.Option(
            min=0, help="Let tastes drift (World.next_round) every N steps (0: never, as warm-up)."
        ),
    ] = 0,
    split: Annotated[
        str,
        typer.Option(
            callback=_one_of("test", "valid"),
            help="test (last event; history = all before) or valid (second-to-last).",
        ),
    ] = "test",
    rank_over: Annotated[
        str,
        typer.Option(
            callback=_one_of("catalogue", "logged"),
            help="catalogue (every item) or logged (the items in the log, as evaluate ranks).",
        ),
    ] = "catalogue",
    write_log: Annotated[
        Path | None,
        typer.Option(help="Write the log as user,item,ts,type CSV (for `recstream train --data`)."),
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print one JSON object.")] = False,
) -> None:
    """A world's organic log (as the simulator's warm-up makes it) measured offline with the
    leave-one-out, full-ranking HR@10 / NDCG@10 of `recstream evaluate`: popularity, category
    trending (favourite category of the whole history or of its last 10 events), item kNN and
    two oracles, with ratios to category_trending (see docs/simulator.md)."""
    import time

    from recstream.cli import settings_of
    from recstream.sim.offline import generate, measure
    from recstream.sim.offline import write_log as write_csv
    from recstream.sim.scenarios import SCENARIOS

    started = time.monotonic()
    weights = dict(settings_of(ctx).event_weights)
    try:
        log = generate(
            SCENARIOS[scenario], seed, users, events, events_per_round=events_per_round, split=split
        )
        result = measure(log, rank_over=rank_over, weights=weights)
    except ValueError as exc:
        raise typer.BadParameter(str(exc)) from None
    result["events_per_round"] = events_per_round
    result["log"] = None
    if write_log is not None:
        write_csv(log, write_log)
        result["log"] = str(write_log)
    result["seconds"] = round(time.monotonic() - started, 2)
    print(json.dumps(result) if as_json else _offline_table(result))


def _offline_table(result: dict[str, Any]) -> str:
    lines = [
        f"{result['scenario']} (seed {result['seed']}, {result['users']} users × "
        f"{result['events_per_user']} events, {result['split']} split, ranked over "
        f"{result['rank_over']}: {result['catalogue_size']} items, {result['logged_items']} "
        "logged)",
        f"{'method':<26}{'hr@10':>8}{'ndcg@10':>9}{'hr/ct':>7}{'ndcg/ct':>8}",
    ]
    ratios = result["ratio_to_category_trending"]
    for method, figures in result["methods"].items():
        hr, nd = (ratios.get(method, {}).get(key) for key in ("hr@10", "ndcg@10"))
        lines.append(
            f"{method:<26}{figures['hr@10']:8.4f}{figures['ndcg@10']:9.4f}"
            f"{_times(hr):>7}{_times(nd):>8}"
        )
    targets = ", ".join(f"{key} {value:.3f}" for key, value in result["targets"].items())
    return "\n".join([*lines, f"targets: {targets}"])


def _times(ratio: float | None) -> str:
    return "-" if ratio is None else f"{ratio:.2f}×"


def _table(result: dict[str, Any]) -> str:
    head = f"{'round':>5}  {'model':<10} {'ctr':>6} {'conv':>6} {'cover':>6} {'divers':>6}"
    lines = [f"{result['scenario']} (seed {result['seed']}, {result['users']} users)", head]
    for r in result["rounds"]:
        lines.append(
            f"{r['round']:>5}  {r['model_version'] or '-':<10} {r['ctr']:6.3f} "
            f"{r['conversion']:6.3f} {r['coverage']:6.3f} {r['diversity']:6.3f}"
        )
    rounds = "".join(f"{'r' + str(r['round']):>7}" for r in result["rounds"])
    lines += ["", f"{'arm':<18}{rounds}{'mean':>7}{'conv':>7}   ctr: served − arm [95% CI]"]
    for arm, data in result["arms"].items():
        if "absent" in data:
            lines.append(f"{arm:<18}absent: {data['absent']}")
            continue
        ctrs = "".join(f"{s['ctr']:7.3f}" for s in data["rounds"])
        paired = result["paired"].get(arm)
        diff = _interval(paired["ctr"]) if paired else "(served)"
        mean = data["mean"]
        lines.append(f"{arm:<18}{ctrs}{mean['ctr']:7.3f}{mean['conversion']:7.3f}   {diff}")
    return "\n".join(lines)


def _interval(x: dict[str, Any]) -> str:
    if x["low"] is None:
        return f"{x['diff']:+.3f}"
    return f"{x['diff']:+.3f} [{x['low']:+.3f}, {x['high']:+.3f}]"
