"""``recstream bench stream``: end-to-end throughput and latency of one worker process on the
real broker and Redis, beside the broker's own echo floor.

Latency is measured from the moment the load generator hands an event to its producer to the
moment the matching recommendation (matched by the event's partition and offset) is read back,
all on one monotonic clock in one process. The echo floor is the same measurement through a
pass-through consumer→producer process, so the ratio isolates what recstream adds.
"""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import time
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import orjson
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from aiokafka.partitioner import DefaultPartitioner

GRACE_S = 3.0
# A backlog that grows by (rate - capacity) per second adds that much waiting to every later
# event: over a 10 s run, a 1% overload already moves the median by about 75 ms.
LAG_GROWTH_MS = 50.0
# The generator hands due events to its producer every 5 ms (Kafka 4's default linger.ms):
# a send per event cost it 63 µs of CPU each, taken from the worker under test; 28 µs now.
TICK_S = 0.005
WARMUP_S = 5.0  # seconds of discarded load at 1,000 events/s before the measured rates


@dataclass
class Run:
    """One fixed-rate run: send times by (partition, offset); per received list, its event's
    send time and its latency in ms."""

    rate: float
    sent: dict[tuple[int, int], float] = field(default_factory=dict)
    latencies_ms: list[float] = field(default_factory=list)
    sent_at: list[float] = field(default_factory=list)  # parallel to latencies_ms
    send_seconds: float = 0.0

    def summary(self) -> dict[str, Any]:
        lat = np.asarray(self.latencies_ms)
        done = len(lat) / max(len(self.sent), 1)
        out: dict[str, Any] = {
            "sent": len(self.sent),
            "received": int(lat.size),
            "delivered_fraction": round(done, 4),
            "achieved_send_rate": round(len(self.sent) / max(self.send_seconds, 1e-9), 1),
        }
        if lat.size:
            for name, q in (("p50", 50), ("p99", 99), ("p999", 99.9)):
                out[name] = round(float(np.percentile(lat, q)), 3)
            first, last = self.quarter_medians()
            out["p50_first_quarter"], out["p50_last_quarter"] = round(first, 3), round(last, 3)
        return out

    def quarter_medians(self) -> tuple[float, float]:
        """Median latency of the events sent in the run's first and in its last quarter."""
        lat, at = np.asarray(self.latencies_ms), np.asarray(self.sent_at)
        lo, hi = np.quantile(at, [0.25, 0.75])
        return float(np.median(lat[at <= lo])), float(np.median(lat[at >= hi]))

    def sustained(self) -> bool:
        """Consumer lag did not grow: the last quarter's events waited at most
        ``LAG_GROWTH_MS`` longer (median) than the first quarter's; everything was delivered
        within the grace period with p99 under a second; and the generator kept up."""
        s = self.summary()
        return (
            s["delivered_fraction"] >= 0.999
            and s.get("p99", 1e9) < 1000.0
            and s["p50_last_quarter"] - s["p50_first_quarter"] <= LAG_GROWTH_MS
            and s["achieved_send_rate"] >= 0.95 * self.rate
        )


def synthetic_events(items: Sequence[str], n_users: int, seed: int) -> Any:
    """An endless stream of (user, event JSON); item popularity is Zipf-like, as in real logs."""
    rng = np.random.default_rng(seed)
    weights = 1.0 / np.arange(1, len(items) + 1) ** 0.8
    weights /= weights.sum()
    while True:
        users = rng.integers(0, n_users, 1024)
        picks = rng.choice(len(items), 1024, p=weights)
        kinds = rng.random(1024)
        for u, i, r in zip(users, picks, kinds, strict=True):
            kind = "purchase" if r < 0.05 else "click"
            user = f"bench-u{u}"
            yield user, {"user_id": user, "item_id": items[i], "type": kind}


async def paced_send(
    producer: AIOKafkaProducer, topic: str, events: Any, rate: float, seconds: float, run: Run
) -> None:
    """Open-loop load: event i is due at t0 + i / rate, whatever the system does.

    Events due within a tick are appended to one record batch per partition (the partition
    Kafka's default partitioner gives the user key, as any client would) and handed to the
    producer together; latency counts from that hand-off.
    """
    partitions = sorted(await producer.partitions_for(topic))
    pick = DefaultPartitioner()
    t0 = time.monotonic()
    total = int(rate * seconds)
    done = 0
    pending: list[tuple[Any, float, int]] = []
    while done < total:
        due = min(total, int((time.monotonic() - t0) * rate) + 1)
        if due <= done:
            await asyncio.sleep(max(TICK_S, t0 + done / rate - time.monotonic()))
            continue
        batches: dict[int, Any] = {}
        now_ms = int(time.time() * 1000)
        for _ in range(due - done):
            user, payload = next(events)
            payload["ts"] = now_ms
            key = user.encode()
            partition = pick(key, partitions, partitions)
            if partition not in batches:
                batches[partition] = producer.create_batch()
            value = orjson.dumps(payload)
            if batches[partition].append(key=key, value=value, timestamp=None) is None:
                raise RuntimeError("bench: one record batch overflowed; lower the rate")
        sent_at = time.monotonic()
        for partition, batch in batches.items():
            batch.close()
            future = await producer.send_batch(batch, topic, partition=partition)
            pending.append((future, sent_at, batch.record_count()))
        done = due
        if len(pending) >= 256:
            await _record(pending, run)
    await _record(pending, run)
    run.send_seconds = time.monotonic() - t0


async def _record(pending: list[tuple[Any, float, int]], run: Run) -> None:
    for future, sent_at, count in pending:
        meta = await future  # the batch's first offset; its records follow in order
        for j in range(count):
            run.sent[(meta.partition, meta.offset + j)] = sent_at
    pending.clear()


async def collect(consumer: AIOKafkaConsumer, run: Run, stop: asyncio.Event) -> None:
    early: dict[tuple[int, int], float] = {}
    while not stop.is_set():
        batches = await consumer.getmany(timeout_ms=50, max_records=2000)
        now = time.monotonic()
        for records in batches.values():
            for rec in records:
                src = orjson.loads(rec.value)["source"]
                early[(src["partition"], src["offset"])] = now
        # A list can arrive before the producer's ack told us the event's offset.
        for key in [k for k in early if k in run.sent]:
            run.sent_at.append(run.sent[key])
            run.latencies_ms.append((early.pop(key) - run.sent[key]) * 1000)


async def measure(
    bootstrap: str, events_topic: str, out_topic: str, events: Any, rate: float, seconds: float
) -> Run:
    run = Run(rate)
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, linger_ms=1, acks=1)
    consumer = AIOKafkaConsumer(
        out_topic, bootstrap_servers=bootstrap, auto_offset_reset="latest", enable_auto_commit=False
    )
    await producer.start()
    await consumer.start()
    try:
        await consumer.getmany(timeout_ms=500)  # join before the first send
        stop = asyncio.Event()
        reader = asyncio.create_task(collect(consumer, run, stop))
        await paced_send(producer, events_topic, events, rate, seconds, run)
        deadline = time.monotonic() + GRACE_S
        while len(run.latencies_ms) < len(run.sent) and time.monotonic() < deadline:
            await asyncio.sleep(0.05)
        stop.set()
        await reader
    finally:
        await consumer.stop()
        await producer.stop()
    return run


async def wait_ready(
    bootstrap: str, events_topic: str, out_topic: str, events: Any, proc: subprocess.Popen[bytes]
) -> None:
    """Send a trickle until the first list comes back (worker joined and warmed up)."""
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"the process under test exited ({proc.returncode}); see its log")
        run = await measure(bootstrap, events_topic, out_topic, events, 20, 1.0)
        if run.latencies_ms:
            return
    raise RuntimeError("the worker produced no recommendation within 120 s")


def peak_rss_mb(pid: int) -> float:
    """The process's high-water resident memory (VmHWM), in MiB."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def spawn(args: list[str], env: dict[str, str], log: Path) -> subprocess.Popen[bytes]:
    with log.open("wb") as fh:
        return subprocess.Popen(
            args, env={**os.environ, **env}, stdout=fh, stderr=subprocess.STDOUT
        )


def stop(proc: subprocess.Popen[bytes]) -> None:
    proc.terminate()
    try:
        proc.wait(30)
    except subprocess.TimeoutExpired:
        proc.kill()


@dataclass(frozen=True)
class BenchPlan:
    bootstrap: str
    redis_url: str
    artifacts: Path
    items: Sequence[str]
    fixed_rates: Sequence[float] = (100.0, 1000.0)
    ramp_rates: Sequence[float] = (2000.0, 3000.0, 4000.0, 5000.0, 6000.0)
    seconds: float = 10.0
    users: int = 10_000
    seed: int = 0
    log_dir: Path = Path("/tmp")


def run_bench(plan: BenchPlan) -> dict[str, Any]:
    from recstream.streams.connection import KafkaConnection
    from recstream.streams.topics import TopicSpec, ensure_topics

    tag = uuid.uuid4().hex[:8]
    topics = {n: f"bench-{n}-{tag}" for n in ("events", "recs", "dlq", "echo-in", "echo-out")}
    ensure_topics(KafkaConnection(plan.bootstrap), [TopicSpec(t, 4) for t in topics.values()])
    events = synthetic_events(plan.items, plan.users, plan.seed)
    exe = str(Path(sys.executable).with_name("recstream"))
    env = {
        "RECSTREAM_KAFKA_BOOTSTRAP": plan.bootstrap,
        "RECSTREAM_REDIS_URL": plan.redis_url,
        "RECSTREAM_TOPIC_EVENTS": topics["events"],
        "RECSTREAM_TOPIC_RECOMMENDATIONS": topics["recs"],
        "RECSTREAM_TOPIC_DLQ": topics["dlq"],
        "RECSTREAM_APP_ID": f"bench-{tag}",
        "RECSTREAM_REDIS_PREFIX": f"bench:{tag}",
        "RECSTREAM_WEB_PORT": str(_free_port()),
    }
    result: dict[str, Any] = {"rates": {}}
    echo = spawn(
        [
            sys.executable,
            "-m",
            "recstream.streams.echo",
            plan.bootstrap,
            topics["echo-in"],
            topics["echo-out"],
        ],
        {},
        plan.log_dir / f"bench-echo-{tag}.log",
    )
    try:
        asyncio.run(wait_ready(plan.bootstrap, topics["echo-in"], topics["echo-out"], events, echo))
        floor = asyncio.run(
            measure(
                plan.bootstrap, topics["echo-in"], topics["echo-out"], events, 1000, plan.seconds
            )
        ).summary()
    finally:
        stop(echo)
    result["echo_floor_ms"] = {"p50": floor.get("p50"), "p99": floor.get("p99"), "rate": 1000}
    worker = spawn(
        [exe, "worker", "--artifacts", str(plan.artifacts), "--loglevel", "warning"],
        env,
        plan.log_dir / f"bench-worker-{tag}.log",
    )
    try:
        asyncio.run(wait_ready(plan.bootstrap, topics["events"], topics["recs"], events, worker))
        # A discarded warm-up: a broker or worker that has just started (JIT, first users in
        # Redis, allocator) otherwise inflates the first measured rate's tail.
        warm = min(WARMUP_S, plan.seconds)
        asyncio.run(measure(plan.bootstrap, topics["events"], topics["recs"], events, 1000, warm))
        result["warmup"] = {"rate": 1000, "seconds": warm}
        best = 0.0
        for rate in sorted({*plan.fixed_rates, *plan.ramp_rates}):
            run = asyncio.run(
                measure(
                    plan.bootstrap, topics["events"], topics["recs"], events, rate, plan.seconds
                )
            )
            result["rates"][str(int(rate))] = {**run.summary(), "sustained": run.sustained()}
            if run.sustained():
                best = rate
            elif rate > max(plan.fixed_rates):
                break  # past saturation: higher rates only pile up lag
        result["peak_rss_mb"] = round(peak_rss_mb(worker.pid), 1)
    finally:
        stop(worker)
    result["events_per_s"] = best
    fixed = {r: result["rates"][r] for r in result["rates"]}
    result["latency_ms"] = {
        r: {q: v.get(q) for q in ("p50", "p99", "p999")} for r, v in fixed.items()
    }
    top = result["rates"].get(str(int(best)), {})
    p99_1000 = result["rates"].get("1000", {}).get("p99")
    result["p99_ratio_to_echo"] = (
        round(p99_1000 / floor["p99"], 2) if p99_1000 and floor.get("p99") else None
    )
    result["highest_sustained"] = {"rate": best, **{q: top.get(q) for q in ("p50", "p99", "p999")}}
    return result


def _free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])
