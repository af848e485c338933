"""Which failures the worker waits out instead of crashing on."""

from __future__ import annotations

import asyncio

import pytest
from redis.exceptions import ConnectionError as RedisConnectionError

from recstream.streams.store import retry, transient


def raised_in(filename: str, error: type[Exception]) -> Exception:
    """An exception whose traceback ends in code compiled as ``filename``."""
    code = compile(f"raise {error.__name__}('writer is None')", filename, "exec")
    try:
        exec(code)
    except error as exc:
        return exc
    raise AssertionError("not raised")


def test_redis_closed_writer_race_is_transient_other_bugs_are_not() -> None:
    site = "/venv/lib/python3.11/site-packages/redis/asyncio/connection.py"
    assert transient(RedisConnectionError("gone"))
    assert transient(raised_in(site, AttributeError))  # redis-py issue 4287
    assert transient(raised_in(site, TypeError))
    assert not transient(raised_in("/work/streams/pipeline.py", AttributeError))
    assert not transient(ValueError("bad"))


def test_retry_waits_out_the_race_and_lets_bugs_through() -> None:
    site = "/x/redis/asyncio/connection.py"
    calls: list[int] = []

    async def flaky() -> str:
        calls.append(1)
        if len(calls) < 3:
            raise raised_in(site, AttributeError)
        return "ok"

    assert asyncio.run(retry(flaky, "test", max_sleep_s=0.01)) == "ok"
    assert len(calls) == 3

    async def broken() -> None:
        raise KeyError("a bug")

    with pytest.raises(KeyError):
        asyncio.run(retry(broken, "test"))
