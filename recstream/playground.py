"""``recstream playground``: the whole loop on one machine in one command, for a first look.

With Kafka and Redis up (``scripts/run --playground`` starts them), it starts a worker (a child
process, serving trending lists until a model exists), a simulated shop whose users browse,
get the worker's lists and click or buy (``sim/live.py``), a trainer that trains the first
model from the shop's event log in the background and retrains it on a schedule (each version
is published and hot-swapped like any other), and the dashboard. Everything lives under its
own names (topics, Redis prefix, consumer group, artifact root), so it never mixes with a
real deployment on the same broker and Redis.
"""

from __future__ import annotations

import os
import secrets
import subprocess
import sys
import threading
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from recstream.settings import Settings

RETRY_S = 10.0  # a training that found too few events tries again this soon
TOPICS = ("events", "recommendations", "dlq", "items", "model_updates", "metrics")


@dataclass(frozen=True)
class PlaygroundConfig:
    name: str  # prefix of every topic, the Redis prefix and the consumer group
    artifacts: Path
    scenario: str = "ecommerce"
    seed: int = 0
    users: int = 300
    warmup_events: int = 10  # per user, before the first round
    round_every_s: float = 2.0
    first_epochs: int = 20
    retrain_epochs: int = 5
    retrain_every_s: float = 180.0
    metrics_interval_s: float = 2.0


def own_names(config: PlaygroundConfig) -> dict[str, Any]:
    """The settings the playground sets for itself: its topics, Redis prefix, consumer group,
    artifact root and snapshot interval."""
    topics = {f"topic_{t}": f"{config.name}-{t.replace('_', '-')}" for t in TOPICS}
    return {
        **topics,
        "redis_prefix": config.name,
        "app_id": config.name,
        "artifacts": config.artifacts,
        "metrics_interval_s": config.metrics_interval_s,
    }


def namespaced(s: Settings, config: PlaygroundConfig) -> Settings:
    return s.model_copy(update=own_names(config))


def environment(config: PlaygroundConfig) -> dict[str, str]:
    """The same as ``RECSTREAM_*`` variables (for the worker child process and for the
    user's other commands)."""
    return {f"RECSTREAM_{name.upper()}": str(v) for name, v in own_names(config).items()}


class Playground:
    def __init__(self, s: Settings, config: PlaygroundConfig, log: Callable[[str], None]) -> None:
        self.s = namespaced(s, config)
        self.config = config
        self.log = log
        self.stop = threading.Event()
        self.worker: subprocess.Popen[bytes] | None = None
        self.worker_log = config.artifacts / "worker.log"
        self.threads: list[threading.Thread] = []
        self.live: Any = None
        self.versions: list[str] = []
        self.errors: list[str] = []
        # New user and event ids on every run: a rerun on the same topics and Redis must
        # not look like a replay of the last one.
        self.run_tag = secrets.token_hex(3)

    def start(self) -> None:
        worker_log = self.worker_log
        self.config.artifacts.mkdir(parents=True, exist_ok=True)
        env = os.environ | environment(self.config)
        command = [sys.executable, "-m", "recstream", "worker", "--loglevel", "warning"]
        with worker_log.open("ab") as out:
            self.worker = subprocess.Popen(command, env=env, stdout=out, stderr=out)
        self.log(f"playground: worker started (pid {self.worker.pid}, log {worker_log})")
        for target in (self._traffic, self._trainer, self._watch_worker):
            thread = threading.Thread(target=self._guard(target), daemon=True)
            thread.start()
            self.threads.append(thread)

    def close(self) -> None:
        self.stop.set()
        for thread in self.threads:
            thread.join(timeout=30)
        if self.worker is not None and self.worker.poll() is None:
            self.worker.terminate()
            try:
                self.worker.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.worker.kill()

    def _guard(self, target: Callable[[], None]) -> Callable[[], None]:
        def run() -> None:
            try:
                target()
            except Exception as exc:
                self.errors.append(f"{target.__name__}: {exc}")
                self.log(f"playground: {target.__name__[1:]} stopped: {exc!r}")

        return run

    def _watch_worker(self) -> None:
        """Say so at once when the worker dies (a port in use, a broken Redis): the lists stop."""
        assert self.worker is not None
        code = self.worker.wait()
        if not self.stop.is_set():
            tail = self.worker_log.read_text(errors="replace").splitlines()[-15:]
            raise RuntimeError(
                f"the worker exited with status {code}; the end of {self.worker_log}:\n"
                + "\n".join(tail)
            )

    def _traffic(self) -> None:
        from recstream.serving import kafka_connection
        from recstream.sim.bus import KafkaBus, SimTopics
        from recstream.sim.live import LiveWorld
        from recstream.sim.loop import LoopConfig
        from recstream.sim.scenarios import SCENARIOS
        from recstream.sim.world import World

        s, c = self.s, self.config
        world = World(SCENARIOS[c.scenario], c.seed, c.users)
        topics = SimTopics(s.topic_events, s.topic_recommendations, s.topic_items)
        bus = KafkaBus(kafka_connection(s), topics, s.partitions, s.replication_factor)
        loop = LoopConfig(
            warmup_events=c.warmup_events,
            k=s.top_k,
            timeout_s=120.0,
            run_tag=self.run_tag,
            weights=dict(s.event_weights),
        )
        self.live = LiveWorld(world, bus, loop, self.log, c.round_every_s)
        try:
            self.live.run_until(self.stop)
        finally:
            bus.close()

    def _trainer(self) -> None:
        """The first model once the warm-up is in the log, then a retrain every interval."""
        from recstream.model.config import TrainConfig
        from recstream.retrain import RetrainError, retrain_once

        while self.live is None or not self.live.warmed_up.is_set():
            if self.stop.wait(0.5):
                return
        c = self.config
        while not self.stop.is_set():
            self.log("playground: training on the event log …")
            try:
                # Each retrain warm-starts on the events since the last version's offsets: the
                # playground's log grows by ~150 events a second.
                result = retrain_once(
                    self.s,
                    c.artifacts,
                    since_last=True,
                    train_config=TrainConfig(epochs=c.retrain_epochs, seed=c.seed),
                    cold_epochs=c.first_epochs,
                )
            except RetrainError as exc:  # too few events yet: try again soon
                self.log(f"playground: not trained yet: {exc}")
                self.stop.wait(RETRY_S)
                continue
            self.versions.append(result.version)
            self.log(f"playground: published and announced {result.version}")
            self.stop.wait(c.retrain_every_s)
