"""Faults under steady load that take minutes, run apart from CI (docs/streams.md has the
figures): ``.venv/bin/python -m pytest -m long -s tests/integration/test_faults_long.py``
with the services of ``scripts/services up`` running. Each counts every event against what
was sent: answered, applied once to its user's state, nothing dead-lettered."""

from __future__ import annotations

import json
import random
import signal
import statistics
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from tests.integration.conftest import Names, wait_until
from tests.integration.faults import SteadyLoad, check_every_event
from tests.integration.test_hot_swap import publish_copy, trained  # noqa: F401 (fixture)

pytestmark = pytest.mark.long

SLOW_ENCODER = """
import random, time
from recstream.streams import recommender as _rec
_recommend = _rec.ModelRecommender.recommend
def _slow(self, *args, **kwargs):
    if random.random() < 0.01:  # one batch in a hundred takes 300 ms longer
        time.sleep(0.3)
    return _recommend(self, *args, **kwargs)
_rec.ModelRecommender.recommend = _slow
"""


def _report(name: str, outcome: Any, faults: list[float]) -> None:
    worst = [w for w in (outcome.worst_wait_after(at) for at in faults) if w is not None]
    waits = sorted(outcome.waits_s.values())
    figures = {
        "events": outcome.events,
        "faults": len(faults),
        "worst_wait_after_fault_s": {
            "median": round(statistics.median(worst), 2) if worst else None,
            "max": max(worst, default=None),
        },
        "wait_p50_ms": round(waits[len(waits) // 2] * 1000, 1),
        "wait_p99_ms": round(waits[int(len(waits) * 0.99)] * 1000, 1),
    }
    print(f"{name}: {json.dumps(figures)}")


def test_twenty_worker_kills_at_random_moments(
    start_worker: Callable[..., Any], names: Names, kafka_bootstrap: str, redis_url: str
) -> None:
    """SIGKILL at a random moment, 20 times: each new worker takes the same static member id,
    so it gets the partitions back at once instead of after the session timeout. The next
    kill comes 0.5-4 s after the new worker answers again."""
    rng = random.Random(20)
    static = {"RECSTREAM_GROUP_INSTANCE_ID": f"w-{names.tag}"}
    worker = start_worker(**static)
    kills: list[float] = []
    with SteadyLoad(kafka_bootstrap, names.events, rate=500) as load:
        time.sleep(3)
        for _ in range(20):
            time.sleep(rng.uniform(0.5, 4.0))
            kills.append(time.time())
            worker.stop(signal.SIGKILL)
            worker = start_worker(**static)
            # Resumed: the new worker's events consumer holds the partitions again (it logs
            # "assigned [(topic, partition), ...]"; faust's own consumer logs other lines).
            resumed = wait_until(lambda w=worker: " assigned [(" in w.log_tail(400), 60)
            assert resumed, worker.log_tail()
        time.sleep(8)
    outcome = check_every_event(
        load, kafka_bootstrap, redis_url, names.redis_prefix, names.recommendations, names.dlq
    )
    made = sorted(outcome.made_at.values())
    resume = [next((m for m in made if m > at), float("inf")) - at for at in kills]
    print(
        "resume after a kill (s):",
        json.dumps(
            {
                "median": round(statistics.median(resume), 2),
                "max": round(max(resume), 2),
                "all": [round(r, 2) for r in resume],
            }
        ),
    )
    _report("worker kills", outcome, kills)


def test_rebalance_storm_with_static_members(
    start_worker: Callable[..., Any], names: Names, kafka_bootstrap: str, redis_url: str
) -> None:
    """Three static members, one restarted every 3 s (twelve times), and a fourth, dynamic
    worker joining and leaving every 6 s: the group keeps moving."""
    members = {n: start_worker(RECSTREAM_GROUP_INSTANCE_ID=f"s{n}-{names.tag}") for n in range(3)}
    moves: list[float] = []
    guest = None
    with SteadyLoad(kafka_bootstrap, names.events, rate=500) as load:
        time.sleep(5)
        for turn in range(12):
            n = turn % 3
            moves.append(time.time())
            members[n].stop(signal.SIGTERM)
            members[n] = start_worker(RECSTREAM_GROUP_INSTANCE_ID=f"s{n}-{names.tag}")
            if turn % 2 == 0 and guest is None:
                guest = start_worker()
            elif turn % 2 == 0 and guest is not None:
                guest.stop(signal.SIGTERM)
                guest = None
            time.sleep(3)
        time.sleep(8)
    outcome = check_every_event(
        load, kafka_bootstrap, redis_url, names.redis_prefix, names.recommendations, names.dlq
    )
    _report("rebalance storm", outcome, moves)


def test_a_slow_encoder_on_one_batch_in_a_hundred(
    start_worker: Callable[..., Any],
    names: Names,
    kafka_bootstrap: str,
    redis_url: str,
    trained: dict[int, Path],  # noqa: F811
    tmp_path: Path,
) -> None:
    root = tmp_path / "artifacts"
    publish_copy(trained[0], root)
    start_worker(SLOW_ENCODER, RECSTREAM_ARTIFACTS=str(root))
    with SteadyLoad(kafka_bootstrap, names.events, rate=300) as load:
        time.sleep(30)
    outcome = check_every_event(
        load, kafka_bootstrap, redis_url, names.redis_prefix, names.recommendations, names.dlq
    )
    _report("slow encoder", outcome, [])
