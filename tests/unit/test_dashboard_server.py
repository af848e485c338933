"""The dashboard's routes without Kafka: the page and its files, parameter checks, the A/B panel
from the arms' counters (a fake Redis), the model timeline from an artifact root."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer

from recstream.dashboard.series import Timeline
from recstream.dashboard.server import (
    DashboardConfig,
    Handlers,
    add_routes,
    step_ms,
    vendor_missing,
)


class FakeRedis:
    def __init__(self, hashes: dict[str, dict[bytes, bytes]]) -> None:
        self.hashes = hashes

    async def hgetall(self, key: str) -> dict[bytes, bytes]:
        return self.hashes.get(key, {})


def app_of(timeline: Timeline, redis: Any, root: Path | None = None) -> web.Application:
    config = DashboardConfig("http://127.0.0.1:1", "m", "u", "pfx", 3_600_000, root)
    app = web.Application()
    add_routes(app, Handlers(config, timeline, redis))
    return app


def run(app: web.Application, check: Callable[[TestClient], Awaitable[None]]) -> None:
    async def main() -> None:
        async with TestClient(TestServer(app)) as client:
            await check(client)

    asyncio.run(main())


def test_page_files_and_bad_parameters() -> None:
    async def check(client: TestClient) -> None:
        page = await client.get("/")
        if vendor_missing():  # scripts/install fetches the chart library; say so, not a 404
            assert page.status == 500 and "scripts/install" in await page.text()
        else:
            assert page.status == 200 and "uPlot.iife.min.js" in await page.text()
        assert (await client.get("/static/dashboard.js")).status == 200
        assert (await client.get("/static/secrets.txt")).status == 404
        bad = await client.get("/api/series?minutes=abc")
        assert bad.status == 400 and "minutes" in (await bad.json())["error"]
        empty = await (await client.get("/api/series")).json()
        assert empty["t"] == [] and empty["workers"] == {}
        assert (await client.get("/api/users/%20")).status == 400

    run(app_of(Timeline(60_000), FakeRedis({})), check)


def test_ab_panel_reports_the_split_the_workers_run() -> None:
    timeline = Timeline(10**12)
    counters = {
        b"users": b"40",
        b"lists": b"400",
        b"hit:click": b"40",
        b"hit:purchase": b"8",
    }
    redis = FakeRedis({"pfx:{pfx}:metrics:v1": counters, "pfx:{pfx}:metrics:v2": counters})

    async def check(client: TestClient) -> None:
        assert await (await client.get("/api/ab")).json() == {"split": None}
        timeline.add({"worker": "w", "ts": 10**12, "versions": {}, "ab": "v1:50,v2:50"})
        got = await (await client.get("/api/ab")).json()
        assert got["split"] == "v1:50,v2:50"
        assert got["arms"]["v2"]["ctr"]["value"] == 0.1
        assert got["versus"]["arms"]["v2"]["ctr"]["diff"] == 0.0
        assert got["sample_ratio"]["mismatch"] is False

    run(app_of(timeline, redis), check)


def test_model_timeline_lists_trained_versions_of_the_artifact_root(tmp_path: Path) -> None:
    version = tmp_path / "v1"
    version.mkdir()
    manifest = {"created": "2026-12-04T10:00:00+00:00", "files": {}}
    (version / "manifest.json").write_text(json.dumps(manifest))
    (version / "metrics.json").write_text(json.dumps({"valid": {"valid_hr@10": 0.3}}))
    (tmp_path / "v2").mkdir()  # being written: no manifest yet, left out
    (tmp_path / "v3").mkdir()
    (tmp_path / "v3" / "manifest.json").write_text("{}")  # damaged: left out

    async def check(client: TestClient) -> None:
        events = (await (await client.get("/api/models")).json())["events"]
        assert events == [
            {"kind": "trained", "version": "v1", "ts": 1796378400000,
             "valid": {"valid_hr@10": 0.3}}
        ]  # fmt: skip

    run(app_of(Timeline(60_000), FakeRedis({}), tmp_path), check)


def test_longer_views_take_longer_steps() -> None:
    assert [step_ms(m) for m in (5, 15, 30, 60, 360, 1440)] == [
        5_000, 5_000, 5_000, 10_000, 60_000, 240_000
    ]  # fmt: skip
