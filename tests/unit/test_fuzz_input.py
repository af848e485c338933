"""Fuzzing the worker's input: batches of ``events`` and ``items`` records mixing good records
with hostile ones (any JSON, good records with one field broken, raw bytes, deep nesting).
Every record comes out exactly once, as a good record or as a dead letter with a reason and
its original bytes; no input raises; no good record is lost or changed (10,000 batches each)."""

from __future__ import annotations

import base64
import json
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from recstream.streams.batches import RawMessage, Rejected, parse_items, split_batch
from recstream.streams.decoding import Limits

NOW = 1_764_000_000_000
LIMITS = Limits()
CASES = settings(max_examples=10_000, deadline=None, suppress_health_check=[HealthCheck.too_slow])

ids = st.text(st.characters(codec="utf-8", exclude_categories=["Cs"]), min_size=1, max_size=40)
ids = ids.filter(lambda s: s.strip() != "")
json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=20),
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4)
    ),
    max_leaves=12,
)


@st.composite
def good_events(draw: st.DrawFn) -> dict[str, Any]:
    event: dict[str, Any] = {
        "user_id": draw(ids),
        "item_id": draw(ids),
        "type": draw(st.sampled_from(["view", "click", "add_to_cart", "purchase", "skip"])),
    }
    if draw(st.booleans()):
        event["ts"] = draw(st.integers(NOW - 10**10, NOW))
    if draw(st.booleans()):
        event["event_id"] = draw(ids)
    return event


@st.composite
def good_items(draw: st.DrawFn) -> dict[str, Any]:
    item: dict[str, Any] = {"item_id": draw(ids)}
    if draw(st.booleans()):
        item["category"] = draw(st.text(max_size=20))
    if draw(st.booleans()):
        item["available"] = draw(st.booleans())
    return item


def broken(good: st.SearchStrategy[dict[str, Any]]) -> st.SearchStrategy[bytes | None]:
    """Values that are not good records (some may still be valid by chance; the test decides
    by decoding, and checks only that each record lands exactly once)."""
    one_field = st.tuples(good, st.text(max_size=10), json_values).map(
        lambda t: json.dumps({**t[0], t[1]: t[2]}).encode()
    )
    missing = st.tuples(good, st.integers(0, 5)).map(
        lambda t: json.dumps({k: v for i, (k, v) in enumerate(t[0].items()) if i != t[1]}).encode()
    )
    nested = st.integers(1, 30_000).map(lambda n: b"[" * n + b"]" * (n % 3))
    return st.one_of(
        st.none(),
        st.binary(max_size=200),
        json_values.map(lambda v: json.dumps(v).encode()),
        one_field,
        missing,
        nested,
        st.just(b'{"user_id": NaN}'),
        st.just(b"x" * (LIMITS.max_bytes + 1)),
    )


def batches(good: st.SearchStrategy[dict[str, Any]]) -> st.SearchStrategy[list[tuple[bool, Any]]]:
    record = st.one_of(good.map(lambda g: (True, g)), broken(good).map(lambda b: (False, b)))
    return st.lists(record, min_size=1, max_size=8)


def _messages(records: list[tuple[bool, Any]]) -> list[RawMessage]:
    out = []
    for offset, (is_good, value) in enumerate(records):
        raw = json.dumps(value).encode() if is_good else value
        out.append(RawMessage("in", 0, offset, NOW, b"k", raw))
    return out


def _check_letters(rejected: list[Rejected], messages: list[RawMessage]) -> None:
    for r in rejected:
        letter = r.letter
        assert letter.error  # a reason, always
        original = messages[letter.source.offset].value or b""
        raw = (
            letter.raw.encode() if letter.raw_encoding == "utf-8" else base64.b64decode(letter.raw)
        )
        assert raw == original[: len(raw)] and letter.raw_bytes == len(original)


@CASES
@given(batches(good_events()))
def test_every_event_is_answered_once_and_no_good_one_is_lost(records: list[tuple[bool, Any]]):
    messages = _messages(records)
    valid, rejected = split_batch(messages, NOW, LIMITS)
    offsets = sorted([v.source.offset for v in valid] + [r.letter.source.offset for r in rejected])
    assert offsets == list(range(len(messages)))
    kept = {v.source.offset: v.event for v in valid}
    for offset, (is_good, value) in enumerate(records):
        if is_good:
            event = kept[offset]  # a good event is never rejected ...
            assert (event.user_id, event.item_id, event.type) == (  # ... nor changed
                value["user_id"],
                value["item_id"],
                value["type"],
            )
            assert event.ts == value.get("ts", NOW)
    _check_letters(rejected, messages)


@CASES
@given(batches(good_items()))
def test_every_catalogue_record_is_kept_or_rejected_and_no_good_one_is_lost(
    records: list[tuple[bool, Any]],
):
    messages = _messages(records)
    items, rejected = parse_items(messages, NOW)
    assert len(items) + len(rejected) == len(messages)
    good = [value for is_good, value in records if is_good]
    kept = [(i.item_id, i.available) for i in items]
    for value in good:
        assert (value["item_id"], value.get("available", True)) in kept
    _check_letters(rejected, messages)
    assert all(r.letter.error.startswith("items: ") for r in rejected)
