"""``recstream build-index`` and ``recstream bench index`` (tiny sizes only)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
from typer.testing import CliRunner

from recstream.artifacts import publish_version, staging_dir, write_manifest
from recstream.cli import app

BENCH_KEYS = {
    "n_items",
    "d",
    "index",
    "build_s",
    "memory_mb",
    "recall@10",
    "exact_qps_batch1",
    "index_qps_batch1",
    "exact_qps_batch64",
    "index_qps_batch64",
    "speedup_batch1",
}


def _model_version(root: Path) -> Path:
    rng = np.random.default_rng(0)
    staged = staging_dir(root)
    np.save(staged / "item_embeddings.npy", rng.standard_normal((400, 8)).astype(np.float32))
    (staged / "item_ids.json").write_text(json.dumps([f"m{r}" for r in range(400)]))
    dataset = {"dataset": "ml-1m", "path": "data/ml-1m"}  # as model/ records it
    write_manifest(staged, ["item_embeddings.npy", "item_ids.json"], dataset=dataset)
    return publish_version(root, staged)


def test_build_index_publishes_and_refuses_a_second_build_without_force(tmp_path: Path):
    version = _model_version(tmp_path)
    runner = CliRunner()
    first = runner.invoke(app, ["build-index", "--artifacts", str(tmp_path), "--json"])
    assert first.exit_code == 0, first.output
    summary = json.loads(first.stdout)
    assert summary["version"] == "v1" and summary["factory"] == "Flat"
    assert summary["n_items"] == 400 and summary["d"] == 8
    assert (version / "index" / "index.faiss").is_file()
    again = runner.invoke(app, ["build-index", "--artifacts", str(version)])
    assert again.exit_code == 1 and "--force" in again.output
    forced = runner.invoke(app, ["build-index", "--artifacts", str(version), "--force", "--json"])
    assert forced.exit_code == 0, forced.output


def test_build_index_without_a_model_is_a_clear_error(tmp_path: Path):
    result = CliRunner().invoke(app, ["build-index", "--artifacts", str(tmp_path)])
    assert result.exit_code == 1 and "no artifact versions" in result.output


def test_bench_index_prints_the_contract_keys(tmp_path: Path):
    _model_version(tmp_path)
    args = ["bench", "index", "--sizes", "1500", "--queries", "64", "--min-seconds", "0.01"]
    args += ["--artifacts", str(tmp_path)]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    rows = json.loads(result.stdout)["results"]
    assert [row["n_items"] for row in rows] == [400, 1500]
    assert rows[0]["source"] == "ml-1m-sasrec" and rows[1]["source"] == "synthetic-clustered"
    for row in rows:
        assert row.keys() >= BENCH_KEYS
        assert row["recall@10"] == 1.0  # small catalogues: exact search
