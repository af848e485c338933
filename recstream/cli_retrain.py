"""CLI command ``retrain``: train from the event log, index, publish and announce, once or on a
schedule. torch and kafka-python are imported inside the command."""

from __future__ import annotations

import json
import logging
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from recstream.model.config import COLD_EPOCHS, MIN_EVENTS, RETRAIN_EPOCHS

if TYPE_CHECKING:
    from recstream.retrain import RetrainResult
    from recstream.settings import Settings

log = logging.getLogger("recstream.cli_retrain")

POLL_S = 10.0  # how often a scheduled loop looks at the log's end offsets
_WARM = "A warm start keeps the newest version's; given, it must match."


def register(app: typer.Typer, bench_app: typer.Typer) -> None:
    app.command("retrain")(retrain)


def retrain(
    ctx: typer.Context,
    artifacts: Annotated[
        Path | None,
        typer.Option(
            help="Artifact root: warm start from its newest version [RECSTREAM_ARTIFACTS]."
        ),
    ] = None,
    since_last: Annotated[
        bool, typer.Option(help="Train only on events after those the newest version read.")
    ] = False,
    cold: Annotated[
        bool, typer.Option(help="Start from fresh weights, not the newest version.")
    ] = (False),
    epochs: Annotated[int, typer.Option(help="Epochs per retrain.")] = RETRAIN_EPOCHS,
    cold_epochs: Annotated[
        int, typer.Option(min=1, help="Epochs from fresh weights (no version yet, or --cold).")
    ] = COLD_EPOCHS,
    every_minutes: Annotated[
        float | None,
        typer.Option(help="Loop: retrain every N minutes (when there are new events)."),
    ] = None,
    every_events: Annotated[
        int | None, typer.Option(help="Loop: retrain once M new records are in the log.")
    ] = None,
    max_runs: Annotated[
        int | None, typer.Option(help="Loop: stop after this many published versions.")
    ] = None,
    min_events: Annotated[
        int, typer.Option(help="Refuse to train on fewer valid events.")
    ] = MIN_EVENTS,
    max_len: Annotated[
        int | None,
        typer.Option(min=1, help="Cold start: items of history (L) (from the data). " + _WARM),
    ] = None,
    dim: Annotated[
        int | None,
        typer.Option(min=1, help="Cold start: embedding size d (from the data). " + _WARM),
    ] = None,
    layers: Annotated[
        int | None,
        typer.Option(min=1, help="Cold start: self-attention blocks (from the data). " + _WARM),
    ] = None,
    heads: Annotated[
        int | None, typer.Option(min=1, help="Cold start: attention heads (1). " + _WARM)
    ] = None,
    threads: Annotated[int, typer.Option(help="torch and faiss threads.")] = 2,
    seed: Annotated[int, typer.Option(help="Seed for initialisation and batches.")] = 0,
    as_json: Annotated[bool, typer.Option("--json", help="One JSON line per retrain.")] = False,
) -> None:
    """Train from the event log (warm start), build the index, publish v<N>, announce it on
    model-updates. Once by default; --every-minutes / --every-events loop."""
    from recstream.cli import log_to_stderr, settings_of
    from recstream.cli_model import left_open
    from recstream.model.config import TrainConfig

    log_to_stderr()
    settings = settings_of(ctx)
    root = artifacts or settings.artifacts
    # Only the flags given: a warm start keeps the served version's values for the others.
    given = {"max_len": max_len, "dim": dim, "n_layers": layers, "n_heads": heads}
    shape = {name: value for name, value in given.items() if value is not None}
    try:
        train_config = TrainConfig(epochs=epochs, threads=threads, seed=seed)
    except ValueError as exc:
        raise typer.BadParameter(str(exc)) from None
    if every_minutes is not None and every_minutes <= 0:
        raise typer.BadParameter("--every-minutes must be > 0")
    if every_events is not None and every_events < 1:
        raise typer.BadParameter("--every-events must be >= 1")
    if max_runs is not None and max_runs < 1:
        raise typer.BadParameter("--max-runs must be >= 1")

    def once() -> RetrainResult:
        from recstream.retrain import retrain_once

        return retrain_once(
            settings,
            root,
            since_last=since_last,
            cold=cold,
            train_config=train_config,
            shape=shape,
            min_events=min_events,
            cold_epochs=cold_epochs,
            auto=left_open(max_len=max_len, dim=dim, dropout=None, n_layers=layers, serve_len=None),
        )

    if every_minutes is None and every_events is None:
        try:
            _report(once(), as_json)
        except (ValueError, RuntimeError) as exc:  # RetrainError, ArtifactError
            print(f"error: {exc}", file=sys.stderr)
            raise typer.Exit(1) from None
        return
    _loop(settings, root, once, every_minutes, every_events, as_json, max_runs)


def _loop(
    settings: Settings,
    root: Path,
    once: Callable[[], RetrainResult],
    every_minutes: float | None,
    every_events: int | None,
    as_json: bool,
    max_runs: int | None = None,
) -> None:
    """Retrain when ``every_minutes`` passed (and the log grew) or ``every_events`` records
    arrived since the newest version; a refused or failed retrain waits for the next turn."""
    from recstream.retrain import pending_events

    period_s = every_minutes * 60.0 if every_minutes is not None else None
    last = float("-inf")  # a timed loop trains at once when there is something new
    log.info("retrain loop: every %s minutes, every %s records", every_minutes, every_events)
    runs = 0
    while max_runs is None or runs < max_runs:
        try:
            pending = pending_events(settings, root)
            timed = period_s is not None and time.monotonic() - last >= period_s
            counted = every_events is not None and pending >= every_events
            if timed and pending == 0:
                log.info("no new events since the newest version; waiting")
                last = time.monotonic()
            elif timed or counted:
                last = time.monotonic()
                log.info("retraining: %d new records in the log", pending)
                _report(once(), as_json)
                runs += 1
                if runs == max_runs:
                    break
        except (ValueError, RuntimeError) as exc:  # refused, or Kafka/artifact trouble
            log.error("retrain failed: %s", exc)
        time.sleep(POLL_S if period_s is None else min(POLL_S, period_s))


def _report(result: RetrainResult, as_json: bool) -> None:
    line = json.dumps(result.to_json())
    print(line if as_json else f"{result.version_dir}: {line}", flush=True)
