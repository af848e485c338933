"""The JSON records on recstream's topics, declared once (docs/contract.md, "Topics")."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Annotated, Any, Literal

import orjson
from pydantic import BaseModel, ConfigDict, Field, StringConstraints

from recstream.contract import EventType

Id = Annotated[str, StringConstraints(min_length=1, max_length=256)]

# Epoch milliseconds below this (March 1973) are almost surely epoch *seconds* sent by mistake.
MIN_TS_MS = 100_000_000_000


class _Record(BaseModel):
    # strict: "42" is not a number and 1 is not a string; unknown keys are ignored so that
    # producers can add fields without breaking older workers.
    model_config = ConfigDict(strict=True, frozen=True, extra="ignore")


class Event(_Record):
    """One interaction on the ``events`` topic, after validation (``ts`` always set)."""

    user_id: Id
    item_id: Id
    type: EventType
    ts: int = Field(ge=MIN_TS_MS)
    event_id: Id | None = None
    rec_id: Id | None = None
    context: dict[str, Any] | None = None


class Source(_Record):
    """Where a record was read from: enough to find it again in the log."""

    topic: str
    partition: int
    offset: int


class RecItem(_Record):
    item_id: str
    score: float
    # The user's history items that drove this one most (the model's reasons, nearest first);
    # empty for trending items and where the model cannot say.
    because: list[str] = []


class Recommendation(_Record):
    """One list on the ``recommendations`` topic."""

    rec_id: str
    user_id: str
    items: list[RecItem]
    model_version: str
    source: Source
    event_ts: int
    created_ts: int
    # The user's arm of the A/B test that made it (RECSTREAM_AB); None without a test.
    variant: str | None = None


def recommendation_json(
    rec_id: str,
    user_id: str,
    items: Sequence[tuple[str, float]],
    model_version: str,
    source: Source,
    event_ts: int,
    created_ts: int,
    because: Sequence[Sequence[str]] | None = None,
    variant: str | None = None,
) -> bytes:
    """The ``recommendations`` record as JSON bytes, without building pydantic objects: the
    worker makes one per event, every value is its own, and validating them again would cost
    more than the rest of the list's serialisation (a unit test pins this to the model)."""
    return orjson.dumps(
        {
            "rec_id": rec_id,
            "user_id": user_id,
            "items": [
                {"item_id": i, "score": float(s), "because": because[n] if because else []}
                for n, (i, s) in enumerate(items)
            ],
            "model_version": model_version,
            "source": {
                "topic": source.topic,
                "partition": source.partition,
                "offset": source.offset,
            },
            "event_ts": event_ts,
            "created_ts": created_ts,
            "variant": variant,
        },
    )


class DeadLetter(_Record):
    """An event that could not be processed, with why, on ``events.dlq``."""

    error: str
    raw: str
    raw_encoding: Literal["utf-8", "base64"]
    raw_bytes: int
    raw_truncated: bool = False
    key: str | None = None
    source: Source
    ts: int


class CatalogItem(_Record):
    """One entry of the optional, compacted ``items`` topic."""

    item_id: Id
    title: str | None = None
    category: str | None = None
    available: bool = True


class ModelUpdate(_Record):
    """Announcement on ``model-updates`` that a new artifact version is ready."""

    version: str
    path: str
    sha256: str  # of the version's manifest.json
    # Of the whole version (recstream.artifacts.version_sha256): manifest and index. Absent
    # from announcements made before it existed; workers then check ``sha256`` alone.
    version_sha256: str | None = None
