"""``recstream simulate`` against a real worker (no model: trending lists) on the real broker
and Redis: the per-round numbers come from the lists the worker actually published."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from recstream.diversity import category_diversity
from recstream.sim.scenarios import SCENARIOS
from recstream.sim.world import World
from tests.integration.conftest import Names, read_topic

pytestmark = pytest.mark.integration

USERS, WARMUP, ROUNDS, SEED = 30, 3, 2, 5


def test_simulate_measures_the_lists_the_worker_published(
    start_worker, names: Names, kafka_bootstrap: str, tmp_path: Path
) -> None:
    items_topic = f"items-{names.tag}"
    worker = start_worker(RECSTREAM_TOPIC_ITEMS=items_topic)
    env = {**os.environ, **worker.env}
    args = ["simulate", "--scenario", "courses", "--seed", str(SEED), "--users", str(USERS)]
    args += ["--warmup-events", str(WARMUP), "--rounds", str(ROUNDS), "--timeout", "120"]
    exe = Path(sys.executable).with_name("recstream")
    run = subprocess.run(
        [str(exe), *args, "--run-tag", names.tag, "--json"],
        env=env,
        capture_output=True,
        text=True,
        timeout=280,
    )
    assert run.returncode == 0, run.stderr + worker.log_tail()
    result = json.loads(run.stdout)
    assert (result["scenario"], result["seed"]) == ("courses", SEED)
    assert len(result["rounds"]) == ROUNDS
    assert set(result["baseline"]) >= {"ctr", "conversion", "coverage", "diversity"}
    # Counterfactual arms beside the served lists; no retraining: no frozen model.
    arms = result["arms"]
    assert "absent" in arms["model_frozen"]
    assert result["baseline"] == arms["popularity"]["mean"]
    for arm in ("model_retrain", "item_knn", "category_trending", "popularity", "oracle"):
        assert [r["lists"] for r in arms[arm]["rounds"]] == [USERS] * ROUNDS
    assert set(result["paired"]) == {"item_knn", "category_trending", "popularity", "oracle"}
    assert result["paired"]["oracle"]["ctr"]["n"] == USERS

    catalogue = World(SCENARIOS["courses"], SEED, 1).catalogue
    sent = (
        USERS * WARMUP
        + USERS * ROUNDS
        + sum(r["clicks"] + r["purchases"] for r in result["rounds"])
    )
    records = read_topic(kafka_bootstrap, names.events, sent)
    events = [json.loads(r.value) for r in records]
    where = {e["event_id"]: (r.partition, r.offset) for e, r in zip(events, records, strict=True)}
    assert len(events) == sent
    lists = [json.loads(r.value) for r in read_topic(kafka_bootstrap, names.recommendations, sent)]
    by_source = {(x["source"]["partition"], x["source"]["offset"]): x for x in lists}
    by_rec_id = {x["rec_id"]: x for x in lists}
    assert all(i["item_id"] in catalogue.row for x in lists for i in x["items"])

    for summary in result["rounds"]:
        r = summary["round"]
        organic = [e for e in events if e["context"]["round"] == r and "rec_id" not in e]
        reactions = [e for e in events if e["context"]["round"] == r and "rec_id" in e]
        shown = [by_source[where[e["event_id"]]] for e in organic]
        # Impressions are the lists that answered this round's organic events, one per user.
        assert summary["lists"] == len(shown) == USERS
        assert summary["model_version"] == "none"
        assert summary["clicks"] == sum(e["type"] == "click" for e in reactions)
        assert summary["purchases"] == sum(e["type"] == "purchase" for e in reactions)
        assert summary["ctr"] == pytest.approx(summary["clicks"] / USERS)
        rows = [[catalogue.row[i["item_id"]] for i in x["items"]] for x in shown]
        distinct = {row for lst in rows for row in lst}
        assert summary["coverage"] == pytest.approx(len(distinct) / len(catalogue))
        cats = [catalogue.category[np.array(lst, np.int64)] for lst in rows]
        ilds = [category_diversity(c[None, :], [len(c)])[0] for c in cats]
        ilds = [d for d in ilds if not np.isnan(d)]  # lists of fewer than two items have none
        assert summary["diversity"] == pytest.approx(np.mean(ilds) if ilds else 0.0)
        assert summary["ctr@k"] == pytest.approx(summary["clicks"] / max(sum(map(len, rows)), 1))
        for event in reactions:  # each click names the list it came from
            came_from = by_rec_id[event["rec_id"]]
            assert came_from["user_id"] == event["user_id"]
            assert came_from in shown
            assert event["item_id"] in {i["item_id"] for i in came_from["items"]}
