"""``recstream bench stream``: end-to-end throughput and latency of one worker process on the
real broker and Redis, beside the broker's own echo floor.

Two workloads: ``real`` replays users' own histories from a dataset (a preload of each user's
early history at full speed, reported as the catch-up rate, then the rest of their sequences
at paced rates); ``synthetic`` sends Zipf-like picks for many fresh users.

Load is open loop and latency runs from each event's scheduled send time to the moment the
matching recommendation (matched by the event's partition and offset) is read back, all on one
monotonic clock in one process; lists that never come back count as infinitely late. The echo
floor is the same measurement, after the same preload and warm-up, through a pass-through
consumer→producer process, so the ratio isolates what recstream adds.
"""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import orjson
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from aiokafka.partitioner import DefaultPartitioner

from recstream.stats import percentile, percentiles, rounded

GRACE_S = 3.0
# A backlog that grows by (rate - capacity) per second adds that much waiting to every later
# event: over a 10 s run, a 1% overload already moves the median by about 75 ms.
LAG_GROWTH_MS = 50.0
# The generator hands due events to its producer every 5 ms (Kafka 4's default linger.ms):
# a send per event cost it 63 µs of CPU each, taken from the worker under test; 28 µs now.
TICK_S = 0.005
WARMUP_S = 5.0  # seconds of discarded load at 1,000 events/s before the measured rates
WORKLOADS = ("real", "synthetic")

Position = tuple[int, int]  # (partition, offset) of an event; its list names it in ``source``
Pair = tuple[str, dict[str, Any]]  # (user id, event JSON without ``ts``)


@dataclass
class Run:
    """One fixed-rate run: each event's scheduled time by position, and when its list came
    back. Latency runs from the scheduled time, so a generator or a broker that falls behind
    shows in it (no coordinated omission); an event whose list never came is a miss and counts
    as infinitely late in every percentile."""

    rate: float
    scheduled: dict[Position, float] = field(default_factory=dict)
    arrived: dict[Position, float] = field(default_factory=dict)
    send_seconds: float = 0.0

    def latencies_ms(self) -> tuple[np.ndarray, np.ndarray]:
        """Every sent event's scheduled time and latency (inf: no list), in schedule order."""
        keys = sorted(self.scheduled, key=self.scheduled.__getitem__)
        at = np.array([self.scheduled[k] for k in keys])
        back = np.array([self.arrived.get(k, np.inf) for k in keys])
        return at, (back - at) * 1000

    def summary(self) -> dict[str, Any]:
        _, lat = self.latencies_ms()
        received = int(np.isfinite(lat).sum())
        out: dict[str, Any] = {
            "sent": len(lat),
            "received": received,
            "missing": len(lat) - received,
            "delivered_fraction": round(received / max(len(lat), 1), 4),
            "achieved_send_rate": round(len(lat) / max(self.send_seconds, 1e-9), 1),
        }
        if received:
            out.update(percentiles(lat, (50, 99, 99.9)))
            out["max_received"] = round(float(lat[np.isfinite(lat)].max()), 3)
            first, last = self.quarter_medians()
            out["p50_first_quarter"], out["p50_last_quarter"] = rounded(first), rounded(last)
        return out

    def quarter_medians(self) -> tuple[float, float]:
        """Median latency of the events scheduled in the run's first and in its last quarter
        (misses count as infinitely late)."""
        at, lat = self.latencies_ms()
        lo, hi = np.quantile(at, [0.25, 0.75])
        return percentile(lat[at <= lo], 50), percentile(lat[at >= hi], 50)

    def sustained(self) -> bool:
        """Consumer lag did not grow: the last quarter's events waited at most
        ``LAG_GROWTH_MS`` longer (median) than the first quarter's; everything was delivered
        within the grace period with p99 under a second; and the generator kept up."""
        s = self.summary()
        first, last = s.get("p50_first_quarter"), s.get("p50_last_quarter")
        return (
            s["delivered_fraction"] >= 0.999
            and (s.get("p99") or 1e9) < 1000.0
            and first is not None
            and last is not None
            and last - first <= LAG_GROWTH_MS
            and s["achieved_send_rate"] >= 0.95 * self.rate
        )


def synthetic_events(items: Sequence[str], n_users: int, seed: int) -> Iterator[Pair]:
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


@dataclass(frozen=True)
class Load:
    """What one benchmark run sends: a preload sent at full speed (the catch-up), then an
    open-loop paced stream."""

    preload: list[Pair]
    paced: Iterator[Pair]


def real_load(
    histories: dict[str, list[tuple[str, str]]], n_users: int, preload: int, seed: int
) -> Load:
    """Users replay their own sequences, oldest first: the first ``preload`` interactions of
    each (users interleaved round-robin) at full speed, then the rest in a random interleaving
    that keeps every user's order. ``histories``: user → [(item, type)] in time order; only
    users with more than ``preload`` interactions take part."""
    rng = np.random.default_rng(seed)
    eligible = sorted(u for u, h in histories.items() if len(h) > preload)
    if not eligible:
        raise ValueError(f"no user has more than {preload} interactions to replay")
    chosen = [eligible[i] for i in rng.permutation(len(eligible))[:n_users]]
    first = [_pair(u, *histories[u][step]) for step in range(preload) for u in chosen]
    rest = np.repeat(np.arange(len(chosen)), [len(histories[u]) - preload for u in chosen])
    rng.shuffle(rest)
    return Load(first, _replay(chosen, histories, preload, rest))


def _replay(
    users: list[str], histories: dict[str, list[tuple[str, str]]], start: int, order: np.ndarray
) -> Iterator[Pair]:
    cursor = [start] * len(users)
    for u in order.tolist():
        user = users[u]
        yield _pair(user, *histories[user][cursor[u]])
        cursor[u] += 1


def _pair(user: str, item: str, kind: str) -> Pair:
    return user, {"user_id": user, "item_id": item, "type": kind}


def _next(events: Iterator[Pair]) -> Pair:
    try:
        return next(events)
    except StopIteration:
        raise RuntimeError(
            "bench: the workload ran out of events; use fewer rates or seconds, or more users"
        ) from None


async def paced_send(
    producer: AIOKafkaProducer,
    topic: str,
    events: Iterator[Pair],
    rate: float,
    seconds: float,
    run: Run,
) -> None:
    """Open-loop load: event i is due at t0 + i / rate, whatever the system does.

    Events due within a tick go to the producer together, one record batch per partition;
    latency counts from each event's scheduled time, not from the hand-off.
    """
    partitions = sorted(await producer.partitions_for(topic))
    t0 = time.monotonic()
    total = int(rate * seconds)
    done = 0
    pending: list[tuple[Any, list[float]]] = []
    while done < total:
        due = min(total, int((time.monotonic() - t0) * rate) + 1)
        if due <= done:
            await asyncio.sleep(max(TICK_S, t0 + done / rate - time.monotonic()))
            continue
        pairs = [_next(events) for _ in range(due - done)]
        times = [t0 + i / rate for i in range(done, due)]
        pending += await _send_now(producer, topic, partitions, pairs, times)
        done = due
        if len(pending) >= 256:
            await _record(pending, run)
    await _record(pending, run)
    run.send_seconds = time.monotonic() - t0


async def _send_now(
    producer: AIOKafkaProducer,
    topic: str,
    partitions: list[int],
    pairs: Sequence[Pair],
    times: Sequence[float],
) -> list[tuple[Any, list[float]]]:
    """Hand ``pairs`` to the producer in record batches per partition (the partition Kafka's
    default partitioner gives the user key, as any client would); per batch, its delivery
    future and its events' scheduled times."""
    pick = DefaultPartitioner()
    now_ms = int(time.time() * 1000)
    open_: dict[int, tuple[Any, list[float]]] = {}
    full: list[tuple[int, Any, list[float]]] = []
    for (user, payload), at in zip(pairs, times, strict=True):
        key = user.encode()
        value = orjson.dumps({**payload, "ts": now_ms})
        partition = pick(key, partitions, partitions)
        if partition in open_:
            batch, ats = open_[partition]
            if batch.append(key=key, value=value, timestamp=None) is not None:
                ats.append(at)
                continue
            full.append((partition, batch, ats))  # full: send it, start another
        batch = producer.create_batch()
        if batch.append(key=key, value=value, timestamp=None) is None:
            raise RuntimeError("bench: an event is larger than a record batch")
        open_[partition] = (batch, [at])
    full += [(p, b, ats) for p, (b, ats) in open_.items()]
    out = []
    for partition, batch, ats in full:
        batch.close()
        out.append((await producer.send_batch(batch, topic, partition=partition), ats))
    return out


async def _record(pending: list[tuple[Any, list[float]]], run: Run) -> None:
    for future, times in pending:
        meta = await future  # the batch's first offset; its records follow in order
        for j, at in enumerate(times):
            run.scheduled[(meta.partition, meta.offset + j)] = at
    pending.clear()


async def collect(consumer: AIOKafkaConsumer, run: Run, stop: asyncio.Event) -> None:
    while not stop.is_set():
        batches = await consumer.getmany(timeout_ms=50, max_records=2000)
        now = time.monotonic()
        for records in batches.values():
            for rec in records:
                src = orjson.loads(rec.value)["source"]
                run.arrived.setdefault((src["partition"], src["offset"]), now)


async def _session(bootstrap: str, out_topic: str) -> tuple[AIOKafkaProducer, AIOKafkaConsumer]:
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, linger_ms=1, acks=1)
    consumer = AIOKafkaConsumer(
        out_topic, bootstrap_servers=bootstrap, auto_offset_reset="latest", enable_auto_commit=False
    )
    await producer.start()
    await consumer.start()
    await consumer.getmany(timeout_ms=500)  # join before the first send
    return producer, consumer


async def _wait_for(run: Run, grace_s: float) -> None:
    deadline = time.monotonic() + grace_s
    while len(run.arrived.keys() & run.scheduled.keys()) < len(run.scheduled):
        if time.monotonic() > deadline:
            return
        await asyncio.sleep(0.05)


async def measure(
    bootstrap: str,
    events_topic: str,
    out_topic: str,
    events: Iterator[Pair],
    rate: float,
    seconds: float,
) -> Run:
    run = Run(rate)
    producer, consumer = await _session(bootstrap, out_topic)
    try:
        stop = asyncio.Event()
        reader = asyncio.create_task(collect(consumer, run, stop))
        await paced_send(producer, events_topic, events, rate, seconds, run)
        await _wait_for(run, GRACE_S)
        stop.set()
        await reader
    finally:
        await consumer.stop()
        await producer.stop()
    return run


async def catch_up(bootstrap: str, events_topic: str, out_topic: str, pairs: list[Pair]) -> dict:
    """Send ``pairs`` as fast as the producer takes them and time how long the lists of all
    of them take to come back: the rate at which the process under test drains a backlog."""
    if not pairs:
        return {"events": 0, "received": 0, "events_per_s": None}
    run = Run(float("inf"))
    producer, consumer = await _session(bootstrap, out_topic)
    try:
        stop = asyncio.Event()
        reader = asyncio.create_task(collect(consumer, run, stop))
        partitions = sorted(await producer.partitions_for(events_topic))
        t0 = time.monotonic()
        for start in range(0, len(pairs), 2000):
            chunk = pairs[start : start + 2000]
            times = [time.monotonic()] * len(chunk)
            await _record(await _send_now(producer, events_topic, partitions, chunk, times), run)
        sent_s = time.monotonic() - t0
        await _wait_for(run, max(60.0, len(pairs) / 200))
        stop.set()
        await reader
    finally:
        await consumer.stop()
        await producer.stop()
    got = [run.arrived[k] for k in run.scheduled if k in run.arrived]
    seconds = (max(got) - t0) if got else float("nan")
    return {
        "events": len(pairs),
        "received": len(got),
        "send_seconds": round(sent_s, 3),
        "seconds": round(seconds, 3),
        "events_per_s": round(len(got) / seconds, 1) if got else 0.0,
    }


async def wait_ready(
    bootstrap: str,
    events_topic: str,
    out_topic: str,
    events: Iterator[Pair],
    proc: subprocess.Popen[bytes],
) -> None:
    """Send a trickle until the first list comes back (worker joined and warmed up)."""
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"the process under test exited ({proc.returncode}); see its log")
        run = await measure(bootstrap, events_topic, out_topic, events, 20, 1.0)
        if run.arrived:
            return
    raise RuntimeError("the worker produced no recommendation within 120 s")


def status_mb(pid: int, field: str) -> float:
    """A memory field of ``/proc/<pid>/status`` (``VmRSS``, ``VmHWM`` …), in MiB."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(f"{field}:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def peak_rss_mb(pid: int) -> float:
    """The process's high-water resident memory (VmHWM), in MiB."""
    return status_mb(pid, "VmHWM")


def worker_command(
    plan: BenchPlan, topics: dict[str, str], tag: str, kind: str
) -> tuple[list[str], dict[str, str]]:
    """``recstream worker`` on ``topics`` (events, recs, dlq), its group and Redis prefix
    named ``<kind>-<tag>`` / ``<kind>:<tag>``: argv and environment (no web port yet)."""
    env = {
        "RECSTREAM_KAFKA_BOOTSTRAP": plan.bootstrap,
        "RECSTREAM_REDIS_URL": plan.redis_url,
        "RECSTREAM_TOPIC_EVENTS": topics["events"],
        "RECSTREAM_TOPIC_RECOMMENDATIONS": topics["recs"],
        "RECSTREAM_TOPIC_DLQ": topics["dlq"],
        "RECSTREAM_APP_ID": f"{kind}-{tag}",
        "RECSTREAM_REDIS_PREFIX": f"{kind}:{tag}",
    }
    exe = str(Path(sys.executable).with_name("recstream"))
    return [exe, "worker", "--artifacts", str(plan.artifacts), "--loglevel", "warning"], env


def cpu_seconds(pid: int) -> float:
    """User + system CPU time the process has used so far (``/proc/<pid>/stat``)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


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
    load: Callable[[], Load]  # a fresh, identical load for each process under test
    workload: str = "synthetic"
    fixed_rates: Sequence[float] = (100.0, 1000.0)
    ramp_rates: Sequence[float] = (2000.0, 3000.0, 4000.0, 5000.0, 6000.0)
    seconds: float = 10.0
    repeat: int = 1
    workers: int = 1  # workers in one consumer group
    log_dir: Path = Path("/tmp")


def run_bench(plan: BenchPlan) -> dict[str, Any]:
    """``plan.repeat`` independent runs (fresh topics, Redis prefix, worker and echo each);
    the top-level figures are the runs' medians, ``spread`` their min and max."""
    runs = [run_once(plan) for _ in range(plan.repeat)]
    result: dict[str, Any] = {
        "workload": plan.workload,
        "repeat": plan.repeat,
        "workers": plan.workers,
    }
    figures = {
        "events_per_s": ("events_per_s",),
        "catch_up_events_per_s": ("catch_up", "events_per_s"),
        "echo_p99_ms": ("echo_floor_ms", "p99"),
        "p99_ratio_to_echo": ("p99_ratio_to_echo",),
        "peak_rss_mb": ("peak_rss_mb",),
    }
    for rate in runs[0]["latency_ms"]:
        for q in ("p50", "p99", "p999"):
            figures[f"{q}_ms@{rate}"] = ("latency_ms", rate, q)
    spread = {name: _values(runs, path) for name, path in figures.items()}
    result["spread"] = {
        name: {"min": min(v), "median": _median(v), "max": max(v)} if v else None
        for name, v in spread.items()
    }
    first = runs[0]
    result["events_per_s"] = _median(spread["events_per_s"])
    result["p99_ratio_to_echo"] = _median(spread["p99_ratio_to_echo"])
    result["peak_rss_mb"] = _median(spread["peak_rss_mb"])
    result["catch_up"] = {"events_per_s": _median(spread["catch_up_events_per_s"])}
    result["echo_floor_ms"] = {
        q: _median(_values(runs, ("echo_floor_ms", q))) for q in ("p50", "p99")
    } | {"rate": first["echo_floor_ms"]["rate"]}
    result["latency_ms"] = {
        rate: {q: _median(_values(runs, ("latency_ms", rate, q))) for q in ("p50", "p99", "p999")}
        for rate in first["latency_ms"]
    }
    result["runs"] = runs
    return result


def _values(runs: list[dict[str, Any]], path: Sequence[str]) -> list[float]:
    """The figure at ``path`` in each run that has one (a missed percentile has none)."""
    out = []
    for run in runs:
        node: Any = run
        for key in path:
            node = node.get(key) if isinstance(node, dict) else None
        if isinstance(node, int | float):
            out.append(float(node))
    return out


def _median(values: list[float]) -> float | None:
    return round(float(np.median(values)), 3) if values else None


def run_once(plan: BenchPlan) -> dict[str, Any]:
    """One run: the echo floor, then the worker, each given the same preload (catch-up) and
    warm-up before their measured rates."""
    from recstream.streams.connection import KafkaConnection
    from recstream.streams.topics import TopicSpec, ensure_topics

    tag = uuid.uuid4().hex[:8]
    topics = {n: f"bench-{n}-{tag}" for n in ("events", "recs", "dlq", "echo-in", "echo-out")}
    partitions = max(4, plan.workers)
    specs = [TopicSpec(t, partitions) for t in topics.values()]
    ensure_topics(KafkaConnection(plan.bootstrap), specs)
    floor = _echo_floor(plan, topics, tag)
    result = _worker_run(plan, topics, tag)
    result["echo_floor_ms"] = floor
    best = result["events_per_s"]
    result["latency_ms"] = {
        r: {q: v.get(q) for q in ("p50", "p99", "p999")} for r, v in result["rates"].items()
    }
    top = result["rates"].get(str(int(best)), {})
    p99_1000 = result["rates"].get("1000", {}).get("p99")
    echo_p99 = floor.get("p99")
    result["p99_ratio_to_echo"] = round(p99_1000 / echo_p99, 2) if p99_1000 and echo_p99 else None
    result["highest_sustained"] = {"rate": best, **{q: top.get(q) for q in ("p50", "p99", "p999")}}
    return result


def _echo_floor(plan: BenchPlan, topics: dict[str, str], tag: str) -> dict[str, Any]:
    """The same preload, warm-up and 1,000 events/s through a process that only echoes."""
    echo_args = [sys.executable, "-m", "recstream.streams.echo", plan.bootstrap]
    echo = spawn(
        [*echo_args, topics["echo-in"], topics["echo-out"]],
        {},
        plan.log_dir / f"bench-echo-{tag}.log",
    )
    try:
        load = plan.load()
        echo_in = (topics["echo-in"], topics["echo-out"])
        catch = prepare(plan, *echo_in, load, echo)
        floor = asyncio.run(measure(plan.bootstrap, *echo_in, load.paced, 1000, plan.seconds))
    finally:
        stop(echo)
    summary = floor.summary()
    return {
        "p50": summary.get("p50"),
        "p99": summary.get("p99"),
        "rate": 1000,
        "catch_up_events_per_s": catch["events_per_s"],
    }


def _worker_run(plan: BenchPlan, topics: dict[str, str], tag: str) -> dict[str, Any]:
    """The workers (one group): catch-up, warm-up, then the paced rates until one is not
    sustained."""
    args, env = worker_command(plan, topics, tag, "bench")
    workers = [
        spawn(
            args,
            {**env, "RECSTREAM_WEB_PORT": str(free_port()), "RECSTREAM_WORKER_ID": f"w{n}"},
            plan.log_dir / f"bench-worker-{tag}-{n}.log",
        )
        for n in range(plan.workers)
    ]
    result: dict[str, Any] = {"rates": {}, "workers": plan.workers}
    try:
        load = plan.load()
        wait_group(plan.bootstrap, f"bench-{tag}", plan.workers, workers)
        result["catch_up"] = prepare(plan, topics["events"], topics["recs"], load, workers)
        result["warmup"] = {"rate": 1000, "seconds": min(WARMUP_S, plan.seconds)}
        best = _rates(plan, topics["events"], topics["recs"], load, result["rates"])
        result["peak_rss_mb"] = round(max(peak_rss_mb(w.pid) for w in workers), 1)
    finally:
        for worker in workers:
            stop(worker)
    result["events_per_s"] = best
    return result


def wait_group(
    bootstrap: str, group: str, members: int, procs: list[subprocess.Popen[bytes]]
) -> None:
    """Until the consumer group has ``members`` members, each with partitions: measuring
    while workers still join would time a rebalance."""
    from kafka import KafkaAdminClient

    admin = KafkaAdminClient(bootstrap_servers=bootstrap.split(","))
    try:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            if any(p.poll() is not None for p in procs):
                raise RuntimeError("a worker under test exited; see its log")
            described = admin.describe_groups([group]).get(group, {})
            joined = [m for m in described.get("members", []) if _assigned(m)]
            if described.get("group_state") == "Stable" and len(joined) == members:
                return
            time.sleep(0.5)
    finally:
        admin.close()
    raise RuntimeError(f"{members} workers did not share the partitions within 120 s")


def prepare(
    plan: BenchPlan,
    topic: str,
    out: str,
    load: Load,
    procs: subprocess.Popen[bytes] | list[subprocess.Popen[bytes]],
) -> dict[str, Any]:
    """Wait until ``proc`` answers, send the preload at full speed (the catch-up figure), then
    a discarded warm-up at 1,000 events/s: a process that has just started (JIT, first users
    in Redis, allocator) otherwise inflates the first measured rate's tail."""
    procs = procs if isinstance(procs, list) else [procs]
    asyncio.run(wait_ready(plan.bootstrap, topic, out, load.paced, procs[0]))
    before = sum(cpu_seconds(p.pid) for p in procs)
    catch = asyncio.run(catch_up(plan.bootstrap, topic, out, load.preload))
    if catch["received"]:
        # CPU per event travels between machines better than a rate on shared cores does
        # (all the processes under test together).
        used = sum(cpu_seconds(p.pid) for p in procs) - before
        catch["cpu_us_per_event"] = round(used / catch["received"] * 1e6, 1)
    warm = min(WARMUP_S, plan.seconds)
    asyncio.run(measure(plan.bootstrap, topic, out, load.paced, 1000, warm))
    return catch


def _rates(plan: BenchPlan, topic: str, out: str, load: Load, into: dict[str, Any]) -> float:
    """Each fixed rate, then the ramp until a rate is not sustained; the highest sustained."""
    best = 0.0
    for rate in sorted({*plan.fixed_rates, *plan.ramp_rates}):
        run = asyncio.run(measure(plan.bootstrap, topic, out, load.paced, rate, plan.seconds))
        into[str(int(rate))] = {**run.summary(), "sustained": run.sustained()}
        if run.sustained():
            best = rate
        elif rate > max(plan.fixed_rates):
            break  # past saturation: higher rates only pile up lag
    return best


def _assigned(member: dict[str, Any]) -> bool:
    """Whether a described group member holds any partition."""
    assignment = member.get("member_assignment") or {}
    return any(t.get("partitions") for t in assignment.get("assigned_partitions", []))


def free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])
