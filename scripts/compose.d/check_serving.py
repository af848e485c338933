"""Host side of scripts/compose-check, through the published ports only.

``check_serving.py``: publish a user's events, read one list per event from `recommendations`,
and GET the pull API. ``check_serving.py --until-model SECONDS``: repeat that with fresh users
until a list comes from a model version (the trainer's v1), not from trending."""

from __future__ import annotations

import asyncio
import json
import sys
import time
import urllib.error
import urllib.request
import uuid

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer

BOOTSTRAP, WEB = "localhost:9092", "http://localhost:6066"


async def round_trip(user: str, items: list[str], timeout_s: float) -> list[dict]:
    consumer = AIOKafkaConsumer("recommendations", bootstrap_servers=BOOTSTRAP,
                                auto_offset_reset="earliest")  # fmt: skip
    producer = AIOKafkaProducer(bootstrap_servers=BOOTSTRAP, acks="all")
    await consumer.start()
    await producer.start()
    try:
        for item in items:
            event = {"user_id": user, "item_id": item, "type": "click"}
            await producer.send_and_wait("events", json.dumps(event).encode(), key=user.encode())
        lists: list[dict] = []
        deadline = time.monotonic() + timeout_s
        while len(lists) < len(items) and time.monotonic() < deadline:
            for records in (await consumer.getmany(timeout_ms=1000)).values():
                lists += [json.loads(r.value) for r in records if r.key == user.encode()]
        return lists
    finally:
        await producer.stop()
        await consumer.stop()


def pull(user: str) -> dict:
    with urllib.request.urlopen(f"{WEB}/users/{user}/recommendations", timeout=10) as resp:
        return json.loads(resp.read())


def serve_once() -> tuple[int, str | None]:
    """(exit status, the last list's model version)."""
    user = f"compose-check-{uuid.uuid4().hex[:8]}"
    items = ["i1", "i2", "i3"]
    lists = asyncio.run(round_trip(user, items, timeout_s=120))
    if len(lists) != len(items):
        print(f"check: {len(lists)} of {len(items)} lists came back on `recommendations`")
        return 1, None
    version = lists[-1]["model_version"]
    print(f"check: {len(lists)} lists for {user}; the last: model_version {version!r}, "
          f"{len(lists[-1]['items'])} items")  # fmt: skip
    try:
        latest = pull(user)
    except urllib.error.URLError as exc:
        print(f"check: GET {WEB}/users/{user}/recommendations failed: {exc}")
        return 1, version
    if latest.get("rec_id") != lists[-1].get("rec_id"):
        print(f"check: the pull API answered {latest!r}, not the last list")
        return 1, version
    print("check: the pull API returns the last list")
    return 0, version


def main(argv: list[str]) -> int:
    if argv[:1] != ["--until-model"]:
        return serve_once()[0]
    deadline = time.monotonic() + float(argv[1])
    while time.monotonic() < deadline:
        status, version = serve_once()
        if status:
            return status
        if version not in (None, "none"):
            print(f"check: lists now come from model version {version}")
            return 0
        time.sleep(10)
    print(f"check: no list from a model version within {argv[1]} s")
    return 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
