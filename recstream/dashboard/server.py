"""``recstream dashboard``: a web page of what the workers are doing, live.

It reads the ``metrics`` topic (every worker's snapshots) and ``model-updates`` from outside
any consumer group, keeps the last ``history`` of snapshots in memory (``series.Timeline``)
and turns them into chart data on request. A user lookup asks a worker's HTTP API (any
worker answers for any user) and adds item titles from the catalogue in Redis; the A/B panel
reads the arms' counters from Redis as ``recstream ab report`` does. The page itself is static
HTML and JavaScript with uPlot, installed from the npm registry by ``scripts/install`` —
nothing is fetched from a CDN.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from importlib import resources
from pathlib import Path
from typing import Any
from urllib.parse import quote

import aiohttp
import orjson
from aiohttp import web
from aiokafka import AIOKafkaConsumer, TopicPartition

from recstream.artifacts import METRICS, ArtifactError, list_versions, read_manifest
from recstream.dashboard.series import (
    Timeline,
    latency_histogram,
    model_timeline,
    series,
    workers,
)
from recstream.streams.ab import parse_split, report
from recstream.streams.api_params import BadRequest, bounded_int, well_formed
from recstream.streams.connection import KafkaConnection, groupless_consumer
from recstream.streams.keys import Keys
from recstream.streams.snapshots import version_counters
from recstream.streams.store import RedisClient, transient

log = logging.getLogger("recstream.dashboard")

STATIC = resources.files("recstream.dashboard") / "static"
# The chart library's files, copied from the npm package by scripts/install.
VENDOR = ("uPlot.iife.min.js", "uPlot.min.css")
PAGES = {"dashboard.js": "text/javascript", "dashboard.css": "text/css"}
HISTOGRAM_WINDOW_MS = 5 * 60_000  # the latency histogram adds up the last five minutes
MAX_MINUTES = 24 * 60
POINTS = 360  # about how many steps a chart shows
WORKER_TIMEOUT_S = 5.0
READERS = web.AppKey("readers", list)  # the tasks following the two topics


@dataclass(frozen=True)
class DashboardConfig:
    worker_url: str  # a worker's web server, for the user lookup
    topic_metrics: str
    topic_model_updates: str
    redis_prefix: str
    history_ms: int
    artifacts_root: Path | None = None  # to list trained versions, when this host sees it


def vendor_missing() -> list[str]:
    return [name for name in VENDOR if not (STATIC / "vendor" / name).is_file()]


def create_dashboard(
    config: DashboardConfig, kafka: KafkaConnection, redis: RedisClient
) -> web.Application:
    timeline = Timeline(config.history_ms)
    app = web.Application()
    handlers = Handlers(config, timeline, redis)
    add_routes(app, handlers)

    async def start(app: web.Application) -> None:
        handlers.session = aiohttp.ClientSession(
            timeout=aiohttp.ClientTimeout(total=WORKER_TIMEOUT_S)
        )
        since = lambda: int(time.time() * 1000) - config.history_ms  # noqa: E731
        app[READERS] = [
            asyncio.create_task(
                read_topic(
                    kafka, config.topic_metrics, since, timeline.add, timeline.forget_snapshots
                )
            ),
            asyncio.create_task(
                read_topic(
                    kafka,
                    config.topic_model_updates,
                    None,
                    timeline.announce,
                    timeline.forget_announcements,
                )
            ),
        ]

    async def stop(app: web.Application) -> None:
        for task in app[READERS]:
            task.cancel()
        for task in app[READERS]:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        if handlers.session is not None:
            await handlers.session.close()
        await redis.aclose()

    app.on_startup.append(start)
    app.on_cleanup.append(stop)
    return app


def add_routes(app: web.Application, handlers: Handlers) -> None:
    app.router.add_get("/", handlers.index)
    app.router.add_get("/static/{name}", handlers.static)
    app.router.add_get("/static/vendor/{name}", handlers.vendor)
    app.router.add_get("/api/series", handlers.series)
    app.router.add_get("/api/models", handlers.models)
    app.router.add_get("/api/ab", handlers.ab)
    app.router.add_get("/api/users/{user_id}", handlers.user)
    app.router.add_get("/healthz", handlers.health)


async def read_topic(
    kafka: KafkaConnection,
    topic: str,
    since: Callable[[], int] | None,
    handle: Callable[[Any, int], Any],
    restart: Callable[[], None] = lambda: None,
) -> None:
    """Every record of ``topic`` from ``since()`` (ms; None: the beginning), then new ones,
    forever; reconnects after an error and starts again (``restart`` forgets what was read)."""
    while True:
        consumer = groupless_consumer(kafka, topic)
        try:
            await consumer.start()
            while not consumer.assignment():
                await asyncio.sleep(0.5)
            restart()
            await _seek(consumer, sorted(consumer.assignment()), since() if since else None)
            while True:
                batches = await consumer.getmany(timeout_ms=1000)
                for record in (r for records in batches.values() for r in records):
                    handle(_json(record.value), record.timestamp)
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            log.warning("reading %s failed (%r); again in 2 s", topic, exc)
            await asyncio.sleep(2.0)
        finally:
            await consumer.stop()


async def _seek(consumer: AIOKafkaConsumer, parts: list[TopicPartition], ms: int | None) -> None:
    if ms is None:
        await consumer.seek_to_beginning(*parts)
        return
    offsets = await consumer.offsets_for_times({p: ms for p in parts})
    for part in parts:
        found = offsets.get(part)
        if found is None:
            await consumer.seek_to_end(part)
        else:
            consumer.seek(part, found.offset)


def _json(raw: bytes | str | None) -> Any:
    try:
        return orjson.loads(raw or b"")
    except orjson.JSONDecodeError:
        return None


class Handlers:
    def __init__(self, config: DashboardConfig, timeline: Timeline, redis: RedisClient) -> None:
        self.config, self.timeline, self.redis = config, timeline, redis
        self.keys = Keys(config.redis_prefix)
        self.session: aiohttp.ClientSession | None = None

    async def index(self, request: web.Request) -> web.StreamResponse:
        missing = vendor_missing()
        if missing:
            return web.Response(
                status=500,
                text=f"The dashboard's chart library is missing ({', '.join(missing)} under "
                f"{STATIC / 'vendor'}): run scripts/install, which installs it from npm.",
            )
        return web.Response(body=(STATIC / "index.html").read_bytes(), content_type="text/html")

    async def static(self, request: web.Request) -> web.StreamResponse:
        name = request.match_info["name"]
        if name not in PAGES:
            raise web.HTTPNotFound()
        return web.Response(body=(STATIC / name).read_bytes(), content_type=PAGES[name])

    async def vendor(self, request: web.Request) -> web.StreamResponse:
        name = request.match_info["name"]
        path = STATIC / "vendor" / name
        if name not in VENDOR or not path.is_file():
            raise web.HTTPNotFound()
        kind = "text/javascript" if name.endswith(".js") else "text/css"
        return web.Response(body=path.read_bytes(), content_type=kind)

    async def health(self, request: web.Request) -> web.StreamResponse:
        return _json_response({"status": "ok", "snapshots": len(self.timeline.snapshots)})

    async def series(self, request: web.Request) -> web.StreamResponse:
        try:
            minutes = bounded_int(request.query.get("minutes", "15"), "minutes", 1, MAX_MINUTES)
        except BadRequest as exc:
            return _json_response({"error": str(exc)}, exc.status)
        now = _now_ms()
        self.timeline.prune(now)
        body = series(self.timeline, now, step_ms(minutes), since_ms=now - minutes * 60_000)
        body["histogram"] = latency_histogram(self.timeline, now - HISTOGRAM_WINDOW_MS)
        body["histogram"]["window_s"] = HISTOGRAM_WINDOW_MS / 1000
        body["workers"] = workers(self.timeline)
        body["ignored"] = self.timeline.ignored
        body["now"] = now / 1000
        return _json_response(body)

    async def models(self, request: web.Request) -> web.StreamResponse:
        trained = _trained(self.config.artifacts_root) if self.config.artifacts_root else []
        return _json_response({"events": model_timeline(self.timeline, trained)})

    async def ab(self, request: web.Request) -> web.StreamResponse:
        specs = {w["ab"] for w in workers(self.timeline).values() if w.get("ab")}
        if not specs:
            return _json_response({"split": None})
        split = parse_split(sorted(specs)[-1])
        assert split is not None  # a worker sent it: it parsed there
        try:
            counters = await version_counters(self.redis, self.keys, split.names)
        except Exception as exc:
            if not transient(exc):
                raise
            return _json_response({"error": f"Redis: {exc!r}"}, 503)
        return _json_response(report(split, counters) | {"splits_seen": sorted(specs)})

    async def user(self, request: web.Request) -> web.StreamResponse:
        """The user's state and list from a worker, with the titles of every item named."""
        try:
            user_id = well_formed(request.match_info["user_id"], "user id")
        except BadRequest as exc:
            return _json_response({"error": str(exc)}, exc.status)
        path = f"/users/{quote(user_id, safe='')}"
        try:
            state, recs = await asyncio.gather(
                self._worker(path), self._worker(path + "/recommendations")
            )
        except (aiohttp.ClientError, TimeoutError) as exc:
            reason = f"the worker at {self.config.worker_url} did not answer: {exc!r}"
            return _json_response({"error": reason}, 502)
        for status, body in (state, recs):
            if status != 200:
                return _json_response({"error": f"worker answered {status}: {body}"}, 502)
        user, latest = state[1], recs[1]
        try:
            items = await self._catalogue(_item_ids(user, latest))
        except Exception as exc:
            if not transient(exc):
                raise
            items = {}  # titles are a nicety: the lookup answers without them
        return _json_response({"user": user, "recommendations": latest, "items": items})

    async def _worker(self, path: str) -> tuple[int, Any]:
        assert self.session is not None
        async with self.session.get(self.config.worker_url.rstrip("/") + path) as answer:
            text = await answer.text()
            try:
                return answer.status, json.loads(text)
            except ValueError:
                return answer.status, text[:300]

    async def _catalogue(self, ids: list[str]) -> dict[str, Any]:
        if not ids:
            return {}
        found = await self.redis.hmget(self.keys.catalog(), ids)
        out = {}
        for item, raw in zip(ids, found, strict=True):
            entry = _json(raw) if raw else None
            if isinstance(entry, dict):
                out[item] = {"title": entry.get("title"), "category": entry.get("category")}
        return out


def _item_ids(user: dict[str, Any], latest: dict[str, Any]) -> list[str]:
    ids = [*user.get("recent", []), *user.get("bought", [])]
    for entry in latest.get("items", []):
        ids += [entry.get("item_id"), *entry.get("because", [])]
    return sorted({i for i in ids if isinstance(i, str)})


def _trained(root: Path) -> list[dict[str, Any]]:
    """Versions in the artifact root with their creation time and validation figures."""
    out = []
    for directory in list_versions(root):
        try:
            created = read_manifest(directory).get("created")
            ts = int(datetime.fromisoformat(str(created)).timestamp() * 1000)
        except (OSError, ValueError, ArtifactError):
            continue  # being written, or damaged: the workers will refuse it, not the page
        row: dict[str, Any] = {"version": directory.name, "ts": ts}
        try:
            valid = json.loads((directory / METRICS).read_text()).get("valid", {})
            row["valid"] = {k: v for k, v in valid.items() if isinstance(v, int | float)}
        except (OSError, ValueError, AttributeError):
            pass
        out.append(row)
    return out


def step_ms(minutes: int) -> int:
    """5 s steps up to half an hour shown; beyond, steps of whole 5 s keeping the charts at
    about 360 points (a 6-hour view: 1-minute steps, its windows six and twelve minutes)."""
    return max(1, round(minutes * 60 / POINTS / 5)) * 5_000


def _now_ms() -> int:
    return int(time.time() * 1000)


def _json_response(body: Any, status: int = 200) -> web.Response:
    return web.Response(body=orjson.dumps(body), status=status, content_type="application/json")
