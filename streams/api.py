"""The worker's HTTP API on its web port (docs/contract.md, "HTTP API"; the OpenAPI description
is ``openapi.py``, served at ``/openapi.json``). Each handler checks its input
(``api_params.py``), asks the pipeline, the store or the recommender, and answers JSON."""

from __future__ import annotations

import asyncio
import functools
import time
from collections.abc import Awaitable, Callable
from typing import Any

import faust
import orjson
from faust.web import Request, View
from faust.web import Response as WebResponse

from recstream.streams.api_params import (
    BadRequest,
    event_values,
    list_query,
    no_query,
    popular_query,
    similar_query,
    well_formed,
)
from recstream.streams.batches import RawMessage, Rejected, split_batch
from recstream.streams.decoding import Limits
from recstream.streams.keys import Keys
from recstream.streams.openapi import SPEC
from recstream.streams.pipeline import Pipeline
from recstream.streams.store import RedisClient, transient
from recstream.streams.uservalue import UserValue, latest_record, unpack

HTTP_SOURCE = "http"  # the source topic named in dead letters of POST /events
ERRORS_LISTED = 100  # rejected events described in one answer
CHECK_TIMEOUT_S = 2.0

Handler = Callable[..., Awaitable[WebResponse]]


def now_ms() -> int:
    return int(time.time() * 1000)


def _json(web: View, body: Any, status: int = 200) -> WebResponse:
    return web.bytes(orjson.dumps(body), content_type="application/json", status=status)


def _checked(handler: Handler) -> Handler:
    """Bad input answers 400 (or 413) with the reason; Redis or Kafka away answers 503."""

    @functools.wraps(handler)  # faust names each view after its function
    async def run(web: View, request: Request, **kwargs: Any) -> WebResponse:
        try:
            return await handler(web, request, **kwargs)
        except BadRequest as exc:
            return _json(web, {"error": str(exc)}, exc.status)
        except Exception as exc:
            if not transient(exc):
                raise
            return _json(web, {"error": f"Redis or Kafka unavailable: {exc!r}"}, 503)

    return run


class Api:
    """The handlers, around the worker's pipeline (lists, state, trending), its Redis, and two
    callbacks into the app: send events to Kafka, send dead letters to the DLQ."""

    def __init__(
        self,
        pipeline: Pipeline,
        redis: RedisClient,
        keys: Keys,
        limits: Limits,
        send_events: Callable[[list[tuple[bytes, bytes]]], Awaitable[None]],
        dead_letters: Callable[[list[Rejected]], Awaitable[Any]],
        kafka_ready: Callable[[], Awaitable[bool]],
    ) -> None:
        self.pipeline, self.redis, self.keys, self.limits = pipeline, redis, keys, limits
        self.send_events, self.dead_letters, self.kafka_ready = (
            send_events,
            dead_letters,
            kafka_ready,
        )

    async def value(self, user: str) -> UserValue:
        return unpack(await self.redis.get(self.keys.user(user)))

    def because(self, user: str, value: UserValue) -> list[list[str]] | None:
        """The reasons of the newest list, worked out again by the model that made it (the
        value keeps the state the list was made from); None when another model serves now."""
        model = self.pipeline.model_for(user)
        if (
            not self.pipeline.config.explain
            or not value.served
            or value.served[-1].version != model.version
        ):
            return None
        (because,) = model.explain([value.state.sequence], [value.served[-1].items])
        return because if any(because) else None

    async def recommendations(self, user: str, query: dict[str, str]) -> dict[str, Any]:
        well_formed(user, "user id")
        ask, fresh = list_query(query, self.pipeline.config.k)
        value = await self.value(user)
        record = latest_record(user, value, self.because(user, value))
        if record is not None and not fresh and ask.category is None and not ask.exclude:
            stored = orjson.loads(record)
            # The stream's list, unless more items are asked for than it has.
            if "n" not in query or ask.n <= len(stored["items"]):
                stored["items"] = stored["items"][: ask.n]
                return {**stored, "origin": "stream"}
        items, because, origin = await self.pipeline.list_now(user, value.state, ask)
        return {
            "rec_id": None,
            "user_id": user,
            "items": [
                {"item_id": i, "score": s, "because": b}
                for (i, s), b in zip(items, because, strict=True)
            ],
            "model_version": self.pipeline.model_for(user).version,
            "source": None,
            "event_ts": None,
            "created_ts": now_ms(),
            "variant": self.pipeline.split.arm(user) if self.pipeline.split else None,
            "origin": origin,
        }

    async def user(self, user: str) -> dict[str, Any]:
        well_formed(user, "user id")
        value = await self.value(user)
        state = value.state
        latest = latest_record(user, value, self.because(user, value))
        return {
            "user_id": user,
            "events": state.events,
            "recent": list(state.sequence),
            "seen_count": len(state.seen),
            "bought": list(state.purchased),
            "categories": dict(state.categories),
            "served": [
                {
                    "rec_id": s.rec_id,
                    "created_ts": s.created_ts,
                    "model_version": s.version,
                    "items": s.items,
                    "hits": s.hits,
                }
                for s in value.served
            ],
            "latest": orjson.loads(latest) if latest is not None else None,
        }

    def similar(self, item: str, n: int) -> tuple[int, dict[str, Any]]:
        well_formed(item, "item id")
        model = self.pipeline.recommender
        if model.version == "none":
            return 503, {"error": "no model is served yet: similar items need one"}
        catalog = self.pipeline.catalog
        found = model.similar(item, n, tuple(catalog.unavailable))
        if found is None:
            return 404, {"error": f"item {item!r} is unknown to model {model.version}"}
        items = [{"item_id": i, "score": s} for i, s in found]
        return 200, {"item_id": item, "items": items, "model_version": model.version}

    async def popular(self, category: str | None, n: int) -> dict[str, Any]:
        items = await self.pipeline.trending_now(category, n)
        return {
            "category": category,
            "items": [{"item_id": i, "score": s} for i, s in items],
            "created_ts": now_ms(),
        }

    async def post_events(self, body: bytes, content_type: str) -> dict[str, Any]:
        """Validated as the stream validates: good events to Kafka (keyed by user, delivered
        before the answer), bad ones to the DLQ with the reason."""
        values = event_values(body, content_type)
        now = now_ms()
        messages = [RawMessage(HTTP_SOURCE, 0, n, now, None, v) for n, v in enumerate(values)]
        valid, rejected = split_batch(messages, now, self.limits)
        await self.send_events([(v.event.user_id.encode(), v.message.value or b"") for v in valid])
        if rejected:
            await self.dead_letters(rejected)
        errors = [{"index": r.letter.source.offset, "error": r.letter.error} for r in rejected]
        return {"accepted": len(valid), "rejected": len(rejected), "errors": errors[:ERRORS_LISTED]}

    async def ready(self) -> tuple[bool, dict[str, Any]]:
        checks: dict[str, Any] = {}
        try:
            await asyncio.wait_for(self.redis.ping(), CHECK_TIMEOUT_S)
            checks["redis"] = {"ok": True}
        except Exception as exc:
            checks["redis"] = {"ok": False, "error": repr(exc)}
        try:
            ok = await asyncio.wait_for(self.kafka_ready(), CHECK_TIMEOUT_S)
            checks["kafka"] = {"ok": ok} if ok else {"ok": False, "error": "events topic not seen"}
        except Exception as exc:
            checks["kafka"] = {"ok": False, "error": repr(exc)}
        version = self.pipeline.recommender.version
        model: dict[str, Any] = {"ok": True, "version": version}
        if version == "none":
            model["detail"] = "no model yet: every list is trending items"
        checks["model"] = model
        return checks["redis"]["ok"] and checks["kafka"]["ok"], checks


def add_api(app: faust.App, api: Api) -> None:
    """Every route of the API on the worker's web server (faust's aiohttp)."""

    @app.page("/users/{user_id}/recommendations")
    @_checked
    async def recommendations(web: View, request: Request, user_id: str) -> WebResponse:
        """A list for the user: the newest the stream made, or one made now."""
        return _json(web, await api.recommendations(user_id, dict(request.query)))

    @app.page("/users/{user_id}")
    @_checked
    async def user(web: View, request: Request, user_id: str) -> WebResponse:
        """What recstream holds for the user."""
        no_query(request.query)
        return _json(web, await api.user(user_id))

    @app.page("/items/{item_id}/similar")
    @_checked
    async def similar(web: View, request: Request, item_id: str) -> WebResponse:
        """The model's nearest items."""
        status, body = api.similar(item_id, similar_query(request.query, api.pipeline.config.k))
        return _json(web, body, status)

    @app.page("/popular")
    @_checked
    async def popular(web: View, request: Request) -> WebResponse:
        """Trending items, overall or in a category."""
        category, n = popular_query(request.query, api.pipeline.config.k)
        return _json(web, await api.popular(category, n))

    @app.page("/events")
    class Events(View):
        """Events for applications without a Kafka client."""

        async def post(self, request: Request) -> WebResponse:
            async def handle(web: View, request: Request) -> WebResponse:
                body = await request.read()
                content_type = request.headers.get("Content-Type", "")
                return _json(web, await api.post_events(body, content_type), 202)

            return await _checked(handle)(self, request)

    @app.page("/healthz")
    async def healthz(web: View, request: Request) -> WebResponse:
        """The process answers."""
        return _json(web, {"status": "ok"})

    @app.page("/readyz")
    async def readyz(web: View, request: Request) -> WebResponse:
        """Kafka and Redis reachable (503 otherwise); the model served."""
        ok, checks = await api.ready()
        return _json(web, {"ready": ok, "checks": checks}, 200 if ok else 503)

    @app.page("/openapi.json")
    async def openapi(web: View, request: Request) -> WebResponse:
        """This API's OpenAPI description."""
        return _json(web, SPEC)
