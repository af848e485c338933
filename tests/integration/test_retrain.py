"""The retrain job on the real broker: read the event log (skipping bad records), train, index,
publish v1; then only the newer events, warm-started from v1 with new items, publish v2; each
version announced on model-updates with its manifest's and its whole sha256."""

from __future__ import annotations

import json
import time
from pathlib import Path

import numpy as np
import pytest
from kafka import KafkaProducer
from typer.testing import CliRunner

from recstream.artifacts import MANIFEST, list_versions, sha256_file, version_sha256
from recstream.model import ModelConfig, TrainConfig, load_artifact
from recstream.retrain import (
    OFFSETS_FILE,
    RetrainError,
    pending_events,
    recorded_offsets,
    retrain_once,
)
from recstream.settings import Settings
from tests.integration.conftest import Names, read_topic

pytestmark = pytest.mark.integration

TINY = ModelConfig(max_len=20, dim=16, n_layers=1, n_heads=1, dropout=0.1)
QUICK = TrainConfig(epochs=2, batch_size=64, threads=1)
BAD = [
    b"not json",
    b'{"user_id": "u1", "type": "click"}',  # no item
    b'{"user_id": "u1", "item_id": "x", "type": "click", "ts": "1764000000000"}',  # ts a string
    b"",
]


def genre_events(users: range, genres: range, items: range, seed: int) -> list[dict]:
    """Each user clicks items of one genre: a pattern the model can learn."""
    rng = np.random.default_rng(seed)
    base = int(time.time() * 1000) - 3_600_000
    events = []
    for u in users:
        g = genres[u % len(genres)]
        for t, n in enumerate(rng.choice(items, 8, replace=False)):
            events.append(
                {"user_id": f"user{u}", "item_id": f"g{g}-{n}", "type": "click", "ts": base + t}
            )
    return events


def publish(producer: KafkaProducer, topic: str, events: list[dict], bad: list[bytes]) -> int:
    futures = [
        producer.send(topic, key=e["user_id"].encode(), value=json.dumps(e).encode())
        for e in events
    ]
    futures += [producer.send(topic, key=b"bad", value=value) for value in bad]
    for future in futures:
        future.get(30)
    return len(futures)


@pytest.fixture
def settings(kafka_bootstrap: str, names: Names) -> Settings:
    return Settings(
        kafka_bootstrap=kafka_bootstrap,
        topic_events=names.events,
        topic_model_updates=f"model-updates-{names.tag}",
    )


def test_retrain_twice_warm_with_new_items_and_announce(
    settings: Settings, producer: KafkaProducer, kafka_bootstrap: str, tmp_path: Path
) -> None:
    root = tmp_path / "artifacts"
    first = genre_events(range(40), range(3), range(12), seed=0)  # 320 events
    publish(producer, settings.topic_events, first, BAD)

    v1 = retrain_once(settings, root, train_config=QUICK, model_config=TINY, min_events=50,
                      cold_epochs=3, auto=frozenset({"max_len"}))  # fmt: skip
    assert (v1.version, v1.warm_from) == ("v1", None)
    # A cold start chooses what it was told to from the data: 8 events a user, 6 to train on.
    assert v1.chosen == {"max_len": 10} != {"max_len": TINY.max_len}
    assert v1.epochs == 3  # fresh weights train cold_epochs, warm starts train_config.epochs
    assert (v1.events_read, v1.events_skipped) == (len(first), len(BAD))
    assert sum(v1.offsets.values()) == len(first) + len(BAD)
    loaded1 = load_artifact(root / "v1")  # verifies every checksum
    assert loaded1.config.max_len == 10
    assert set(loaded1.item_ids) == {e["item_id"] for e in first}
    assert recorded_offsets(root / "v1") is not None
    assert OFFSETS_FILE in loaded1.manifest["files"]
    assert (root / "v1" / "index").is_symlink()

    # New users, and a genre (and items) the model has never seen.
    second = genre_events(range(40, 70), range(2, 4), range(8, 16), seed=1)
    sent = publish(producer, settings.topic_events, second, BAD[:2])
    assert pending_events(settings, root) == sent

    v2 = retrain_once(settings, root, since_last=True, train_config=QUICK, min_events=50,
                      auto=frozenset({"max_len"}))  # fmt: skip
    assert (v2.version, v2.warm_from) == ("v2", "v1")
    assert v2.chosen == {}  # a warm start keeps the served shape, chosen from v1's data
    assert v2.epochs == QUICK.epochs
    assert (v2.events_read, v2.events_skipped) == (len(second), 2)  # only the newer records
    assert sum(v2.offsets.values()) == len(first) + len(BAD) + sent
    loaded2 = load_artifact(root / "v2")
    assert loaded2.config.max_len == 10
    old = loaded1.item_ids
    assert loaded2.item_ids[: len(old)] == old  # old rows map 1:1
    new = set(loaded2.item_ids[len(old) :])
    assert new == {e["item_id"] for e in second} - set(old)
    assert {i for i in new if i.startswith("g3-")}
    assert v2.new_items == len(new)
    assert loaded2.metrics["warm_start"]["from"] == str(root.resolve() / "v1")
    # Two short epochs move the copied embeddings a little, not back to random.
    e1 = loaded1.model.item_embeddings().detach().numpy()
    e2 = loaded2.model.item_embeddings().detach().numpy()[: len(old)]
    cosine = (e1 * e2).sum(1) / np.linalg.norm(e1, axis=1) / np.linalg.norm(e2, axis=1)
    assert cosine.mean() > 0.9, cosine.mean()

    updates = read_topic(kafka_bootstrap, settings.topic_model_updates, 2, timeout_s=30)
    assert [u.key for u in updates] == [b"v1", b"v2"]
    for record, version in zip(updates, ("v1", "v2"), strict=True):
        body = json.loads(record.value)
        assert body == {
            "version": version,
            "path": str((root / version).resolve()),
            "sha256": sha256_file(root / version / MANIFEST),
            "version_sha256": version_sha256(root / version),  # index included
        }

    # Nothing new since v2: refused, and nothing published.
    assert pending_events(settings, root) == 0
    with pytest.raises(RetrainError, match="only 0 valid events"):
        retrain_once(settings, root, since_last=True, train_config=QUICK, min_events=50)
    assert [p.name for p in list_versions(root)] == ["v1", "v2"]


def test_cli_train_from_kafka_then_retrain_since_last(
    settings: Settings, names: Names, producer: KafkaProducer, tmp_path: Path
) -> None:
    from recstream.cli import app

    root = tmp_path / "artifacts"
    env = {
        "RECSTREAM_KAFKA_BOOTSTRAP": settings.kafka_bootstrap,
        "RECSTREAM_TOPIC_EVENTS": names.events,
        "RECSTREAM_TOPIC_MODEL_UPDATES": settings.topic_model_updates,
        "RECSTREAM_ARTIFACTS": str(root),
    }
    shape = ["--max-len", "20", "--dim", "16", "--layers", "1", "--heads", "1"]
    quick = ["--epochs", "1", "--threads", "1"]
    publish(producer, names.events, genre_events(range(30), range(3), range(10), 0), BAD[:1])
    runner = CliRunner()
    trained = runner.invoke(
        app, ["train", "--from-kafka", *shape, *quick, "--no-progress", "--json"], env=env
    )
    assert trained.exit_code == 0, trained.output
    assert recorded_offsets(root / "v1") is not None

    refused = runner.invoke(app, ["retrain", "--since-last", "--min-events", "10"], env=env)
    assert refused.exit_code == 1
    assert "only 0 valid events" in refused.output

    publish(producer, names.events, genre_events(range(30, 45), range(3), range(10), 1), [])
    args = ["retrain", "--since-last", "--min-events", "10", *quick, "--json"]
    done = runner.invoke(app, args, env=env)
    assert done.exit_code == 0, done.output
    line = json.loads(done.stdout.strip().splitlines()[-1])
    assert (line["version"], line["warm_from"], line["events_read"]) == ("v2", "v1", 120)
    assert line["sha256"] == sha256_file(root / "v2" / MANIFEST)
    assert 0.0 < line["valid_ndcg@10_popularity"] <= 1.0

    # Shape flags on a warm start: the ones left out keep v2's values, not ModelConfig()'s.
    kept = runner.invoke(app, ["retrain", "--heads", "1", "--min-events", "10", *quick], env=env)
    assert kept.exit_code == 0, kept.output
    v3 = load_artifact(root / "v3").config
    assert (v3.dim, v3.max_len, v3.n_layers, v3.dropout) == (
        16,
        20,
        1,
        load_artifact(root / "v2").config.dropout,
    )
    other = runner.invoke(app, ["retrain", "--dim", "32", "--min-events", "10", *quick], env=env)
    assert other.exit_code == 1
    assert "dim 16 in the artifact, 32 requested" in other.output
    assert "max_len" not in other.output and "n_heads" not in other.output
    assert [p.name for p in list_versions(root)] == ["v1", "v2", "v3"]
