"""The event contract: what the worker accepts, and what it dead-letters with which reason."""

from __future__ import annotations

import base64
import contextlib
import json

import pytest
from hypothesis import given
from hypothesis import strategies as st

from recstream.streams.batches import RawMessage, split_batch
from recstream.streams.decoding import (
    DLQ_RAW_LIMIT,
    InvalidEvent,
    Limits,
    dead_letter,
    decode_event,
)
from recstream.streams.records import Recommendation, Source, recommendation_json

NOW = 1_764_000_000_000
LIMITS = Limits(max_bytes=4096, max_future_skew_ms=60_000)
GOOD = {"user_id": "u1", "item_id": "i9", "type": "click"}


def raw(obj: object) -> bytes:
    return json.dumps(obj).encode()


def decode(value: bytes | None, record_ts: int = NOW - 5) -> object:
    return decode_event(value, record_ts, NOW, LIMITS)


def test_minimal_event_gets_the_record_timestamp() -> None:
    event = decode(raw(GOOD))
    assert event.user_id == "u1" and event.item_id == "i9" and event.type == "click"
    assert event.ts == NOW - 5


def test_all_optional_fields_are_kept() -> None:
    full = {**GOOD, "ts": NOW - 1000, "event_id": "e1", "rec_id": "r1", "context": {"a": [1]}}
    event = decode(raw(full))
    assert (event.ts, event.event_id, event.rec_id, event.context) == (
        NOW - 1000,
        "e1",
        "r1",
        {"a": [1]},
    )


@pytest.mark.parametrize("kind", ["click", "purchase", "view", "add_to_cart", "like", "skip"])
def test_every_known_type_is_accepted(kind: str) -> None:
    assert decode(raw({**GOOD, "type": kind})).type == kind


@pytest.mark.parametrize(
    ("value", "reason"),
    [
        (None, "empty value"),
        (b"", "empty value"),
        (b"{not json", "malformed JSON"),
        (b"\xff\xfe\x00garbage", "not valid UTF-8"),
        (b"[1, 2]", "expected a JSON object, got list"),
        (b'"just a string"', "expected a JSON object, got str"),
        (raw({"item_id": "i", "type": "click"}), "user_id: Field required"),
        (raw({"user_id": "u", "type": "click"}), "item_id: Field required"),
        (raw({"user_id": "u", "item_id": "i"}), "type: Field required"),
        (raw({**GOOD, "user_id": 42}), "user_id: Input should be a valid string"),
        (raw({**GOOD, "item_id": ["x"]}), "item_id: Input should be a valid string"),
        (raw({**GOOD, "user_id": ""}), "user_id: String should have at least 1 character"),
        (raw({**GOOD, "item_id": "x" * 257}), "item_id: String should have at most 256"),
        (raw({**GOOD, "user_id": "   "}), "user_id: must not be blank"),
        (raw({**GOOD, "type": "teleport"}), "type: Input should be 'click'"),
        (raw({**GOOD, "ts": "1764000000000"}), "ts: Input should be a valid integer"),
        (raw({**GOOD, "ts": True}), "ts: Input should be a valid integer"),
        (raw({**GOOD, "ts": 1.5e12}), "ts: Input should be a valid integer"),
        (raw({**GOOD, "ts": 1_764_000_000}), "ts: Input should be greater than or equal"),
        (raw({**GOOD, "ts": -1}), "ts: Input should be greater than or equal"),
        (raw({**GOOD, "ts": NOW + 3_600_000}), "in the future"),
        (raw({**GOOD, "context": "not an object"}), "context: Input should be a valid dictionary"),
        (raw({**GOOD, "event_id": 7}), "event_id: Input should be a valid string"),
        (b'{"user_id": "u", "item_id": "i", "type": "click", "ts": NaN}', "NaN"),
        (b"x" * 5000, "over the 4096-byte limit"),
    ],
)
def test_bad_events_are_rejected_with_a_reason(value: bytes | None, reason: str) -> None:
    with pytest.raises(InvalidEvent) as info:
        decode(value)
    assert reason in str(info.value)


def test_unknown_fields_are_ignored_for_forward_compatibility() -> None:
    assert decode(raw({**GOOD, "new_field": 1})).user_id == "u1"


SOURCE = Source(topic="events", partition=3, offset=17)


def test_dead_letter_keeps_utf8_text_verbatim() -> None:
    letter = dead_letter(b'{"oops"', b"u1", "malformed JSON", SOURCE, NOW)
    assert (letter.raw, letter.raw_encoding, letter.key) == ('{"oops"', "utf-8", "u1")
    assert letter.source == SOURCE and letter.ts == NOW and not letter.raw_truncated


def test_dead_letter_base64_encodes_binary() -> None:
    letter = dead_letter(b"\xff\x00", None, "not valid UTF-8", SOURCE, NOW)
    assert letter.raw_encoding == "base64"
    assert base64.b64decode(letter.raw) == b"\xff\x00"


def test_dead_letter_of_a_huge_value_is_cut_and_says_so() -> None:
    letter = dead_letter(b"a" * (DLQ_RAW_LIMIT + 10), None, "too big", SOURCE, NOW)
    assert letter.raw_truncated and letter.raw_bytes == DLQ_RAW_LIMIT + 10
    assert len(letter.raw) == DLQ_RAW_LIMIT


@given(st.binary(max_size=300))
def test_any_bytes_either_decode_or_are_rejected_cleanly(value: bytes) -> None:
    with contextlib.suppress(InvalidEvent):
        decode(value)


@given(st.binary(max_size=300))
def test_dead_letters_always_give_the_original_bytes_back(value: bytes) -> None:
    letter = dead_letter(value, None, "x", SOURCE, NOW)
    back = letter.raw.encode() if letter.raw_encoding == "utf-8" else base64.b64decode(letter.raw)
    assert back == value


def test_split_batch_keeps_good_events_around_bad_ones() -> None:
    values = [raw(GOOD), b"{bad", raw({**GOOD, "user_id": "u2"}), None]
    messages = [RawMessage("events", 0, i, NOW, b"k", v) for i, v in enumerate(values)]
    valid, rejected = split_batch(messages, NOW, LIMITS)
    assert [v.event.user_id for v in valid] == ["u1", "u2"]
    assert [v.source.offset for v in valid] == [0, 2]
    assert [r.letter.source.offset for r in rejected] == [1, 3]
    assert [r.letter.error for r in rejected] == [
        "malformed JSON: Expecting property name enclosed in double quotes at line 1 column 2",
        "empty value",
    ]


@given(
    st.lists(st.tuples(st.text(min_size=1, max_size=20), st.floats(-1e6, 1e6)), max_size=12),
    st.text(min_size=1, max_size=30),
)
def test_hand_built_recommendation_json_is_a_valid_record(
    items: list[tuple[str, float]], user: str
) -> None:
    source = Source(topic="events", partition=3, offset=17)
    raw = recommendation_json("r1", user, items, "v2", source, 1_764_000_000_000, 1_764_000_000_005)
    rec = Recommendation.model_validate_json(raw)
    assert rec.user_id == user
    assert [(i.item_id, i.score) for i in rec.items] == items
    assert (rec.rec_id, rec.model_version, rec.source) == ("r1", "v2", source)
    assert (rec.event_ts, rec.created_ts) == (1_764_000_000_000, 1_764_000_000_005)


def test_json_nested_too_deeply_is_rejected_not_raised() -> None:
    # 4,000 brackets fit the size limit; json's recursion limit must not stop the consumer.
    with pytest.raises(InvalidEvent, match="nested too deeply"):
        decode(b"[" * 4_000)
