"""The whole loop on the real broker and Redis: a worker with no model, ``simulate --retrain``
trains v1 from the warm-up's log, then retrains (warm start) after each round while the worker
hot-swaps. On a fixed seed, CTR after two retrains beats the first model and popularity; v1,
kept frozen in-process, makes the worker's own lists in round 1."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.integration.conftest import Names

pytestmark = pytest.mark.integration

SCENARIO, SEED, USERS, WARMUP, ROUNDS = "media", 7, 120, 15, 3


def test_ctr_rises_across_retrains_and_beats_popularity(
    start_worker, names: Names, tmp_path: Path
) -> None:
    artifacts = tmp_path / "artifacts"
    worker = start_worker(
        RECSTREAM_TOPIC_ITEMS=f"items-{names.tag}", RECSTREAM_ARTIFACTS=str(artifacts)
    )
    args = ["simulate", "--scenario", SCENARIO, "--seed", str(SEED), "--users", str(USERS)]
    args += ["--warmup-events", str(WARMUP), "--rounds", str(ROUNDS), "--retrain"]
    args += [
        "--retrain-epochs",
        "10",
        "--cold-epochs",
        "10",
        "--artifacts",
        str(artifacts),
        "--version-timeout",
        "120",
    ]
    run = subprocess.run(
        [str(Path(sys.executable).with_name("recstream")), *args, "--run-tag", names.tag, "--json"],
        env={**os.environ, **worker.env},
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert run.returncode == 0, run.stderr[-3000:] + worker.log_tail()
    result = json.loads(run.stdout)
    rounds = result["rounds"]
    print({r["model_version"]: (r["ctr"], r["baseline"]["ctr"]) for r in rounds})  # on failure
    # v1 from the warm-up serves round 1; each retrain after a round is served by the next.
    assert [r["model_version"] for r in rounds] == ["v1", "v2", "v3"]
    assert [s["version"] for s in result["retrains"]] == ["v1", "v2", "v3"]
    first, last = rounds[0], rounds[-1]
    assert last["ctr"] > first["ctr"], rounds
    assert last["ctr"] > last["baseline"]["ctr"], rounds
    assert last["ctr"] > result["baseline"]["ctr"], result["baseline"]
    # model_frozen is v1 run in-process on the worker's states: in round 1, when the worker
    # serves v1 too, it shows the same lists (up to float ties of batched encoding).
    frozen = result["arms"]["model_frozen"]["rounds"]
    assert len(frozen) == ROUNDS
    assert frozen[0]["same_as_served"] > 0.8, frozen[0]
    assert result["paired"]["model_frozen"]["ctr"]["n"] == USERS
