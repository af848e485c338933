"""The ``recstream`` command line. Settings are read here, once, and passed down as values."""

from __future__ import annotations

import importlib
import logging
import sys

import typer
from pydantic import ValidationError

from recstream.settings import Settings

app = typer.Typer(no_args_is_help=True, add_completion=False)
bench_app = typer.Typer(no_args_is_help=True, help="Benchmarks; each prints one JSON object.")
app.add_typer(bench_app, name="bench")

# Each module defines `register(app, bench_app)` and adds its commands; they live beside
# the room they drive so this file stays a table of contents.
_COMMAND_MODULES = (
    "recstream.cli_streams",
    "recstream.cli_index",
    "recstream.cli_model",
    "recstream.cli_retrain",
    "recstream.cli_sim",
)


@app.callback()
def _load_settings(ctx: typer.Context) -> None:
    """recstream: Kafka events in, fresh diverse recommendations out."""
    try:
        ctx.obj = Settings()
    except ValidationError as exc:
        lines = [
            f"  RECSTREAM_{'_'.join(map(str, e['loc'])).upper()}: {e['msg']}" for e in exc.errors()
        ]
        typer.echo("recstream: invalid settings in the environment:\n" + "\n".join(lines), err=True)
        raise typer.Exit(2) from None


def log_to_stderr() -> None:
    """Progress and logs on stderr (stdout carries the JSON), quiet libraries."""
    logging.basicConfig(
        level=logging.INFO, stream=sys.stderr, format="%(asctime)s %(name)s: %(message)s"
    )
    for noisy in ("kafka", "faiss.loader"):
        logging.getLogger(noisy).setLevel(logging.WARNING)


def settings_of(ctx: typer.Context) -> Settings:
    """The frozen settings the entry point read from the environment."""
    obj = ctx.find_root().obj
    if not isinstance(obj, Settings):
        raise typer.BadParameter("settings were not loaded")
    return obj


for _name in _COMMAND_MODULES:
    importlib.import_module(_name).register(app, bench_app)


# Packages of the `train` extra: a worker installed without them serves models, and any other
# command that needs them says how to get them.
TRAIN_EXTRA = frozenset({"torch", "onnx"})


def main() -> None:
    try:
        app()
    except ModuleNotFoundError as exc:
        if exc.name not in TRAIN_EXTRA:
            raise
        typer.echo(
            f"recstream: this command needs {exc.name}, which is not installed; "
            "install the training extra: pip install 'recstream[train]'",
            err=True,
        )
        raise SystemExit(2) from None
