"""``recstream train``, ``evaluate --json`` and ``bench model`` end to end on a tiny file."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
from typer.testing import CliRunner

from recstream.cli import app
from recstream.index.artifact import has_index
from recstream.model.cpu import native_int8

EVALUATE_KEYS = {
    "hr@10",
    "ndcg@10",
    "hr@10_unmasked",
    "ndcg@10_unmasked",
    "hr@10_sampled",
    "ndcg@10_sampled",
    "coverage@10",
    "ild@10",
    "novelty@10",
    "n_users",
}
TINY = ["--max-len", "5", "--dim", "8", "--layers", "1", "--heads", "1", "--no-progress"]


def _events_csv(path: Path) -> Path:
    rng = np.random.default_rng(0)
    lines = ["user,item,ts,type"]
    for user in range(20):
        for t in range(8):
            kind = "skip" if t == 3 else "click"
            lines.append(f"user{user},m{int(rng.integers(0, 30))},{t},{kind}")
    path.write_text("\n".join(lines) + "\n")
    return path


def _train(tmp_path: Path) -> Path:
    data = _events_csv(tmp_path / "events.csv")
    out = tmp_path / "artifacts"
    args = ["train", "--data", str(data), "--out", str(out), "--epochs", "2", "--json", *TINY]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    summary = json.loads(result.stdout)
    assert summary["version"] == "v1" and summary["epochs"] == 2
    assert summary["index"] and has_index(out / "v1")  # servable as published
    floor = summary["valid_ndcg@10_popularity"]  # the most-popular ranking, same users
    assert 0.0 < floor <= 1.0
    metrics = json.loads((out / "v1" / "metrics.json").read_text())
    assert metrics["valid_popularity"] == {"valid_ndcg@10": floor}
    return out


def test_train_no_index_leaves_it_to_build_index(tmp_path: Path) -> None:
    data = _events_csv(tmp_path / "events.csv")
    out = tmp_path / "artifacts"
    args = ["train", "--data", str(data), "--out", str(out), "--epochs", "1", "--no-index"]
    result = CliRunner().invoke(app, [*args, "--json", *TINY])
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["index"] is False and not has_index(out / "v1")


def test_train_evaluate_bench(tmp_path: Path) -> None:
    out = _train(tmp_path)
    runner = CliRunner()
    result = runner.invoke(app, ["evaluate", "--artifacts", str(out), "--json"])
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert set(report) >= EVALUATE_KEYS | {"baseline", "cooccurrence", "paired"}
    assert set(report["baseline"]) >= EVALUATE_KEYS
    assert set(report["cooccurrence"]) >= EVALUATE_KEYS
    for against in ("popularity", "cooccurrence"):
        for metric in ("ndcg@10", "hr@10"):
            x = report["paired"][against][metric]
            assert x["low"] <= x["diff"] <= x["high"] and x["n"] == report["n_users"]
    assert report["n_users"] == 20 and report["ild_by"] == "embedding"
    assert 0.0 <= report["hr@10"] <= 1.0
    result = runner.invoke(app, ["bench", "model", "--artifacts", str(out), "--repeats", "3"])
    assert result.exit_code == 0, result.output
    bench = json.loads(result.stdout)
    assert set(bench["encode_us_per_user"]) == {"batch1", "batch64"}
    assert set(bench["encode_us_per_user"]["batch64"]) == {"p50", "p99"}
    assert bench["threads"] == 1 and bench["train_seconds_per_epoch"] >= 0
    # auto: the calibrated int8 copy where the CPU has integer dot products, else float32
    expected = "int8" if native_int8() else "float32"
    assert (bench["dtype"], bench["backend"]) == (expected, "onnx")
    exact = runner.invoke(
        app, ["bench", "model", "--artifacts", str(out), "--repeats", "3", "--dtype", "float32"]
    )
    assert exact.exit_code == 0, exact.output
    assert json.loads(exact.stdout)["dtype"] == "float32"
    half = runner.invoke(
        app, ["bench", "model", "--artifacts", str(out), "--repeats", "3", "--dtype", "bfloat16"]
    )
    assert half.exit_code == 0, half.output
    assert json.loads(half.stdout)["dtype"] == "bfloat16"


def test_bad_arguments_fail_clearly(tmp_path: Path) -> None:
    runner = CliRunner()
    result = runner.invoke(app, ["train", "--dataset", "ml-1m"])
    assert result.exit_code != 0
    assert "--data-dir" in result.output
    missing = tmp_path / "none.csv"
    result = runner.invoke(app, ["train", "--data", str(missing), "--out", str(tmp_path)])
    assert result.exit_code == 1
    assert "file not found" in result.output
    result = runner.invoke(app, ["evaluate", "--artifacts", str(tmp_path / "empty"), "--json"])
    assert result.exit_code == 1
    assert "no artifact versions" in result.output


def test_help_prints_bracketed_notes_whole() -> None:
    # Rich markup would read "[from the data: ...]" as a style tag and drop it from --help.
    done = CliRunner().invoke(app, ["train", "--help"], terminal_width=200)
    assert done.exit_code == 0, done.output
    assert "[from the data: 4 where d is 128, else 2]" in done.output
    assert "Dropout rate [from the data:" in done.output
