"""Steady load with an id on every event, and the checks every fault test makes: every event
answered, each applied exactly once to its user's state, nothing dead-lettered; and how long
events sent just after each fault waited for their list."""

from __future__ import annotations

import json
import threading
import time
from dataclasses import dataclass, field
from typing import Any

from kafka import KafkaProducer

from tests.integration.conftest import read_topic, stored_value, sync_redis


class SteadyLoad:
    """Events at ``rate``/s from a thread (``users`` users in turn), each with an event id;
    records where each landed and when it was sent. Producer retries may land an event twice
    (the worker's event-id check makes that harmless)."""

    def __init__(self, bootstrap: str, topic: str, rate: float, users: int = 200) -> None:
        self.producer = KafkaProducer(
            bootstrap_servers=bootstrap.split(","), acks="all", linger_ms=5, retries=20
        )
        self.topic, self.rate, self.users = topic, rate, users
        self.sent: list[tuple[str, str, float, Any]] = []  # user, event id, sent at, future
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._run)

    def _run(self) -> None:
        start, n = time.monotonic(), 0
        while not self.stop.is_set():
            user, eid = f"fu{n % self.users}", f"e{n}"
            value = {"user_id": user, "item_id": f"g{n % 3}-{n % 11}", "type": "click"}
            payload = {**value, "ts": int(time.time() * 1000), "event_id": eid}
            future = self.producer.send(
                self.topic, key=user.encode(), value=json.dumps(payload).encode()
            )
            self.sent.append((user, eid, time.time(), future))
            n += 1
            time.sleep(max(0.0, start + n / self.rate - time.monotonic()))

    def __enter__(self) -> SteadyLoad:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop.set()
        self.thread.join()
        self.producer.flush(60)
        self.producer.close()


@dataclass
class Outcome:
    events: int
    waits_s: dict[tuple[int, int], float]  # (partition, offset) → list made − event sent
    sent_at: dict[tuple[int, int], float] = field(default_factory=dict)
    made_at: dict[tuple[int, int], float] = field(default_factory=dict)  # its list made

    def worst_wait_after(self, at: float, window_s: float = 5.0) -> float | None:
        """The longest wait of an event sent within ``window_s`` after ``at``."""
        waits = [
            w for where, w in self.waits_s.items() if at <= self.sent_at[where] < at + window_s
        ]
        return round(max(waits), 2) if waits else None


def check_every_event(
    load: SteadyLoad, bootstrap: str, redis_url: str, prefix: str, recs_topic: str, dlq: str
) -> Outcome:
    """Every record answered, every user's state counting exactly its distinct events, an
    empty dead-letter topic; the waits, for the report."""
    landed = {}
    for user, eid, at, future in load.sent:
        meta = future.get(30)
        landed[(meta.partition, meta.offset)] = (user, eid, at)
    answered: dict[tuple[int, int], float] = {}
    for rec in read_topic(bootstrap, recs_topic, len(landed), timeout_s=180):
        value = json.loads(rec.value)
        where = (value["source"]["partition"], value["source"]["offset"])
        answered.setdefault(where, value["created_ts"] / 1000)
    missing = set(landed) - set(answered)
    assert not missing, f"{len(missing)} of {len(landed)} events never answered"
    assert not read_topic(bootstrap, dlq, 1, timeout_s=3), "events were dead-lettered"
    r = sync_redis(redis_url)
    per_user: dict[str, set[str]] = {}
    for user, eid, _, _ in load.sent:
        per_user.setdefault(user, set()).add(eid)
    wrong = {
        user: (stored_value(r, prefix, user).state.events, len(eids))
        for user, eids in per_user.items()
        if stored_value(r, prefix, user).state.events != len(eids)
    }
    assert not wrong, f"states not counting each event once (state, sent): {wrong}"
    waits = {where: answered[where] - at for where, (_, _, at) in landed.items()}
    sent_at = {where: at for where, (_, _, at) in landed.items()}
    return Outcome(len(landed), waits, sent_at, answered)
