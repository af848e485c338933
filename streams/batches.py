"""One micro-batch of Kafka messages → validated events and dead letters (pure)."""

from __future__ import annotations

import functools
from collections.abc import Iterable
from dataclasses import dataclass

from pydantic import ValidationError

from recstream.streams.decoding import (
    InvalidEvent,
    Limits,
    dead_letter,
    decode_event,
    describe,
    parse_json_object,
)
from recstream.streams.records import CatalogItem, DeadLetter, Event, Source


@dataclass(frozen=True)
class RawMessage:
    """The parts of a Kafka record the worker uses; ``timestamp_ms`` is the record timestamp."""

    topic: str
    partition: int
    offset: int
    timestamp_ms: int
    key: bytes | None
    value: bytes | None

    @functools.cached_property
    def source(self) -> Source:
        # Cached: the pipeline asks several times per event and each build is validated.
        return Source(topic=self.topic, partition=self.partition, offset=self.offset)


@dataclass(frozen=True)
class Valid:
    event: Event
    message: RawMessage

    @property
    def source(self) -> Source:
        return self.message.source


@dataclass(frozen=True)
class Rejected:
    letter: DeadLetter
    key: bytes | None


def split_batch(
    messages: Iterable[RawMessage], now_ms: int, limits: Limits
) -> tuple[list[Valid], list[Rejected]]:
    """Validate every message; a bad one becomes a dead letter and never affects its neighbours."""
    valid: list[Valid] = []
    rejected: list[Rejected] = []
    for msg in messages:
        try:
            event = decode_event(msg.value, msg.timestamp_ms, now_ms, limits)
        except InvalidEvent as exc:
            rejected.append(reject(msg, str(exc), now_ms))
        else:
            valid.append(Valid(event, msg))
    return valid, rejected


def parse_items(
    batch: Iterable[RawMessage], now_ms: int
) -> tuple[list[CatalogItem], list[Rejected]]:
    """Validate ``items`` records as :func:`split_batch` does events."""
    items: list[CatalogItem] = []
    rejected: list[Rejected] = []
    max_bytes = Limits().max_bytes
    for msg in batch:
        try:
            obj = parse_json_object(msg.value, max_bytes)
            items.append(CatalogItem.model_validate(obj))
        except InvalidEvent as exc:
            rejected.append(reject(msg, f"items: {exc}", now_ms))
        except ValidationError as exc:
            rejected.append(reject(msg, f"items: {describe(exc)}", now_ms))
    return items, rejected


def reject(msg: RawMessage, error: str, now_ms: int) -> Rejected:
    return Rejected(dead_letter(msg.value, msg.key, error, msg.source, now_ms), msg.key)
