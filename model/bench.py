"""``bench model``: encoder latency per user at batch 1 and batch 64, on real histories when
the artifact's dataset is at hand (else random ones of full length, the worst case)."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import numpy as np

from recstream.contract import DEFAULT_EVENT_WEIGHTS
from recstream.model.data import load_dataset
from recstream.model.encoder import Encoder
from recstream.model.onnx_encoder import OnnxEncoder
from recstream.model.sequences import Vocabulary, build_sequences
from recstream.stats import percentiles

BATCHES = (1, 64)


def histories_for(encoder: Encoder | OnnxEncoder, seed: int) -> tuple[list[list[str]], str]:
    """Users' item-id histories from the artifact's dataset, or random full-length ones."""
    dataset = encoder.metrics.get("dataset", {})
    path = Path(dataset.get("path", ""))
    if dataset.get("name") and path.exists():
        data = load_dataset(dataset["name"], path)
        sequences = build_sequences(data, DEFAULT_EVENT_WEIGHTS, Vocabulary(encoder.item_ids))
        ids = np.array(encoder.item_ids, dtype=object)
        return [list(ids[s - 1]) for s in sequences.items], f"{dataset['name']} users"
    rng = np.random.default_rng(seed)
    n, length = len(encoder.item_ids), encoder.max_len
    random = [[encoder.item_ids[i] for i in rng.integers(0, n, length)] for _ in range(1024)]
    return random, f"random, length {length}"


def bench_encoder(
    encoder: Encoder | OnnxEncoder, histories: list[list[str]], repeats: int = 200, seed: int = 0
) -> dict[str, Any]:
    """p50/p99 microseconds per user of ``encode`` at each batch size; warm-up excluded."""
    rng = np.random.default_rng(seed)
    result: dict[str, Any] = {}
    for size in BATCHES:
        batches = [
            [histories[i] for i in rng.integers(0, len(histories), size)] for _ in range(repeats)
        ]
        for batch in batches[:5]:
            encoder.encode(batch)  # warm-up: allocator and kernel selection
        per_user = [_time(encoder, batch) / size * 1e6 for batch in batches]
        result[f"batch{size}"] = percentiles(per_user, (50, 99), digits=1)
    metrics = encoder.metrics
    return {
        "encode_us_per_user": result,
        "train_seconds_per_epoch": metrics.get("seconds_per_epoch"),
        "train_seconds_per_epoch_source": f"metrics.json of {encoder.version} (training run)",
        "version": encoder.version,
        "n_items": len(encoder.item_ids),
        "config": metrics.get("model_config"),
        "device": "cpu",
    }


def _time(encoder: Encoder | OnnxEncoder, batch: list[list[str]]) -> float:
    started = time.perf_counter()
    encoder.encode(batch)
    return time.perf_counter() - started
