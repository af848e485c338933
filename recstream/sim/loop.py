"""The closed loop: warm-up browsing, then rounds of organic event → the worker's list → the
user's reaction, measured beside counterfactual arms shown to the same users at the same moment.

The loop reaches the system only through a :class:`~recstream.sim.bus.Bus` (Kafka in
production). Between rounds it calls an injected ``between_rounds`` — the seam where the CLI
retrains a model — and, when that names a model version, waits until the worker serves it.

Arms (:mod:`recstream.sim.arms`): ``model_retrain`` is the worker's served list, the only one
whose reaction is recorded and published; ``model_frozen`` (the version served in round 1, run
in-process; only with a ``load_frozen``), ``item_knn``, ``category_trending``, ``popularity``
and ``oracle`` are counterfactual. Every arm's list for a user in a round is judged with the
same draws (common random numbers), so arm differences are paired (:mod:`recstream.sim.paired`).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from recstream.contract import DEFAULT_EVENT_WEIGHTS
from recstream.sim.arms import SERVED, Counterfactuals, FrozenModel, Scoreboard, rows_of
from recstream.sim.bus import Bus, Position
from recstream.sim.metrics import SUMMARY_KEYS, mean_of
from recstream.sim.world import Action, Reaction, World

BetweenRounds = Callable[[int], str | None]
"""Called with 0 after the warm-up and with the round's number after every round but the last.
It may retrain and return the model version the next round must be served by: the loop then
probes until the worker's lists carry that version. None: go on at once."""

LoadFrozen = Callable[[str], FrozenModel]
"""Called once with the version the first ``between_rounds`` (after the warm-up) returned: the
model to keep frozen for the ``model_frozen`` arm."""


class SimulationError(RuntimeError):
    pass


@dataclass(frozen=True)
class LoopConfig:
    rounds: int = 5
    warmup_events: int = 30  # organic events per user before round 1
    k: int = 10  # length of every arm's lists (the worker's top-k)
    timeout_s: float = 60.0  # longest wait for one list
    version_timeout_s: float = 600.0  # longest wait for the worker to serve a new version
    catalogue_settle_s: float = 2.0  # the worker reloads its catalogue every second
    run_tag: str = "sim"  # in every user and event id, so reruns never collide in Redis
    # The worker's event weights (RECSTREAM_EVENT_WEIGHTS): category_trending and the states
    # the frozen model reads are folded with them.
    weights: Mapping[str, float] = field(default_factory=lambda: dict(DEFAULT_EVENT_WEIGHTS))
    per_user: bool = False  # put every user's clicks and purchases per arm in the result


class Simulation:
    def __init__(
        self,
        world: World,
        bus: Bus,
        config: LoopConfig,
        between_rounds: BetweenRounds | None = None,
        log: Callable[[str], None] = lambda line: None,
        sleep: Callable[[float], None] = time.sleep,
        load_frozen: LoadFrozen | None = None,
    ) -> None:
        self.world = world
        self.bus = bus
        self.config = config
        self.between_rounds = between_rounds
        self.log = log
        self.sleep = sleep
        self.load_frozen = load_frozen
        prefix = f"{world.scenario.prefix}-{config.run_tag}"
        self.user_ids = [f"{prefix}-u{n:05d}" for n in range(world.n_users)]
        self.probe_user = f"{prefix}-probe"
        keep_states = load_frozen is not None
        self.arms = Counterfactuals(world, self.user_ids, config.weights, keep_states)
        self.scoreboard = Scoreboard(world.catalogue)
        self.frozen_absent = "no model to freeze: simulate ran without --retrain or --follow"
        self._events_sent = 0
        self._swaps: list[dict[str, Any]] = []
        # Per A/B arm of the worker (its lists' variant): the round lists and what the users
        # did with them — the ground truth `recstream ab report` must agree with.
        self._variants: dict[str, dict[str, int]] = {}

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
        result = {
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
            "k": cfg.k,
            "arms": self.scoreboard.arms(absent=self.frozen_absent),
            "paired_reference": SERVED,
            "paired": self.scoreboard.paired(),
        }
        if self._variants:
            result["variants"] = self._variants
        if cfg.per_user:
            per_user = self.scoreboard.per_user()
            result["per_user"] = {arm: outcomes.to_json() for arm, outcomes in per_user.items()}
        return result

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
        """Apply an action to the world and to every arm's view of the log; the event that
        reports it."""
        user, item, kind = action.user, action.item, action.kind
        self.world.record(user, item, kind)
        self.arms.observe(user, item, kind)
        return self._event(self.user_ids[user], item, kind, round_no, **extra)

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
        started = time.monotonic()
        self.arms.refresh()
        recs = self._serve(r)
        served = [self._rows(rec.get("items") or []) for rec in recs]
        # Every arm's lists from the state the worker saw, judged with one set of draws.
        lists = {SERVED: served, **self.arms.lists(self.config.k)}
        versions = [str(rec.get("model_version")) for rec in recs]
        summaries, reactions = self._judge(lists, versions)
        # Only the served list's reactions happen: recorded in the world and published.
        report = [
            event
            for u, (rec, reaction) in enumerate(zip(recs, reactions, strict=True))
            for event in self._report(u, served[u], rec, reaction, r)
        ]
        self.bus.publish_events(report)
        self._tally_variants(recs, reactions)
        summary = summaries[SERVED]
        out = {"round": r, "model_version": summary.get("model_version"), **summary}
        out.update(baseline=summaries["popularity"], seconds=round(time.monotonic() - started, 3))
        ctrs = ", ".join(f"{arm} {s['ctr']:.3f}" for arm, s in summaries.items() if arm != SERVED)
        self.log(
            f"round {r}: {len(recs)} lists from {out['model_version']}, ctr {out['ctr']:.3f} "
            f"({ctrs})"
        )
        return out

    def _serve(self, r: int) -> list[dict[str, Any]]:
        """Every user's organic event of round ``r``; the worker's lists, in user order (not
        arrival order: reproducible)."""
        world = self.world
        events = [self._act(world.organic_step(u), r) for u in range(world.n_users)]
        positions = self.bus.publish_events(events)
        wanted = {pos: ev["user_id"] for pos, ev in zip(positions, events, strict=True)}
        answers = self.bus.collect(wanted, self.config.timeout_s)
        recs = [answers[p] for p in positions]
        longest = max((len(rec.get("items") or []) for rec in recs), default=0)
        if longest > self.config.k:
            raise SimulationError(
                f"the worker's lists have up to {longest} items, the simulator's {self.config.k}: "
                "run both with the same RECSTREAM_TOP_K"
            )
        return recs

    def _tally_variants(self, recs: list[dict[str, Any]], reactions: list[Reaction]) -> None:
        for rec, reaction in zip(recs, reactions, strict=True):
            if rec.get("variant") is None:
                continue
            tally = self._variants.setdefault(
                str(rec["variant"]), {"lists": 0, "clicks": 0, "purchases": 0}
            )
            tally["lists"] += 1
            tally["clicks"] += reaction.position is not None
            tally["purchases"] += bool(reaction.position is not None and reaction.bought)

    def _judge(
        self, lists: dict[str, list[np.ndarray]], versions: list[str]
    ) -> tuple[dict[str, dict[str, Any]], list[Reaction]]:
        """Every arm's lists judged with the round's draws (common random numbers): each
        arm's summary, and the reactions to the served lists."""
        world, served = self.world, lists[SERVED]
        draws = world.reaction_draws(self.config.k)
        judged = {
            arm: [world.respond(u, items, draws[u]) for u, items in enumerate(rows)]
            for arm, rows in lists.items()
        }
        summaries = {
            arm: self.scoreboard.add(
                arm, rows, judged[arm], served, versions if arm == SERVED else None
            )
            for arm, rows in lists.items()
        }
        return summaries, judged[SERVED]

    def _report(
        self, u: int, items: np.ndarray, rec: dict[str, Any], reaction: Reaction, r: int
    ) -> list[dict]:
        """Record user ``u``'s reaction to the worker's list ``rec``; the events to publish."""
        if reaction.position is None:
            return []
        item, rec_id = int(items[reaction.position]), str(rec["rec_id"])
        kinds = ("click", "purchase") if reaction.bought else ("click",)
        return [self._act(Action(u, item, kind), r, rec_id=rec_id) for kind in kinds]

    def _rows(self, items: list[Any]) -> np.ndarray:
        """Catalogue rows of a list's items; -1 for an item the simulated catalogue lacks."""
        ids = [i.get("item_id") if isinstance(i, dict) else None for i in items]
        return rows_of(self.world.catalogue, ids)

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
        if round_no == 0:  # once the worker serves it: a version it accepted
            self._freeze(version)

    def _freeze(self, version: str | None) -> None:
        """Keep the version that will serve round 1 for the model_frozen arm."""
        if self.load_frozen is None:
            return
        if version is None:
            self.frozen_absent = "no model version was made after the warm-up"
            return
        self.arms.frozen = self.load_frozen(version)
        self.log(f"model_frozen: {self.arms.frozen.version}, run in-process in every round")

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
