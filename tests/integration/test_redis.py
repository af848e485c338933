"""Redis round trips through recstream's client factory, with and without a password."""

from __future__ import annotations

import asyncio
import shutil
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis
from redis.exceptions import AuthenticationError, ResponseError

from recstream.streams.connection import redis_client
from tests.integration.conftest import free_port

pytestmark = pytest.mark.integration


def test_round_trip_on_the_test_server(redis_url: str) -> None:
    async def round_trip() -> bytes | None:
        client = redis_client(redis_url)
        try:
            await client.set("rstest:roundtrip", b"\x00\xffbytes", ex=60)
            return await client.get("rstest:roundtrip")
        finally:
            await client.aclose()

    assert asyncio.run(round_trip()) == b"\x00\xffbytes"


@pytest.fixture
def redis_with_password(tmp_path: Path) -> Iterator[str]:
    exe = shutil.which("redis-server")
    if exe is None:
        pytest.fail("redis-server is not installed; ./scripts/test installs it")
    port = free_port()
    proc = subprocess.Popen(
        [
            exe,
            "--port",
            str(port),
            "--bind",
            "127.0.0.1",
            "--requirepass",
            "s3cret",
            "--save",
            "",
            "--appendonly",
            "no",
            "--dir",
            str(tmp_path),
        ],
        stdout=subprocess.DEVNULL,
    )
    try:
        url = f"redis://127.0.0.1:{port}/0"
        for _ in range(100):
            try:
                redis.Redis.from_url(url, password="s3cret").ping()
                break
            except redis.ConnectionError:
                time.sleep(0.05)
        yield url
    finally:
        proc.terminate()
        proc.wait(10)


def test_password_from_settings_authenticates(redis_with_password: str) -> None:
    async def ping(password: str | None) -> bool:
        client = redis_client(redis_with_password, password)
        try:
            return bool(await client.ping())
        finally:
            await client.aclose()

    assert asyncio.run(ping("s3cret"))
    with pytest.raises((AuthenticationError, ResponseError)):
        asyncio.run(ping("wrong"))
    with pytest.raises((AuthenticationError, ResponseError)):
        asyncio.run(ping(None))
