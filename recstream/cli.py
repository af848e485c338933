"""The ``recstream`` command line. Settings are read here, once, and passed down as values."""

from __future__ import annotations

import importlib
import logging
import sys

import typer
from pydantic import ValidationError

from recstream.memory import keep_freed_memory
from recstream.settings import Settings

app = typer.Typer(no_args_is_help=True, add_completion=False, rich_markup_mode=None)
bench_app = typer.Typer(
    no_args_is_help=True, help="Benchmarks; each prints one JSON object.", rich_markup_mode=None
)
app.add_typer(bench_app, name="bench")

# Each module defines `register(app, bench_app)` and adds its commands; they live beside
# the room they drive so this file stays a table of contents.
_COMMAND_MODULES = (
    "recstream.cli_streams",
    "recstream.cli_index",
    "recstream.cli_model",
    "recstream.cli_retrain",
    "recstream.cli_sim",
    "recstream.cli_dashboard",
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


# A connection or authentication error of these clients: the server it concerns.
_SERVERS = {"kafka": "Kafka", "aiokafka": "Kafka", "redis": "Redis"}
_HINTS = {
    "Kafka": "check RECSTREAM_KAFKA_BOOTSTRAP and, for a secured broker, "
    "RECSTREAM_KAFKA_SECURITY_PROTOCOL, the SASL mechanism, user and password and the CA file",
    "Redis": "check RECSTREAM_REDIS_URL (rediss:// for TLS, a user for an ACL) and "
    "RECSTREAM_REDIS_PASSWORD",
}


def _unreachable(exc: Exception) -> str | None:
    server = _SERVERS.get(type(exc).__module__.partition(".")[0])
    name = type(exc).__name__
    if server and any(w in name for w in ("Connection", "Timeout", "Auth", "NoBrokers")):
        return server
    return None


def main() -> None:
    keep_freed_memory()
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
    except Exception as exc:
        server = _unreachable(exc)
        if server is None:
            raise
        verb = sys.argv[1] if len(sys.argv) > 1 else ""
        typer.echo(f"recstream {verb}: cannot reach {server} ({exc}); {_HINTS[server]}", err=True)
        raise SystemExit(1) from None
