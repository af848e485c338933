"""The simulated world as live traffic, for the playground: the same users, catalogue and
reactions as ``recstream simulate``, round after round until stopped, without the
counterfactual arms (nothing is being measured, the dashboard shows what happens)."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

from recstream.sim.bus import Bus
from recstream.sim.loop import LoopConfig, Simulation
from recstream.sim.world import World


class LiveWorld(Simulation):
    def __init__(
        self,
        world: World,
        bus: Bus,
        config: LoopConfig,
        log: Callable[[str], None],
        round_every_s: float,
    ) -> None:
        super().__init__(world, bus, config, log=log)
        self.round_every_s = round_every_s
        self.rounds = 0
        self.warmed_up = threading.Event()

    def run_until(self, stop: threading.Event) -> None:
        """Catalogue, warm-up, then a round every ``round_every_s`` until ``stop`` is set."""
        self.bus.publish_items(self.world.catalogue.records())
        self.sleep(self.config.catalogue_settle_s)
        self._warm_up()
        self.warmed_up.set()
        while not stop.is_set():
            started = time.monotonic()
            self.rounds += 1
            clicks, lists, version = self._live_round(self.rounds)
            if self.rounds == 1 or self.rounds % 10 == 0:
                self.log(f"round {self.rounds}: {lists} lists from {version}, {clicks} clicked")
            self.world.next_round()
            stop.wait(max(0.0, self.round_every_s - (time.monotonic() - started)))

    def _live_round(self, r: int) -> tuple[int, int, str]:
        """Every user's organic event, the worker's lists, the reactions to them published."""
        recs = self._serve(r)
        draws = self.world.reaction_draws(self.config.k)
        events: list[dict] = []
        clicks = 0
        for u, rec in enumerate(recs):
            items = self._rows(rec.get("items") or [])
            reaction = self.world.respond(u, items, draws[u])
            clicks += reaction.position is not None
            events += self._report(u, items, rec, reaction, r)
        self.bus.publish_events(events)
        versions = sorted({str(rec.get("model_version")) for rec in recs})
        return clicks, len(recs), ", ".join(versions)
