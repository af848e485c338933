"""The closed loop: warm-up browsing, then rounds of organic event → the worker's list → the
user's reaction, measured beside a counterfactual popularity baseline.

The loop reaches the system only through a :class:`~recstream.sim.bus.Bus` (Kafka in
production). Between rounds it calls an injected ``between_rounds`` — the seam where the CLI
retrains a model — and, when that names a model version, waits until the worker serves it.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from recstream.sim.bus import Bus, Position
from recstream.sim.metrics import METRICS, Popularity, Tally, mean_of
from recstream.sim.world import Action, World

BetweenRounds = Callable[[int], str | None]
"""Called with 0 after the warm-up and with the round's number after every round but the last.
It may retrain and return the model version the next round must be served by: the loop then
probes until the worker's lists carry that version. None: go on at once."""

SUMMARY_KEYS = (*METRICS, "ctr@k")


class SimulationError(RuntimeError):
    pass


@dataclass(frozen=True)
class LoopConfig:
    rounds: int = 5
    warmup_events: int = 30  # organic events per user before round 1
    k: int = 10  # length of the baseline's lists (the worker's top-k)
    timeout_s: float = 60.0  # longest wait for one list
    version_timeout_s: float = 600.0  # longest wait for the worker to serve a new version
    catalogue_settle_s: float = 2.0  # the worker reloads its catalogue every second
    run_tag: str = "sim"  # in every user and event id, so reruns never collide in Redis


class Simulation:
    def __init__(
        self,
        world: World,
        bus: Bus,
        config: LoopConfig,
        between_rounds: BetweenRounds | None = None,
        log: Callable[[str], None] = lambda line: None,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.world = world
        self.bus = bus
        self.config = config
        self.between_rounds = between_rounds
        self.log = log
        self.sleep = sleep
        self.popularity = Popularity(len(world.catalogue))
        prefix = f"{world.scenario.prefix}-{config.run_tag}"
        self.user_ids = [f"{prefix}-u{n:05d}" for n in range(world.n_users)]
        self.probe_user = f"{prefix}-probe"
        self._events_sent = 0
        self._swaps: list[dict[str, Any]] = []

    def run(self) -> dict[str, Any]:
        """Publish the catalogue, warm up, play the rounds; the ``simulate --json`` object."""
        cfg, world = self.config, self.world
        self.bus.publish_items(world.catalogue.records())
        self.sleep(cfg.catalogue_settle_s)
        self._warm_up()
        self._between(0)
        rounds = []
        for r in range(1, cfg.rounds + 1):
            if r > 1:
                world.next_round()
            rounds.append(self._round(r))
            if r < cfg.rounds:
                self._between(r)
        return {
            "scenario": world.scenario.name,
            "seed": world.seed,
            "rounds": rounds,
            "baseline": mean_of([r["baseline"] for r in rounds], SUMMARY_KEYS),
            "mean": mean_of(rounds, SUMMARY_KEYS),
            "users": world.n_users,
            "catalogue_size": len(world.catalogue),
            "warmup_events": cfg.warmup_events,  # per user
            "run_tag": cfg.run_tag,
            "retrains": self._swaps,
        }

    def _event(self, user: str, item: int, kind: str, round_no: int, **extra: str) -> dict:
        self._events_sent += 1
        return {
            "user_id": user,
            "item_id": self.world.catalogue.ids[item],
            "type": kind,
            "event_id": f"{self.config.run_tag}-e{self._events_sent}",
            "context": {"scenario": self.world.scenario.name, "round": round_no},
            **extra,
        }

    def _act(self, action: Action, round_no: int, **extra: str) -> dict:
        """Apply an action to the world and the popularity counts; the event that reports it."""
        self.world.record(action.user, action.item, action.kind)
        self.popularity.add(action.item)
        return self._event(self.user_ids[action.user], action.item, action.kind, round_no, **extra)

    def _warm_up(self) -> None:
        """Organic sessions, users interleaved; returns once the worker has answered the last
        event of every partition (so it has seen them all)."""
        world, steps = self.world, self.config.warmup_events
        events = [
            self._act(world.organic_step(u), 0) for _ in range(steps) for u in range(world.n_users)
        ]
        if not events:
            return
        positions = self.bus.publish_events(events)
        last: dict[int, tuple[Position, str]] = {}
        for (part, offset), event in zip(positions, events, strict=True):
            if part not in last or offset > last[part][0][1]:
                last[part] = ((part, offset), event["user_id"])
        self.log(f"warm-up: {len(events)} organic events published; waiting for the worker")
        self.bus.collect(dict(last.values()), self.config.timeout_s)

    def _round(self, r: int) -> dict[str, Any]:
        world, started = self.world, time.monotonic()
        ranking = self.popularity.ranking()  # the baseline's view: popularity before the round
        events = [self._act(world.organic_step(u), r) for u in range(world.n_users)]
        positions = self.bus.publish_events(events)
        wanted = {pos: ev["user_id"] for pos, ev in zip(positions, events, strict=True)}
        lists = self.bus.collect(wanted, self.config.timeout_s)
        shown, base = Tally(len(world.catalogue)), Tally(len(world.catalogue))
        reactions: list[dict] = []
        for u, position in enumerate(positions):  # user order, not arrival order: reproducible
            counterfactual = Popularity.top(ranking, world.seen[u], self.config.k)
            reaction = world.respond(u, counterfactual, world.baseline_rng)
            base.add(counterfactual, self._categories(counterfactual), reaction)
            reactions += self._show(u, lists[position], shown, r)
        self.bus.publish_events(reactions)
        summary = shown.summary()
        out = {"round": r, "model_version": summary.pop("model_version", None), **summary}
        out.update(baseline=base.summary(), seconds=round(time.monotonic() - started, 3))
        self.log(
            f"round {r}: {shown.lists} lists from {out['model_version']}, "
            f"ctr {out['ctr']:.3f} (baseline {out['baseline']['ctr']:.3f})"
        )
        return out

    def _show(self, u: int, rec: dict[str, Any], tally: Tally, r: int) -> list[dict]:
        """User ``u`` reacts to the worker's list ``rec``; tallied, and the events to report."""
        items = self._rows(rec.get("items") or [])
        reaction = self.world.respond(u, items, self.world.response_rng)
        tally.add(items, self._categories(items), reaction, str(rec.get("model_version")))
        if reaction.position is None:
            return []
        item, rec_id = int(items[reaction.position]), str(rec["rec_id"])
        kinds = ("click", "purchase") if reaction.bought else ("click",)
        return [self._act(Action(u, item, kind), r, rec_id=rec_id) for kind in kinds]

    def _rows(self, items: list[Any]) -> np.ndarray:
        """Catalogue rows of a list's items; -1 for an item the simulated catalogue lacks."""
        row = self.world.catalogue.row
        ids = [i.get("item_id") if isinstance(i, dict) else None for i in items]
        return np.array([row.get(i, -1) if isinstance(i, str) else -1 for i in ids], np.int64)

    def _categories(self, rows: np.ndarray) -> np.ndarray:
        return np.where(rows >= 0, self.world.catalogue.category[rows], -1)

    def _between(self, round_no: int) -> None:
        if self.between_rounds is None:
            return
        started = time.monotonic()
        version = self.between_rounds(round_no)
        if version is not None:
            made = time.monotonic()
            self._await_version(version)
            served = time.monotonic()
            # From the start of the retrain to the worker's first list by the new version.
            self._swaps.append(
                {
                    "after_round": round_no,
                    "version": version,
                    "retrain_s": round(made - started, 2),
                    "to_serving_s": round(served - made, 2),
                    "total_s": round(served - started, 2),
                }
            )

    def _await_version(self, version: str) -> None:
        """Probe with ``skip`` events (weight 0: no trending, no history) from a user of its
        own until the worker's answer carries ``version``."""
        deadline = time.monotonic() + self.config.version_timeout_s
        while True:
            probe = self._event(self.probe_user, 0, "skip", -1)  # round -1: not a round
            (position,) = self.bus.publish_events([probe])
            rec = self.bus.collect({position: self.probe_user}, self.config.timeout_s)[position]
            served = rec.get("model_version")
            if served == version:
                self.log(f"the worker serves model version {version}")
                return
            if time.monotonic() > deadline:
                raise SimulationError(
                    f"the worker still serves model version {served!r}, not {version!r}, "
                    f"{self.config.version_timeout_s:g} s after it was made — does it "
                    "hot-swap on model-updates?"
                )
            self.sleep(0.2)
