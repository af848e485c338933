"""The HTTP API's input checks: every malformed parameter or body is refused with its reason."""

from __future__ import annotations

import orjson
import pytest

from recstream.streams.api_params import (
    MAX_EVENTS,
    BadRequest,
    event_values,
    list_query,
    popular_query,
    similar_query,
    well_formed,
)
from recstream.streams.pipeline import Ask


def test_a_list_query_with_every_parameter() -> None:
    ask, fresh = list_query({"n": "5", "category": "books", "exclude": "a,b", "fresh": "true"}, 10)
    assert ask == Ask(5, "books", frozenset({"a", "b"})) and fresh
    assert list_query({}, 10) == (Ask(10), False)


@pytest.mark.parametrize(
    ("query", "reason"),
    [
        ({"n": "0"}, "n must be an integer from 1 to 200, got 0"),
        ({"n": "201"}, "got 201"),
        ({"n": "ten"}, "got 'ten'"),
        ({"fresh": "maybe"}, "fresh must be true or false"),
        ({"exclude": "a,,b"}, "each excluded item id must be 1 to 256 characters"),
        ({"category": " "}, "category must be"),
        ({"limit": "5"}, "unknown parameter 'limit'; known: n, category, exclude, fresh"),
    ],
)
def test_a_bad_list_query_says_why(query: dict[str, str], reason: str) -> None:
    with pytest.raises(BadRequest, match=reason) as info:
        list_query(query, 10)
    assert info.value.status == 400


def test_similar_and_popular_queries() -> None:
    assert similar_query({"n": "3"}, 10) == 3
    assert popular_query({"category": "books"}, 10) == ("books", 10)
    with pytest.raises(BadRequest, match="unknown parameter 'category'"):
        similar_query({"category": "x"}, 10)
    with pytest.raises(BadRequest, match="user id must be"):
        well_formed("x" * 257, "user id")


def test_event_bodies_as_an_object_an_array_or_ndjson() -> None:
    one = b'{"user_id": "u", "item_id": "i", "type": "click"}'
    assert event_values(one, "application/json") == [one]
    many = orjson.dumps([{"a": 1}, 5, "x"])
    assert event_values(many, "application/json") == [b'{"a":1}', b"5", b'"x"']
    lines = b'{"a": 1}\n\n{"b": 2}\nnot json\n'
    assert event_values(lines, "application/x-ndjson") == [b'{"a": 1}', b'{"b": 2}', b"not json"]
    # NDJSON sent as application/json is still read line by line.
    assert event_values(b'{"a": 1}\n{"b": 2}', "application/json") == [b'{"a": 1}', b'{"b": 2}']


@pytest.mark.parametrize(
    ("body", "status", "reason"),
    [
        (b"", 400, "empty body"),
        (b"  \n", 400, "empty body"),
        (b"{not json", 400, "body is not JSON"),
        (orjson.dumps([{}] * (MAX_EVENTS + 1)), 413, "at most 10000"),
    ],
)
def test_a_bad_body_says_why(body: bytes, status: int, reason: str) -> None:
    with pytest.raises(BadRequest, match=reason) as info:
        event_values(body, "application/json")
    assert info.value.status == status
