"""The worker serves a model without torch: the version's exported encoder runs on ONNX Runtime,
so a worker image needs neither torch nor the packages only training uses."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from kafka import KafkaProducer

from tests.integration.conftest import Names, read_topic
from tests.integration.test_model_pipeline import artifact, send  # noqa: F401 (fixture)

pytestmark = pytest.mark.integration

# Importing any of these in the worker's process raises ImportError: serving needs none.
TRAINING_ONLY = ("torch", "onnx", "pyarrow", "matplotlib")
HIDE = f"import sys\nsys.modules.update(dict.fromkeys({TRAINING_ONLY!r}))"


def test_worker_serves_the_model_with_training_packages_hidden(
    start_worker,
    producer: KafkaProducer,
    names: Names,
    kafka_bootstrap: str,
    request: pytest.FixtureRequest,
) -> None:
    root: Path = request.getfixturevalue("artifact")  # a tiny trained version with its index
    assert (root / "v1" / "encoder.onnx").is_file()
    worker = start_worker(HIDE, RECSTREAM_ARTIFACTS=str(root))
    history = ["g2-0", "g2-1", "g2-2"]
    for item in history:
        send(producer, names.events, "u-onnx", item)
    records = read_topic(kafka_bootstrap, names.recommendations, len(history), 120)
    assert len(records) == len(history), worker.log_tail()
    last = json.loads(records[-1].value)
    assert last["model_version"] == "v1", worker.log_tail()
    items = [entry["item_id"] for entry in last["items"]]
    assert items and not set(history) & set(items)
    assert sum(i.startswith("g2-") for i in items) >= len(items) // 2  # the user's genre leads
    assert worker.alive, worker.log_tail()
