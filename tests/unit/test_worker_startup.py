"""A restarted worker serves the newest version that verifies, not a broken newer one."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from recstream.index import build
from recstream.model.artifact import WEIGHTS, save_artifact
from recstream.model.config import ModelConfig, TrainConfig
from recstream.model.data import Interactions
from recstream.model.encoder import Encoder
from recstream.model.training import train
from recstream.serving import load_recommender
from recstream.settings import Settings


def _publish(root: Path, seed: int) -> Path:
    rng = np.random.default_rng(seed)
    rows = [(f"u{u}", f"i{int(i)}", t, "click") for u in range(12) for t, i in
            enumerate(rng.integers(0, 15, 6))]  # fmt: skip
    config = ModelConfig(max_len=5, dim=8, n_layers=1, n_heads=1)
    trained = train(Interactions.from_rows(rows), config, TrainConfig(epochs=1, threads=1),
                    progress=False)  # fmt: skip
    version = save_artifact(trained, root, {"name": "toy", "path": ""})
    encoder = Encoder.load(version)
    build(encoder.item_embeddings(), list(encoder.item_ids), metric="ip").save(version)
    return version


def test_broken_newest_version_falls_back_to_the_previous_one(tmp_path: Path) -> None:
    v1, v2 = _publish(tmp_path, 1), _publish(tmp_path, 2)
    assert load_recommender(tmp_path, Settings()).version == "v2"
    weights = v2 / WEIGHTS
    weights.write_bytes(weights.read_bytes()[:-7])  # truncated: refused by its checksum
    assert load_recommender(tmp_path, Settings()).version == v1.name
    with pytest.raises(RuntimeError, match=r"truncated|checksum|sha256"):
        load_recommender(v2, Settings())  # a version asked for by name is never replaced
