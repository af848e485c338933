"""The worker serving a real (tiny) SASRec model and FAISS index on the real broker and Redis:
never recommends what the user already clicked or bought, and follows a change of taste."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from kafka import KafkaProducer

from tests.integration.conftest import Names, read_topic

pytestmark = pytest.mark.integration

GENRES, PER_GENRE = 4, 25


def genre_of(item: str) -> int:
    return int(item.split("-")[0][1:])


def genre_log(seed: int = 0) -> list[tuple[str, str, int, str]]:
    """Users who each stick to one genre: the model must learn genre neighbourhoods."""
    rng = np.random.default_rng(seed)
    rows = []
    for u in range(240):
        g = u % GENRES
        for t, n in enumerate(rng.choice(PER_GENRE, 12, replace=False)):
            rows.append((f"user{u}", f"g{g}-{n}", 1_764_000_000_000 + t, "click"))
    return rows


@pytest.fixture(scope="module")
def artifact(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from recstream.index import build, save
    from recstream.index.artifact import read_model_arrays
    from recstream.model import Interactions, ModelConfig, TrainConfig, save_artifact, train

    root = tmp_path_factory.mktemp("artifacts")
    data = Interactions.from_rows(genre_log())
    model_config = ModelConfig(max_len=16, dim=32, n_layers=1, n_heads=1, dropout=0.1)
    schedule = TrainConfig(epochs=15, batch_size=64, lr=2e-3)
    trained = train(data, model_config, schedule, progress=False)
    version = save_artifact(trained, root, {"dataset": "genre-test"})
    embeddings, ids = read_model_arrays(version)
    save(build(embeddings, ids, threads=1), version)
    return root


def send(producer: KafkaProducer, topic: str, user: str, item: str, kind: str = "click") -> None:
    payload = {"user_id": user, "item_id": item, "type": kind}
    producer.send(topic, key=user.encode(), value=json.dumps(payload).encode()).get(30)


def test_lists_exclude_history_and_follow_a_burst_in_another_genre(
    start_worker,
    producer: KafkaProducer,
    names: Names,
    kafka_bootstrap: str,
    artifact: Path,
) -> None:
    worker = start_worker(RECSTREAM_ARTIFACTS=str(artifact))
    history = [("g0-1", "click"), ("g0-2", "purchase"), ("g0-3", "click"), ("g0-4", "click")]
    burst = [(f"g2-{n}", "click") for n in range(6)]
    for item, kind in history + burst:
        send(producer, names.events, "alice", item, kind)
    lists = [
        json.loads(r.value)
        for r in read_topic(kafka_bootstrap, names.recommendations, len(history) + len(burst))
    ]
    assert len(lists) == len(history) + len(burst), worker.log_tail()
    assert all(x["model_version"] == "v1" for x in lists)
    touched: set[str] = set()
    for (item, _), rec in zip(history + burst, lists, strict=True):
        touched.add(item)
        ranked = [i["item_id"] for i in rec["items"]]
        assert len(ranked) == 10
        assert not touched & set(ranked)  # never what the user already clicked or bought
    before = [genre_of(i["item_id"]) for i in lists[len(history) - 1]["items"]]
    after = [genre_of(i["item_id"]) for i in lists[-1]["items"]]
    assert before.count(0) >= 6, before
    assert after.count(2) >= 6, after
    assert after.count(2) > before.count(2)
