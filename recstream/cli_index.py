"""CLI commands around the FAISS index: ``build-index`` and ``bench index``.

faiss and numpy are imported inside the commands, so ``recstream --help`` stays fast.
"""

from __future__ import annotations

import json
import logging
import sys
from pathlib import Path
from typing import Annotated, Any

import typer

log = logging.getLogger("recstream.cli_index")


def register(app: typer.Typer, bench_app: typer.Typer) -> None:
    app.command("build-index")(build_index)
    bench_app.command("index")(bench_index)


def build_index(
    ctx: typer.Context,
    artifacts: Annotated[
        Path | None,
        typer.Option(
            help="Artifact root (newest version) or one version dir [RECSTREAM_ARTIFACTS]."
        ),
    ] = None,
    metric: Annotated[str, typer.Option(help="ip (the model's score) or cosine.")] = "ip",
    kind: Annotated[
        str, typer.Option(help="auto, exact, or a faiss factory string (HNSW32, IVF4096,Flat).")
    ] = "auto",
    target_recall: Annotated[float, typer.Option(help="Tune until recall@10 reaches this.")] = 0.95,
    tune_queries: Annotated[
        Path | None, typer.Option(help=".npy of user vectors [m, d] to tune on (default: items).")
    ] = None,
    threads: Annotated[int, typer.Option(help="faiss threads for the build.")] = 2,
    seed: Annotated[int, typer.Option(help="Seed for training samples and tuning queries.")] = 0,
    force: Annotated[bool, typer.Option(help="Replace an existing index of the version.")] = False,
    as_json: Annotated[bool, typer.Option("--json", help="Print one JSON object.")] = False,
) -> None:
    """Build the FAISS index for an artifact version and publish it into the version dir."""
    from recstream.artifacts import ArtifactError, resolve_version
    from recstream.cli import log_to_stderr, settings_of
    from recstream.index import build, save
    from recstream.index.artifact import has_index
    from recstream.index.model_files import read_model_arrays

    log_to_stderr()
    try:
        version_dir = resolve_version(artifacts or settings_of(ctx).artifacts)
        if has_index(version_dir) and not force:
            raise ArtifactError(f"{version_dir} already has an index; use --force to replace it")
        embeddings, ids = read_model_arrays(version_dir)
        queries = _load_queries(tune_queries) if tune_queries else None
        index = build(
            embeddings,
            ids,
            metric=metric,
            kind=kind,
            target_recall=target_recall,
            tuning_queries=queries,
            seed=seed,
            threads=threads,
        )
        generation = save(index, version_dir, force=force)
    except (ArtifactError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        raise typer.Exit(1) from None
    summary = {"version": version_dir.name, "path": str(generation), **index.info.to_manifest()}
    print(json.dumps(summary) if as_json else f"{generation}: {index!r}")


def bench_index(
    ctx: typer.Context,
    sizes: Annotated[str, typer.Option(help="Catalogue sizes, comma-separated.")] = (
        "10000,100000,1000000"
    ),
    d: Annotated[int, typer.Option(help="Embedding dimension of the synthetic catalogues.")] = 64,
    seed: Annotated[int, typer.Option(help="Seed for data, queries and training.")] = 0,
    queries: Annotated[int, typer.Option(help="Queries for tuning and for measuring.")] = 1000,
    kind: Annotated[str, typer.Option(help="auto, exact, or a faiss factory string.")] = "auto",
    artifacts: Annotated[
        Path | None,
        typer.Option(help="Add a row for this artifact's item embeddings [RECSTREAM_ARTIFACTS]."),
    ] = None,
    threads: Annotated[int, typer.Option(help="faiss threads for builds (queries use 1).")] = 2,
    min_seconds: Annotated[
        float, typer.Option(help="Repeat each timing for at least this long.")
    ] = 1.0,
) -> None:
    """Recall and single-thread throughput of the chosen index vs exact search; one JSON object."""
    from recstream.artifacts import ArtifactError
    from recstream.cli import log_to_stderr
    from recstream.index.bench import run

    log_to_stderr()
    try:
        size_list = [int(s) for s in sizes.split(",") if s.strip()]
        artifact = _bench_artifact(artifacts, ctx)
        result = run(
            size_list,
            d=d,
            seed=seed,
            n_queries=queries,
            kind=kind,
            build_threads=threads,
            artifact=artifact,
            min_seconds=min_seconds,
        )
    except (ArtifactError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        raise typer.Exit(1) from None
    print(json.dumps(result))


def _bench_artifact(given: Path | None, ctx: typer.Context) -> Path | None:
    """The version whose embeddings get a row: the one given (must exist), else the newest
    under RECSTREAM_ARTIFACTS if there is one with item embeddings, else none."""
    from recstream.artifacts import EMBEDDINGS, ArtifactError, resolve_version
    from recstream.cli import settings_of

    if given is not None:
        return resolve_version(given)
    try:
        found = resolve_version(settings_of(ctx).artifacts)
    except ArtifactError:
        log.info("no model artifact found; synthetic catalogues only")
        return None
    return found if (found / EMBEDDINGS).is_file() else None


def _load_queries(path: Path) -> Any:
    from recstream.artifacts import load_npy

    try:
        return load_npy(path)
    except (OSError, ValueError, EOFError) as exc:
        raise ValueError(f"{path}: cannot read tuning queries ({exc})") from exc
