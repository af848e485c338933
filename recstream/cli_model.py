"""CLI commands around the model: ``train``, ``evaluate`` and ``bench model``.

torch is imported inside the commands: this module is imported for every command,
the stream worker's included.
"""

from __future__ import annotations

import json
import logging
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from recstream.model.config import ModelConfig, TrainConfig

if TYPE_CHECKING:
    from recstream.model.data import Interactions
    from recstream.retrain import LogRead
    from recstream.settings import Settings

log = logging.getLogger("recstream.cli_model")
# The flags' defaults are the configs' own (one home); the configs import nothing heavy.
_M, _T = ModelConfig, TrainConfig

DatasetOpt = Annotated[
    str | None,
    typer.Option(
        "--dataset",
        help="ml-1m, ml-100k or ml-1m-short (ML-1M's 10 newest items per user), with --data-dir.",
    ),
]
DataDirOpt = Annotated[Path | None, typer.Option("--data-dir", help="Directory of the dataset.")]
DataFileOpt = Annotated[
    Path | None, typer.Option("--data", help="A CSV/TSV/Parquet file: user,item[,ts,type].")
]
ArtifactsOpt = Annotated[
    Path | None,
    typer.Option(help="Artifact root (newest version) or one version dir [RECSTREAM_ARTIFACTS]."),
]
JsonOpt = Annotated[bool, typer.Option("--json", help="Print one JSON object on stdout.")]


def register(app: typer.Typer, bench_app: typer.Typer) -> None:
    app.command("train")(train)
    app.command("evaluate")(evaluate)
    bench_app.command("model")(bench_model)


def train(
    ctx: typer.Context,
    dataset: DatasetOpt = None,
    data_dir: DataDirOpt = None,
    data: DataFileOpt = None,
    from_kafka: Annotated[
        bool, typer.Option("--from-kafka", help="Train on the events topic's whole log.")
    ] = False,
    out: Annotated[Path | None, typer.Option(help="Artifact root [RECSTREAM_ARTIFACTS].")] = None,
    max_len: Annotated[
        int | None,
        typer.Option(
            help="Items of history the model reads (L) [from the data: covers 90% of users' "
            "histories, 10 to 100]."
        ),
    ] = None,
    serve_len: Annotated[
        int | None,
        typer.Option(
            help="History length the served model reads (0 = max-len) [from the depth: 40 with "
            "4 or more layers, else 50]."
        ),
    ] = None,
    block: Annotated[
        str,
        typer.Option(
            help="pre (pre-norm blocks), kang (the SASRec paper's layout), ligr "
            "(gated residual branches) or hstu (HSTU layers)."
        ),
    ] = _M.block,
    positions: Annotated[
        str, typer.Option(help="newest (last item = last position) or oldest (needs serve-len 0).")
    ] = _M.positions,
    dim: Annotated[
        int | None,
        typer.Option(
            help="Embedding and hidden size d [from the data: 128 for large, dense data "
            "(>= 500,000 interactions, >= 150 per item), else 64]."
        ),
    ] = None,
    temperature: Annotated[
        float,
        typer.Option(
            help="0: score by dot product; > 0: cosine similarity divided by this temperature."
        ),
    ] = _M.temperature,
    distance_bias: Annotated[
        bool,
        typer.Option(
            "--distance-bias/--no-distance-bias",
            help="Add a learned bias by distance to the attention scores (pre, kang, ligr).",
        ),
    ] = _M.distance_bias,
    layers: Annotated[
        int | None,
        typer.Option(help="Self-attention blocks [from the data: 4 where d is 128, else 2]."),
    ] = None,
    heads: Annotated[int, typer.Option(help="Attention heads per block.")] = _M.n_heads,
    dropout: Annotated[
        float | None,
        typer.Option(
            help="Dropout rate [from the data: with d 128 0.3 for 4+ layers, else 0.2; else 0.1]."
        ),
    ] = None,
    loss: Annotated[str, typer.Option(help="ce (full softmax), sampled or gbce.")] = _T.loss,
    negatives: Annotated[int, typer.Option(help="Negatives for sampled/gbce.")] = _T.negatives,
    epochs: Annotated[int, typer.Option(help="Epochs (the cosine schedule's length).")] = _T.epochs,
    batch_size: Annotated[int, typer.Option(help="Windows per batch.")] = _T.batch_size,
    lr: Annotated[float, typer.Option(help="Adam learning rate (peak).")] = _T.lr,
    schedule: Annotated[str, typer.Option(help="cosine (decay to 0) or constant.")] = _T.schedule,
    warmup: Annotated[
        float,
        typer.Option(help="Share of the schedule (0 to <1) over which the rate climbs from 0."),
    ] = _T.warmup,
    weight_decay: Annotated[
        float, typer.Option(help="AdamW's decoupled weight decay (0 = none).")
    ] = _T.weight_decay,
    full_history: Annotated[
        bool,
        typer.Option(
            "--full-history/--newest-only",
            help="Train on all of each history in max-len windows, or the newest window only.",
        ),
    ] = _T.full_history,
    exclude_seen: Annotated[
        bool,
        typer.Option(
            "--exclude-seen/--include-seen",
            help="Leave items a window has shown out of the ce softmax at its later positions.",
        ),
    ] = _T.exclude_seen,
    eval_every: Annotated[int, typer.Option(help="Epochs between validations.")] = _T.eval_every,
    patience: Annotated[
        int, typer.Option(help="Validations without gain before stopping.")
    ] = _T.patience,
    eval_users: Annotated[
        int, typer.Option(help="Validate on this many users (0 = all).")
    ] = _T.eval_users,
    time_budget: Annotated[
        float, typer.Option(help="Training minutes; the schedule anneals within them.")
    ] = 28.0,
    threads: Annotated[
        int, typer.Option(help="torch threads (2 on a 2-core machine).")
    ] = _T.threads,
    checkpoint_dir: Annotated[
        Path | None, typer.Option(help="Where checkpoints go [<out>/checkpoints/<dataset>].")
    ] = None,
    resume: Annotated[bool, typer.Option(help="Continue from the checkpoint if any.")] = False,
    progress: Annotated[bool, typer.Option(help="Progress bars on stderr.")] = True,
    seed: Annotated[int, typer.Option(help="Seed for initialisation and batches.")] = _T.seed,
    precision: Annotated[
        str,
        typer.Option(
            help="The loss's products: auto (bfloat16 where the CPU has it natively), "
            "float32 or bfloat16."
        ),
    ] = _T.precision,
    index: Annotated[
        bool,
        typer.Option(
            "--index/--no-index",
            help="Build the FAISS index into the version before publishing it, so that "
            "workers can serve it at once (--no-index: run build-index later).",
        ),
    ] = True,
    as_json: JsonOpt = False,
) -> None:
    """Train SASRec on a dataset (or the event log) and publish a versioned artifact directory,
    with its index: a version workers serve as it is."""
    from recstream.cli import log_to_stderr, settings_of
    from recstream.model.artifact import save_artifact
    from recstream.model.training import train as train_model
    from recstream.retrain import build_index

    log_to_stderr()
    settings = settings_of(ctx)
    if from_kafka and (dataset or data_dir or data):
        raise typer.BadParameter("give either --from-kafka or a dataset, not both")
    # The log has no path: only the name is used (the checkpoint directory) for --from-kafka.
    kafka_source = ("kafka", Path(settings.topic_events))
    name, path = kafka_source if from_kafka else _required_source(dataset, data_dir, data)
    root = out or settings.artifacts
    try:
        model_config = ModelConfig(
            max_len=_M.max_len if max_len is None else max_len,
            serve_len=_M.serve_len if serve_len is None else serve_len,
            block=block,
            positions=positions,
            dim=_M.dim if dim is None else dim,
            n_layers=_M.n_layers if layers is None else layers,
            n_heads=heads,
            dropout=_M.dropout if dropout is None else dropout,
            temperature=temperature,
            distance_bias=distance_bias,
        )
        train_config = TrainConfig(
            epochs=epochs,
            batch_size=batch_size,
            lr=lr,
            schedule=schedule,
            warmup=warmup,
            weight_decay=weight_decay,
            loss=loss,
            negatives=negatives,
            full_history=full_history,
            exclude_seen=exclude_seen,
            eval_every=eval_every,
            patience=patience,
            eval_users=eval_users,
            time_budget_s=time_budget * 60.0,
            threads=threads,
            seed=seed,
            precision=precision,
        )
        log_read = _read_kafka(settings) if from_kafka else None
        interactions = log_read.interactions if log_read else _load(name, path)
        trained = train_model(
            interactions,
            model_config,
            train_config,
            event_weights=settings.event_weights,
            checkpoint_dir=checkpoint_dir or root / "checkpoints" / name,
            resume=resume,
            progress=progress,
            auto=left_open(
                max_len=max_len, dim=dim, dropout=dropout, n_layers=layers, serve_len=serve_len
            ),
        )
        # The index goes into the staged version: readers never see a version without it.
        add_index = (lambda staged: build_index(staged, trained.train_config)) if index else None
        if log_read:  # the offsets read go with the model, for `retrain --since-last`
            description = log_read.describe(trained, settings.event_weights)
            files = log_read.files()
            version = save_artifact(
                trained, root, description, extra_files=files, before_publish=add_index
            )
        else:
            description = _describe(name, path, interactions, trained, settings.event_weights)
            version = save_artifact(trained, root, description, before_publish=add_index)
    except ValueError as exc:
        _fail(exc)
    summary = {
        "version": version.name,
        "path": str(version),
        "epochs": trained.epochs_run,
        "best_epoch": trained.best_epoch,
        "valid_ndcg@10": trained.best_ndcg,
        "valid_ndcg@10_popularity": trained.popularity_ndcg,
        "train_seconds": round(trained.train_seconds, 1),
        "stopped": trained.stopped,
        "index": index,
        "chosen": trained.adapted.get("chosen", {}),
    }
    print(json.dumps(summary) if as_json else f"{version}: {json.dumps(summary)}")


def evaluate(
    ctx: typer.Context,
    artifacts: ArtifactsOpt = None,
    dataset: DatasetOpt = None,
    data_dir: DataDirOpt = None,
    data: DataFileOpt = None,
    split: Annotated[str, typer.Option(help="test (last item) or valid.")] = "test",
    users: Annotated[int, typer.Option(help="Evaluate the first N users only (0 = all).")] = 0,
    threads: Annotated[int, typer.Option(help="torch threads.")] = 2,
    seed: Annotated[int, typer.Option(help="Seed for the 100 sampled negatives.")] = 0,
    as_json: JsonOpt = False,
) -> None:
    """Leave-one-out evaluation of an artifact against the most-popular baseline."""
    import torch

    from recstream.artifacts import ArtifactError
    from recstream.cli import log_to_stderr, settings_of
    from recstream.model.artifact import load_artifact
    from recstream.model.report import evaluate_artifact, load_for_artifact

    log_to_stderr()
    settings = settings_of(ctx)
    torch.set_num_threads(threads)
    name, path = _data_source(dataset, data_dir, data, required=False)
    try:
        loaded = load_artifact(artifacts or settings.artifacts)
        interactions, genres = load_for_artifact(loaded, name, path)
        report = evaluate_artifact(
            loaded, interactions, event_weights=settings.event_weights, genres=genres,
            split=split, users=users, seed=seed,
        )  # fmt: skip
    except (ArtifactError, ValueError) as exc:
        _fail(exc)
    print(json.dumps(report) if as_json else _table(report))


def bench_model(
    ctx: typer.Context,
    artifacts: ArtifactsOpt = None,
    threads: Annotated[int, typer.Option(help="torch threads for encoding.")] = 1,
    repeats: Annotated[int, typer.Option(help="Timed calls per batch size.")] = 200,
    seed: Annotated[int, typer.Option(help="Seed for the sampled histories.")] = 0,
    dtype: Annotated[
        str | None,
        typer.Option(help="float32, int8, bfloat16 or auto [RECSTREAM_ENCODER_DTYPE; auto]."),
    ] = None,
    backend: Annotated[
        str | None,
        typer.Option(help="auto, onnx or torch [RECSTREAM_ENCODER_BACKEND, else auto]."),
    ] = None,
) -> None:
    """Encoder latency per user at batch 1 and 64 (one JSON object on stdout)."""
    from recstream.artifacts import ArtifactError
    from recstream.cli import log_to_stderr, settings_of
    from recstream.model.bench import bench_encoder, histories_for
    from recstream.model.onnx_encoder import OnnxEncoder
    from recstream.model.serving import load_encoder

    log_to_stderr()
    try:
        settings = settings_of(ctx)
        encoder = load_encoder(
            artifacts or settings.artifacts,
            backend or settings.encoder_backend,
            dtype or settings.encoder_dtype,
            threads,
        )
        histories, source = histories_for(encoder, seed)
        result = bench_encoder(encoder, histories, repeats=repeats, seed=seed)
    except (ArtifactError, ValueError) as exc:
        _fail(exc)
    backend_used = "onnx" if isinstance(encoder, OnnxEncoder) else "torch"
    print(
        json.dumps(
            result
            | {"threads": threads, "dtype": encoder.dtype, "backend": backend_used}
            | {"histories": source}
        )
    )


def _required_source(
    dataset: str | None, data_dir: Path | None, data: Path | None
) -> tuple[str, Path]:
    name, path = _data_source(dataset, data_dir, data, required=True)
    if name is None or path is None:  # unreachable: required sources raise instead
        raise typer.BadParameter("a dataset is required")
    return name, path


def _data_source(
    dataset: str | None, data_dir: Path | None, data: Path | None, *, required: bool
) -> tuple[str, Path] | tuple[None, None]:
    if data is not None:
        if dataset not in (None, "file") or data_dir is not None:
            raise typer.BadParameter("give either --data FILE or --dataset NAME --data-dir DIR")
        return "file", data
    if dataset is None and data_dir is None and not required:
        return None, None
    if dataset not in ("ml-1m", "ml-100k", "ml-1m-short") or data_dir is None:
        raise typer.BadParameter(
            f"expected --dataset ml-1m|ml-100k|ml-1m-short with --data-dir DIR, or --data FILE "
            f"(got --dataset {dataset!r}, --data-dir {data_dir})"
        )
    return dataset, data_dir


def left_open(**given: object) -> frozenset[str]:
    """The settings the user gave no flag for: train chooses them from the data."""
    return frozenset(name for name, value in given.items() if value is None)


def _load(name: str, path: Path) -> Interactions:
    from recstream.model.data import load_dataset

    interactions = load_dataset(name, path)
    log.info("loaded %d interactions from %s", len(interactions), path)
    return interactions


def _read_kafka(settings: Settings) -> LogRead:
    from recstream.retrain import read_events

    read = read_events(settings)
    log.info(
        "read %d events (%d invalid records skipped) from %s",
        read.events,
        read.skipped,
        read.topic,
    )
    return read


def _describe(
    name: str, path: Path, interactions: Any, trained: Any, weights: dict[str, float]
) -> dict[str, Any]:
    return {
        "name": name,
        "path": str(path.resolve()),
        "reload": f"recstream.model.data.load_dataset({name!r}, Path({str(path.resolve())!r}))",
        "n_interactions": len(interactions),
        "n_users": len(trained.split.train),
        "n_items": len(trained.vocab),
        "n_eval_users": len(trained.split.eval_rows),
        "event_weights": weights,
    }


def _table(report: dict[str, Any]) -> str:
    keys = [k for k, v in report.items() if isinstance(v, float | int) and k in report["baseline"]]
    popular, cooc = report["baseline"], report["cooccurrence"]
    lines = [f"{'metric':<20}{'model':>10}{'popular':>10}{'item-kNN':>10}"]
    lines += [f"{k:<20}{report[k]:>10.4f}{popular[k]:>10.4f}{cooc[k]:>10.4f}" for k in keys]
    for name, against in report["paired"].items():
        for metric, x in against.items():
            low, high = (f"{v:+.4f}" if v is not None else "n/a" for v in (x["low"], x["high"]))
            lines.append(f"model − {name} {metric}: {x['diff']:+.4f} (95% {low} … {high})")
    return "\n".join(lines)


def _fail(exc: Exception) -> Any:
    print(f"error: {exc}", file=sys.stderr)
    raise typer.Exit(1) from None
