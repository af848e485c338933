"""Model hot swap: follow ``model-updates`` and load newer versions without stopping.

Every worker must see every announcement, so this is a consumer outside the group (all
partitions assigned, no commits) that reads the topic from the beginning and acts only on
versions newer than the one being served: an update published while the worker started is
not missed. A version is checked (the whole version's sha256 and its manifest's against the
announcement), loaded in a
thread, and only then handed to the pipeline, which takes its recommender once per batch — so
the swap lands between batches and no event is dropped. Anything wrong: the old model stays.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Iterable
from pathlib import Path

from pydantic import ValidationError

from recstream.artifacts import MANIFEST, sha256_file, version_number, version_sha256
from recstream.streams.connection import KafkaConnection, groupless_consumer
from recstream.streams.recommender import Recommender
from recstream.streams.records import ModelUpdate

log = logging.getLogger("recstream.swap")


class SwapError(RuntimeError):
    """An announced version cannot be served; the message says why."""


def is_newer(candidate: str, current: str) -> bool:
    """Versions are ``v<N>``; anything is newer than a worker serving no model (``none``)."""
    new = version_number(candidate)
    old = version_number(current)
    return new is not None and (old is None or new > old)


def candidates(updates: Iterable[ModelUpdate], current: str) -> list[ModelUpdate]:
    """Updates newer than ``current``, newest first; the last announcement of a version wins."""
    latest = {u.version: u for u in updates if is_newer(u.version, current)}
    return sorted(latest.values(), key=lambda u: version_number(u.version) or 0, reverse=True)


def parse_update(raw: bytes | None) -> ModelUpdate:
    try:
        return ModelUpdate.model_validate_json(raw or b"")
    except ValidationError as exc:
        raise SwapError(f"not a model update: {raw!r:.200}") from exc


def artifact_dir(update: ModelUpdate, root: Path) -> Path:
    """The announced path, or ``<root>/<version>`` when that path does not exist here (the
    announcer may see the shared volume under another mount point)."""
    announced = Path(update.path)
    return announced if announced.is_dir() else root / update.version


def check_manifest(directory: Path, sha256: str, whole: str | None = None) -> None:
    """The version's manifest, and the whole version when the announcement pins it (files
    below are checked against the manifests when they load)."""
    manifest = directory / MANIFEST
    if not manifest.is_file():
        raise SwapError(f"{directory}: no {MANIFEST}")
    actual = sha256_file(manifest)
    if actual != sha256:
        raise SwapError(f"{manifest}: sha256 {actual} differs from the announced {sha256}")
    if whole is not None and (found := version_sha256(directory)) != whole:
        raise SwapError(
            f"{directory}: the version's sha256 {found} differs from the announced {whole} "
            "(its index or a manifest changed after it was announced)"
        )


async def load_update(
    update: ModelUpdate, root: Path, load: Callable[[Path], Recommender]
) -> Recommender:
    """Check and load an announced version off the event loop; raises on any problem."""
    directory = artifact_dir(update, root)
    await asyncio.to_thread(check_manifest, directory, update.sha256, update.version_sha256)
    recommender = await asyncio.to_thread(load, directory)
    if recommender.version != update.version:
        raise SwapError(
            f"{directory} holds version {recommender.version!r}, not the announced "
            f"{update.version!r}"
        )
    return recommender


async def follow(
    kafka: KafkaConnection,
    topic: str,
    current: Callable[[], str],
    apply: Callable[[ModelUpdate], Awaitable[bool]],
) -> None:
    """Read ``topic`` from the beginning forever; for each batch of announcements try the
    newest version newer than ``current()``, then older ones, until one is applied."""
    consumer = groupless_consumer(kafka, topic)
    await consumer.start()
    try:
        while True:
            batches = await consumer.getmany(timeout_ms=1000)
            updates = []
            for record in (r for records in batches.values() for r in records):
                try:
                    updates.append(parse_update(record.value))
                except SwapError as exc:
                    log.error("ignoring a record on %s: %s", topic, exc)
            for update in candidates(updates, current()):
                if await apply(update):
                    break
    finally:
        await consumer.stop()
