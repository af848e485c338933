"""Model hot swap on the real broker and Redis: a worker serving v1 under continuous load
switches to an announced v2 without losing or failing an event, and refuses a tampered or
misannounced version while it keeps serving the one it has."""

from __future__ import annotations

import json
import shutil
import threading
import time
import urllib.request
from pathlib import Path
from typing import Any

import pytest
import redis
from kafka import KafkaProducer

from recstream.artifacts import (
    MANIFEST,
    publish_version,
    read_manifest,
    sha256_file,
    staging_dir,
    version_sha256,
    write_manifest,
)
from recstream.streams.keys import Keys
from recstream.streams.records import ModelUpdate
from tests.integration.conftest import (
    Names,
    Worker,
    read_topic,
    stored_state,
    sync_redis,
    wait_until,
)
from tests.integration.test_model_pipeline import GENRES, PER_GENRE, genre_log

pytestmark = pytest.mark.integration
SHORT = 6  # the second model's history length: states follow it after the swap


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory) -> dict[int, Path]:
    """Two tiny models of the same log (seeds 0 and 1; history lengths 16 and 6), each with
    its index: ``<root>/v1``."""
    from recstream.index import build, save
    from recstream.index.artifact import read_model_arrays
    from recstream.model import Interactions, ModelConfig, TrainConfig, save_artifact, train

    out = {}
    data = Interactions.from_rows(genre_log())
    for seed in (0, 1):
        shape = ModelConfig(max_len=SHORT if seed else 16, dim=32, n_layers=1, n_heads=1)
        root = tmp_path_factory.mktemp(f"seed{seed}")
        config = TrainConfig(epochs=4, batch_size=64, seed=seed, threads=1)
        model = train(data, shape, config, progress=False)
        version = save_artifact(model, root, {"dataset": "genre-test"})
        embeddings, ids = read_model_arrays(version)
        save(build(embeddings, ids, threads=1), version)
        out[seed] = version
    return out


def publish_copy(source: Path, root: Path) -> Path:
    """Publish a copy of a version directory as the next ``v<N>`` under ``root``."""
    staged = staging_dir(root)
    shutil.copytree(source, staged, symlinks=True, dirs_exist_ok=True)
    return publish_version(root, staged)


def announce(
    producer: KafkaProducer, topic: str, version: Path, sha: str | None = None, whole: str = ""
) -> None:
    update = ModelUpdate(
        version=version.name,
        path=str(version),
        sha256=sha or sha256_file(version / MANIFEST),
        version_sha256=whole or version_sha256(version),
    )
    producer.send(topic, key=version.name.encode(), value=update.model_dump_json().encode()).get(30)


def click(producer: KafkaProducer, topic: str, n: int):
    user, item = f"user{n % 40}", f"g{n % GENRES}-{n % PER_GENRE}"
    value = json.dumps({"user_id": user, "item_id": item, "type": "click"}).encode()
    return producer.send(topic, key=user.encode(), value=value)


def serving(r: redis.Redis, names: Names, worker_id: str) -> dict:
    raw = r.hget(Keys(names.redis_prefix).workers(), worker_id)
    return json.loads(raw) if raw else {}


def prometheus(port: str) -> str:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10) as resp:
        return resp.read().decode()


def serve_first_event(
    start_worker, producer: KafkaProducer, names: Names, bootstrap: str, root: Path, version: str
) -> tuple[Worker, str, Any]:
    """A worker serving the newest version under ``root``, checked by the list made for one
    event: returns the worker, its id and that event's send metadata."""
    worker_id = f"w-{names.tag}"
    worker = start_worker(RECSTREAM_ARTIFACTS=str(root), RECSTREAM_WORKER_ID=worker_id)
    first = click(producer, names.events, 0).get(30)
    (ready,) = read_topic(bootstrap, names.recommendations, 1)
    assert json.loads(ready.value)["model_version"] == version, worker.log_tail()
    return worker, worker_id, first


def test_hot_swap_under_load_loses_no_event(
    start_worker,
    producer: KafkaProducer,
    names: Names,
    kafka_bootstrap: str,
    redis_url: str,
    trained: dict[int, Path],
    tmp_path: Path,
) -> None:
    root = tmp_path / "artifacts"
    publish_copy(trained[0], root)
    worker, worker_id, first = serve_first_event(
        start_worker, producer, names, kafka_bootstrap, root, "v1"
    )
    r = sync_redis(redis_url)

    sent = [first]
    stop = threading.Event()

    def load() -> None:  # about 100 events/s until told to stop
        n = 1
        while not stop.is_set():
            sent.append(click(producer, names.events, n))
            n += 1
            time.sleep(0.01)

    thread = threading.Thread(target=load)
    thread.start()
    try:
        time.sleep(2)
        v2 = publish_copy(trained[1], root)
        announced = int(time.time() * 1000)
        announce(producer, names.model_updates, v2)
        swapped = wait_until(lambda: serving(r, names, worker_id).get("version") == "v2", 90)
        time.sleep(2)  # keep the load on after the swap
    finally:
        stop.set()
        thread.join()
    assert swapped, worker.log_tail()
    producer.flush()
    sources = {(m.partition, m.offset) for m in (f if f is first else f.get(30) for f in sent)}
    assert len(sources) == len(sent)

    records = read_topic(kafka_bootstrap, names.recommendations, len(sent), 120, settle_s=2)
    lists = [json.loads(x.value) for x in records]
    answered = [(x["source"]["partition"], x["source"]["offset"]) for x in lists]
    assert len(answered) == len(sent), worker.log_tail()  # one list per event, no extra
    assert set(answered) == sources
    by_version: dict[str, list[int]] = {}
    for x in lists:
        by_version.setdefault(x["model_version"], []).append(x["created_ts"])
    assert set(by_version) == {"v1", "v2"}
    assert max(by_version["v1"]) <= min(by_version["v2"])  # a clean switch between batches
    assert len(by_version["v2"]) >= 50
    # States keep what the model serving them reads: every user whose latest list v2 made
    # keeps at most SHORT items, though v1 kept up to 16 and everyone had more clicks.
    latest = {x["user_id"]: x for x in lists}
    after = [u for u, x in latest.items() if x["model_version"] == "v2"]
    assert len(after) >= 20
    for user in after:
        state = stored_state(r, names.redis_prefix, user)
        assert 1 <= len(state["seq"]) <= SHORT, state
    assert read_topic(kafka_bootstrap, names.dlq, 0, timeout_s=5, settle_s=1) == []

    entry = serving(r, names, worker_id)
    assert entry["since_ms"] >= announced
    text = prometheus(worker.env["RECSTREAM_WEB_PORT"])
    assert 'recstream_model_swaps_total{result="ok"} 1.0' in text
    assert 'recstream_model_swaps_total{result="failed"} 0.0' in text
    assert 'recstream_model_serving{version="v2"} 1.0' in text


def test_a_tampered_or_misannounced_version_is_refused(
    start_worker,
    producer: KafkaProducer,
    names: Names,
    kafka_bootstrap: str,
    redis_url: str,
    trained: dict[int, Path],
    tmp_path: Path,
) -> None:
    root = tmp_path / "artifacts"
    publish_copy(trained[0], root)
    publish_copy(trained[1], root)
    worker, worker_id, _ = serve_first_event(
        start_worker, producer, names, kafka_bootstrap, root, "v2"
    )

    # v3: one byte of the weights changed after publishing; announced with the manifest's sha.
    v3 = publish_copy(trained[0], root)
    weights = v3 / "weights.safetensors"
    data = bytearray(weights.read_bytes())
    data[len(data) // 2] ^= 0xFF
    weights.write_bytes(bytes(data))
    announce(producer, names.model_updates, v3)
    # v4: intact, but announced with a sha256 its manifest does not have.
    v4 = publish_copy(trained[1], root)
    announce(producer, names.model_updates, v4, sha="0" * 64)

    # v5: announced intact, then its index replaced by another model's, manifest and all:
    # every file matches its manifest, only the announced whole-version sha256 tells.
    v5 = publish_copy(trained[0], root)
    intact = version_sha256(v5)
    generation = (v5 / "index").resolve()
    shutil.copyfile((trained[1] / "index").resolve() / "index.faiss", generation / "index.faiss")
    extra = {k: v for k, v in read_manifest(generation).items() if k not in ("format", "files")}
    write_manifest(generation, ["index.faiss"], **extra)
    announce(producer, names.model_updates, v5, whole=intact)

    r = sync_redis(redis_url)
    stats = Keys(names.redis_prefix).stats()
    assert wait_until(lambda: r.hget(stats, "swap_failures") == b"3", 90), worker.log_tail()
    click(producer, names.events, 1).get(30)
    lists = read_topic(kafka_bootstrap, names.recommendations, 2)
    assert [json.loads(x.value)["model_version"] for x in lists] == ["v2", "v2"]
    assert serving(r, names, worker_id)["version"] == "v2"
    text = prometheus(worker.env["RECSTREAM_WEB_PORT"])
    assert 'recstream_model_swaps_total{result="failed"} 3.0' in text
    assert 'recstream_model_serving{version="v2"} 1.0' in text
    log = worker.log_path.read_text()
    assert "refusing model v3" in log and "refusing model v4" in log
    assert "refusing model v5" in log and "its index or a manifest changed" in log
