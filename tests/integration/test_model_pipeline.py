"""The worker serving a real (tiny) SASRec model and FAISS index on the real broker and Redis:
never recommends what the user already clicked or bought, and follows a change of taste."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
from kafka import KafkaProducer

from recstream.streams.keys import Keys
from tests.integration.conftest import Names, read_topic, sync_redis, wait_until

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


def _http(port: str, path: str, body: bytes | None = None, ctype: str = "") -> tuple[int, dict]:
    request = urllib.request.Request(f"http://127.0.0.1:{port}{path}", data=body)
    if ctype:
        request.add_header("Content-Type", ctype)
    try:
        with urllib.request.urlopen(request, timeout=10) as resp:
            return resp.status, json.loads(resp.read())
    except urllib.error.HTTPError as err:
        return err.code, json.loads(err.read())


def _ready(port: str) -> bool:
    try:
        return _http(port, "/readyz")[0] == 200
    except OSError:  # not listening yet
        return False


def test_the_http_api_answers_any_user_and_item_with_reasons(
    start_worker,
    producer: KafkaProducer,
    names: Names,
    kafka_bootstrap: str,
    redis_url: str,
    artifact: Path,
) -> None:
    items_topic = f"items-{names.tag}"
    worker = start_worker(RECSTREAM_ARTIFACTS=str(artifact), RECSTREAM_TOPIC_ITEMS=items_topic)
    port = worker.env["RECSTREAM_WEB_PORT"]
    for g in range(GENRES):
        for n in range(PER_GENRE):
            item = {"item_id": f"g{g}-{n}", "category": f"genre-{g}"}
            producer.send(
                items_topic, key=item["item_id"].encode(), value=json.dumps(item).encode()
            )
    producer.flush()
    assert wait_until(lambda: _ready(port), 60), worker.log_tail()
    catalog = Keys(names.redis_prefix).catalog()
    r = sync_redis(redis_url)
    assert wait_until(lambda: r.hlen(catalog) == GENRES * PER_GENRE, 60), worker.log_tail()
    time.sleep(1.5)  # the worker reloads the catalogue every second

    # Events over HTTP: a JSON array (one of them bad), then NDJSON.
    history = [{"user_id": "alice", "item_id": f"g1-{n}", "type": "click"} for n in range(5)]
    posted = [*history[:3], {"item_id": "g1-9", "type": "click"}]
    status, answer = _http(port, "/events", json.dumps(posted).encode(), "application/json")
    assert status == 202 and answer["accepted"] == 3 and answer["rejected"] == 1, answer
    assert answer["errors"][0]["index"] == 3 and "user_id" in answer["errors"][0]["error"]
    ndjson = "\n".join(json.dumps(e) for e in history[3:]).encode()
    assert _http(port, "/events", ndjson, "application/x-ndjson")[1]["accepted"] == 2
    lists = [json.loads(r.value) for r in read_topic(kafka_bootstrap, names.recommendations, 5)]
    (letter,) = [json.loads(r.value) for r in read_topic(kafka_bootstrap, names.dlq, 1)]
    assert letter["source"]["topic"] == "http" and "user_id" in letter["error"]

    # The newest list, as published, with reasons from alice's own history, genre by genre.
    status, latest = _http(port, "/users/alice/recommendations")
    assert status == 200 and latest.pop("origin") == "stream"
    assert latest == lists[-1], (latest, lists[-1])
    seen = {e["item_id"] for e in history}
    for item in latest["items"]:
        assert 1 <= len(item["because"]) <= 3 and set(item["because"]) <= seen, item
        if genre_of(item["item_id"]) == 1:
            assert all(genre_of(b) == 1 for b in item["because"]), item

    # Made now: a category, exclusions, more items; a stranger gets trending items.
    status, books = _http(port, "/users/alice/recommendations?category=genre-2&n=3&fresh=true")
    assert status == 200 and books["origin"] == "model" and books["rec_id"] is None
    assert [genre_of(i["item_id"]) for i in books["items"]] == [2, 2, 2]
    first = latest["items"][0]["item_id"]
    _, fewer = _http(port, f"/users/alice/recommendations?exclude={first}&n=20")
    assert len(fewer["items"]) == 20 and first not in {i["item_id"] for i in fewer["items"]}
    _, stranger = _http(port, "/users/nobody/recommendations")
    assert stranger["origin"] == "trending" and stranger["items"]
    assert {i["item_id"] for i in stranger["items"]} <= seen  # the only items clicked yet
    for bad in ("n=0", "n=ten", "fresh=maybe", "limit=3"):
        status, error = _http(port, f"/users/alice/recommendations?{bad}")
        assert status == 400 and error["error"], bad

    # The user, similar items, popular items, the description.
    _, alice = _http(port, "/users/alice")
    assert alice["events"] == 5 and alice["recent"] == [e["item_id"] for e in history]
    assert alice["latest"]["rec_id"] == lists[-1]["rec_id"] and len(alice["served"]) == 5
    status, similar = _http(port, "/items/g3-4/similar?n=5")
    assert status == 200 and len(similar["items"]) == 5
    assert sum(genre_of(i["item_id"]) == 3 for i in similar["items"]) >= 4, similar
    assert _http(port, "/items/no-such-item/similar")[0] == 404
    _, popular = _http(port, "/popular?category=genre-1&n=3")
    assert [genre_of(i["item_id"]) for i in popular["items"]] == [1, 1, 1]
    _, ready = _http(port, "/readyz")
    assert ready["checks"]["model"] == {"ok": True, "version": "v1"}
    _, spec = _http(port, "/openapi.json")
    assert {"/users/{user_id}/recommendations", "/events", "/popular"} <= set(spec["paths"])


@pytest.fixture(scope="module")
def two_versions(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """v1 and v2 of the same tiny model: an A/B test's mechanics do not need them to differ."""
    from recstream.index import build, save
    from recstream.index.artifact import read_model_arrays
    from recstream.model import Interactions, ModelConfig, TrainConfig, save_artifact, train

    root = tmp_path_factory.mktemp("ab-artifacts")
    data = Interactions.from_rows(genre_log())
    model_config = ModelConfig(max_len=16, dim=32, n_layers=1, n_heads=1, dropout=0.1)
    trained = train(data, model_config, TrainConfig(epochs=5, batch_size=64), progress=False)
    for _ in range(2):
        version = save_artifact(trained, root, {"dataset": "genre-test"})
        embeddings, ids = read_model_arrays(version)
        save(build(embeddings, ids, threads=1), version)
    return root


def test_an_ab_test_splits_users_stably_and_reports_each_arm(
    start_worker,
    producer: KafkaProducer,
    names: Names,
    kafka_bootstrap: str,
    redis_url: str,
    two_versions: Path,
) -> None:
    from typer.testing import CliRunner

    from recstream.cli import app

    env = {"RECSTREAM_ARTIFACTS": str(two_versions), "RECSTREAM_AB": "v1:50,v2:50"}
    worker = start_worker(**env)
    users = [f"ab{n}" for n in range(40)]
    for n, user in enumerate(users):
        send(producer, names.events, user, f"g{n % GENRES}-1")
    first = {
        v["user_id"]: v
        for v in (
            json.loads(r.value) for r in read_topic(kafka_bootstrap, names.recommendations, 40)
        )
    }
    assert len(first) == 40, worker.log_tail()
    assert all(v["variant"] == v["model_version"] for v in first.values())
    arms = Counter(v["variant"] for v in first.values())
    assert set(arms) == {"v1", "v2"}, arms
    # Half the users click their list's top item (with its rec_id): a hit for their arm.
    clickers = users[::2]
    for user in clickers:
        rec = first[user]
        payload = {
            "user_id": user,
            "item_id": rec["items"][0]["item_id"],
            "type": "click",
            "rec_id": rec["rec_id"],
        }
        producer.send(names.events, key=user.encode(), value=json.dumps(payload).encode())
    producer.flush()
    lists = [json.loads(r.value) for r in read_topic(kafka_bootstrap, names.recommendations, 60)]
    assert all(v["variant"] == first[v["user_id"]]["variant"] for v in lists)  # stable

    run_env = {"RECSTREAM_REDIS_URL": redis_url, **names.env(), **env}
    clicks = Counter(first[u]["variant"] for u in clickers)

    def reported() -> dict:
        done = CliRunner().invoke(app, ["ab", "report", "--json"], env=run_env)
        assert done.exit_code == 0, done.output
        return json.loads(done.stdout.strip().splitlines()[-1])

    assert wait_until(lambda: sum(a["lists"] for a in reported()["arms"].values()) == 60, 30)
    out = reported()
    for arm in ("v1", "v2"):
        mine = out["arms"][arm]
        assert mine["users"] == arms[arm]
        assert mine["lists"] == sum(v["variant"] == arm for v in lists)
        assert mine["ctr"]["value"] == pytest.approx(clicks[arm] / mine["lists"])
        assert mine["ctr"]["low"] <= mine["ctr"]["value"] <= mine["ctr"]["high"]
    assert out["versus"]["baseline"] == "v1" and not out["sample_ratio"]["mismatch"]
    # The pull API gives the newest list as published, arm included.
    port = worker.env["RECSTREAM_WEB_PORT"]
    newest = [v for v in lists if v["user_id"] == users[0]][-1]
    status, got = _http(port, f"/users/{users[0]}/recommendations")
    assert (
        status == 200 and got["variant"] == newest["variant"] and got["rec_id"] == newest["rec_id"]
    )


def test_a_simulated_ab_test_and_the_workers_report_agree_on_every_click(
    start_worker, names: Names, redis_url: str, two_versions: Path
) -> None:
    """The simulator's users react to the lists of their arm; its own tally of what they did
    (ground truth) and `recstream ab report` (the worker's attribution) agree exactly."""
    from typer.testing import CliRunner

    from recstream.cli import app

    ab = {"RECSTREAM_ARTIFACTS": str(two_versions), "RECSTREAM_AB": "v1:50,v2:50"}
    # Attribution by rec_id alone: the simulator's truth is its users' reactions to lists
    # (which carry rec_id); a window would also credit an organic click on a listed item.
    only_rec_id = {"RECSTREAM_ATTRIBUTION_WINDOW_S": "0"}
    worker = start_worker(RECSTREAM_TOPIC_ITEMS=f"items-{names.tag}", **ab, **only_rec_id)
    users, rounds = 40, 3
    args = ["simulate", "--scenario", "courses", "--seed", "5", "--users", str(users)]
    args += ["--warmup-events", "3", "--rounds", str(rounds), "--timeout", "120"]
    exe = Path(sys.executable).with_name("recstream")
    run = subprocess.run(
        [str(exe), *args, "--run-tag", names.tag, "--json"],
        env={**os.environ, **worker.env},
        capture_output=True,
        text=True,
        timeout=280,
    )
    assert run.returncode == 0, run.stderr + worker.log_tail()
    truth = json.loads(run.stdout)["variants"]
    assert set(truth) == {"v1", "v2"} and sum(t["lists"] for t in truth.values()) == users * rounds
    assert sum(t["clicks"] for t in truth.values()) > 0

    run_env = {"RECSTREAM_REDIS_URL": redis_url, **names.env(), **ab}

    def report() -> dict:
        done = CliRunner().invoke(app, ["ab", "report", "--json"], env=run_env)
        assert done.exit_code == 0, done.output
        return json.loads(done.stdout.strip().splitlines()[-1])

    def counted(arm: dict, metric: str) -> int:
        return round(arm[metric]["value"] * arm["lists"])

    clicks = sum(t["clicks"] for t in truth.values())
    assert wait_until(
        lambda: sum(counted(a, "ctr") for a in report()["arms"].values()) == clicks, 30
    ), (truth, report())
    out = report()
    print("simulator truth:", json.dumps(truth), "\nab report:", json.dumps(out))
    for arm, t in truth.items():
        assert counted(out["arms"][arm], "ctr") == t["clicks"], (arm, out, truth)
        assert counted(out["arms"][arm], "conversion") == t["purchases"], (arm, out, truth)
    assert sum(a["users"] for a in out["arms"].values()) == users
    assert not out["sample_ratio"]["mismatch"]
