"""The HTTP API's input, checked (pure): query parameters, ids, the body of ``POST /events``.
Everything wrong becomes :class:`BadRequest` with a sentence that says what and why."""

from __future__ import annotations

from collections.abc import Mapping

import orjson

from recstream.streams.pipeline import Ask

MAX_N = 200  # items one answer may ask for
MAX_ID = 256  # as the contract's Id
MAX_EXCLUDE = 1000
MAX_EVENTS = 10_000  # events one POST may carry
MAX_BODY = 16 * 1024 * 1024
TRUE, FALSE = {"true", "1", "yes"}, {"false", "0", "no"}


class BadRequest(ValueError):
    """The request is malformed; ``status`` 400, or 413 for one too large."""

    def __init__(self, reason: str, status: int = 400) -> None:
        super().__init__(reason)
        self.status = status


def well_formed(value: str, what: str) -> str:
    if not value.strip() or len(value) > MAX_ID:
        raise BadRequest(f"{what} must be 1 to {MAX_ID} characters, not blank")
    return value


def _only(query: Mapping[str, str], known: tuple[str, ...]) -> None:
    unknown = sorted(set(query) - set(known))
    if unknown:
        raise BadRequest(f"unknown parameter {unknown[0]!r}; known: {', '.join(known)}")


def bounded_int(raw: str, name: str, low: int, high: int) -> int:
    """A query parameter that must be an integer from ``low`` to ``high``."""
    try:
        value = int(raw)
    except ValueError:
        raise BadRequest(f"{name} must be an integer from {low} to {high}, got {raw!r}") from None
    if not low <= value <= high:
        raise BadRequest(f"{name} must be an integer from {low} to {high}, got {value}")
    return value


def _n(query: Mapping[str, str], default: int) -> int:
    raw = query.get("n")
    return default if raw is None else bounded_int(raw, "n", 1, MAX_N)


def _category(query: Mapping[str, str]) -> str | None:
    raw = query.get("category")
    return None if raw is None else well_formed(raw, "category")


def list_query(query: Mapping[str, str], default_n: int) -> tuple[Ask, bool]:
    """``GET /users/{id}/recommendations``: (what to make, whether to make it now)."""
    _only(query, ("n", "category", "exclude", "fresh"))
    exclude = frozenset(
        well_formed(i, "each excluded item id")
        for i in query.get("exclude", "").split(",")
        if "exclude" in query
    )
    if len(exclude) > MAX_EXCLUDE:
        raise BadRequest(f"exclude names {len(exclude)} items; at most {MAX_EXCLUDE}")
    fresh = query.get("fresh", "false").lower()
    if fresh not in TRUE | FALSE:
        raise BadRequest(f"fresh must be true or false, got {query['fresh']!r}")
    return Ask(_n(query, default_n), _category(query), exclude), fresh in TRUE


def similar_query(query: Mapping[str, str], default_n: int) -> int:
    """``GET /items/{id}/similar``: how many."""
    _only(query, ("n",))
    return _n(query, default_n)


def popular_query(query: Mapping[str, str], default_n: int) -> tuple[str | None, int]:
    """``GET /popular``: (category or None for overall, how many)."""
    _only(query, ("category", "n"))
    return _category(query), _n(query, default_n)


def no_query(query: Mapping[str, str]) -> None:
    _only(query, ())


def event_values(body: bytes, content_type: str) -> list[bytes]:
    """The events of a ``POST /events`` body, one JSON value each (validated later, one by one,
    as the stream validates them): a JSON object, a JSON array of them, or NDJSON (one per
    line; ``application/x-ndjson``, or any body whose lines are not one JSON document)."""
    if len(body) > MAX_BODY:
        raise BadRequest(f"body of {len(body)} bytes; at most {MAX_BODY}", 413)
    if not body.strip():
        raise BadRequest("empty body: send a JSON object, a JSON array of them, or NDJSON")
    ndjson = "ndjson" in content_type or "jsonlines" in content_type
    values: list[bytes] | None = None
    if not ndjson:
        try:
            parsed = orjson.loads(body)
        except orjson.JSONDecodeError:
            values = None  # perhaps NDJSON sent as application/json
        else:
            values = [orjson.dumps(v) for v in parsed] if isinstance(parsed, list) else [body]
    if values is None:
        values = [line for line in body.splitlines() if line.strip()]
        if not ndjson and len(values) < 2:
            raise BadRequest("body is not JSON: send a JSON object, a JSON array, or NDJSON")
    if len(values) > MAX_EVENTS:
        raise BadRequest(f"{len(values)} events in one request; at most {MAX_EVENTS}", 413)
    return values
