"""Bytes from Kafka → a validated :class:`Event`, or a :class:`DeadLetter` saying why not.

Pure functions: no I/O, no clock (the caller passes ``now_ms``), so every rejection rule is
unit-testable without a broker.
"""

from __future__ import annotations

import base64
import json
from dataclasses import dataclass
from typing import Any

from pydantic import ValidationError

from recstream.streams.records import DeadLetter, Event, Source

# A dead letter carries at most this much of the original value; the full bytes stay in the
# source topic at the offset the dead letter names, so nothing is lost by the cut.
DLQ_RAW_LIMIT = 256 * 1024


class InvalidEvent(ValueError):
    """The value on ``events`` is not a valid event; the message says why."""


@dataclass(frozen=True)
class Limits:
    max_bytes: int = 65536
    max_future_skew_ms: int = 86_400_000


def _reject_constant(name: str) -> Any:
    raise InvalidEvent(f"JSON contains {name}, which is not valid JSON")


def parse_json_object(raw: bytes | None, max_bytes: int) -> dict[str, Any]:
    """Decode UTF-8 JSON that must be an object; raise :class:`InvalidEvent` otherwise."""
    if not raw:
        raise InvalidEvent("empty value")
    if len(raw) > max_bytes:
        raise InvalidEvent(f"value is {len(raw)} bytes, over the {max_bytes}-byte limit")
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise InvalidEvent(f"value is not valid UTF-8 ({exc.reason} at byte {exc.start})") from exc
    try:
        obj = json.loads(text, parse_constant=_reject_constant)
    except json.JSONDecodeError as exc:
        where = f"line {exc.lineno} column {exc.colno}"
        raise InvalidEvent(f"malformed JSON: {exc.msg} at {where}") from exc
    except RecursionError:  # "[[[[…" fits in the size limit and would stop the consumer
        raise InvalidEvent("JSON nested too deeply") from None
    if not isinstance(obj, dict):
        raise InvalidEvent(f"expected a JSON object, got {type(obj).__name__}")
    return obj


def describe(exc: ValidationError) -> str:
    """Pydantic's errors as one line: ``user_id: Field required; ts: ...``."""
    parts = []
    for err in exc.errors():
        where = ".".join(str(p) for p in err["loc"]) or "value"
        parts.append(f"{where}: {err['msg']}")
    return "; ".join(parts)


def decode_event(raw: bytes | None, record_ts_ms: int, now_ms: int, limits: Limits) -> Event:
    """Validate one value from ``events``; ``ts`` defaults to the Kafka record timestamp."""
    obj = parse_json_object(raw, limits.max_bytes)
    if "ts" not in obj or obj["ts"] is None:
        obj["ts"] = record_ts_ms
    try:
        event = Event.model_validate(obj)
    except ValidationError as exc:
        raise InvalidEvent(describe(exc)) from exc
    if event.ts > now_ms + limits.max_future_skew_ms:
        raise InvalidEvent(
            f"ts: {event.ts} is more than {limits.max_future_skew_ms} ms in the future"
        )
    for name in ("user_id", "item_id"):
        if not getattr(event, name).strip():
            raise InvalidEvent(f"{name}: must not be blank")
    return event


def _as_text(data: bytes) -> tuple[str, str]:
    try:
        return data.decode("utf-8"), "utf-8"
    except UnicodeDecodeError:
        return base64.b64encode(data).decode("ascii"), "base64"


def dead_letter(
    raw: bytes | None, key: bytes | None, error: str, source: Source, now_ms: int
) -> DeadLetter:
    """Wrap a rejected value so that the original bytes can be recovered from the DLQ."""
    data = raw or b""
    kept = data[:DLQ_RAW_LIMIT]
    text, encoding = _as_text(kept)
    key_text = None if key is None else key.decode("utf-8", errors="replace")
    return DeadLetter(
        error=error,
        raw=text,
        raw_encoding=encoding,  # type: ignore[arg-type]
        raw_bytes=len(data),
        raw_truncated=len(kept) < len(data),
        key=key_text,
        source=source,
        ts=now_ms,
    )
