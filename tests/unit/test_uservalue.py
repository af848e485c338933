"""A user's one value in key layout 3: every state, list and newest list round-trips exactly,
and a user of 50 events fits in far fewer bytes than layout 2's three JSON strings."""

from __future__ import annotations

import random

import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from recstream.streams.attribution import Served, served_to_json
from recstream.streams.records import Event, Source, recommendation_json
from recstream.streams.state import UserState, apply_event
from recstream.streams.uservalue import (
    Latest,
    UnreadableValue,
    UserValue,
    latest_record,
    pack,
    unpack,
)

WEIGHTS = {"view": 0.5, "click": 1.0, "purchase": 3.0, "skip": 0.0}
ids = st.text(min_size=1, max_size=12)


def fold(events: list[tuple[str, str, str | None]], max_len: int = 5) -> UserState:
    state = UserState()
    for n, (item, kind, category) in enumerate(events):
        event = Event(user_id="u", item_id=item, type=kind, ts=1_700_000_000_000 + n)
        state = apply_event(state, event, WEIGHTS, max_len, category, ("events", 0, n))
    return state


@st.composite
def values(draw: st.DrawFn) -> UserValue:
    kinds = st.sampled_from(sorted(WEIGHTS))
    history = draw(st.lists(st.tuples(ids, kinds, st.none() | ids), max_size=30))
    state = fold(history, max_len=draw(st.integers(1, 8)))
    rows = draw(
        st.lists(
            st.tuples(
                st.sampled_from(["ab" * 16, "AB" * 16, "r-1", "0" * 31]),
                st.integers(0, 2**45),
                st.sampled_from(["v1", "v2"]),
                st.lists(ids, max_size=6),
                st.lists(st.sampled_from(["click:0", "purchase:3"]), max_size=2),
            ),
            max_size=4,
        )
    )
    served = [Served(r, ts, v, items, hits) for r, ts, v, items, hits in rows]
    if not served or not draw(st.booleans()):
        return UserValue(state, served)
    scores = draw(
        st.one_of(
            st.lists(st.floats(width=32, allow_nan=False), min_size=len(served[-1].items)),
            st.lists(st.floats(allow_nan=False), min_size=len(served[-1].items)),
        )
    )[: len(served[-1].items)]
    source = (draw(st.sampled_from(["events", "other"])), draw(st.integers(0, 9)), 7)
    variant = draw(st.none() | st.sampled_from(["v1", "b"]))
    return UserValue(state, served, Latest(scores, source, draw(st.integers(0, 2**45)), variant))


@settings(max_examples=500, deadline=None)
@given(values())
def test_every_value_round_trips_exactly(value: UserValue) -> None:
    back = unpack(pack(value))
    assert back == value
    assert back.state.to_json() == value.state.to_json()  # the canonical state, byte for byte


def test_the_pull_record_is_the_published_one_byte_for_byte() -> None:
    items = [("i7", 0.8125), ("i9", 0.25)]
    source = Source(topic="events", partition=2, offset=40)
    published = recommendation_json("ab" * 16, "u", items, "v3", source, 100, 130)
    served = [Served("ab" * 16, 130, "v3", ["i7", "i9"])]
    value = UserValue(
        fold([("i1", "click", None)]), served, Latest([0.8125, 0.25], ("events", 2, 40), 100)
    )
    assert latest_record("u", unpack(pack(value))) == published
    assert latest_record("u", UserValue(UserState(), [])) is None


def test_a_sequence_with_repeats_and_items_dropped_from_seen_still_round_trip() -> None:
    state = fold([("a", "click", None), ("b", "click", None), ("a", "click", None)])
    assert state.sequence == ("a", "b", "a") and state.seen == ("b", "a")
    odd = UserState(sequence=("gone", "a"), seen=("a",), purchased=("lost",), events=3)
    for s in (state, odd):
        assert unpack(pack(UserValue(s, [Served("r", 1, "v", ["a", "new"])]))).state == s


def test_a_user_of_fifty_events_is_a_third_of_layout_2() -> None:
    rng = random.Random(0)
    genres = ["Drama", "Comedy", "Action", "Thriller", "Romance", "Sci-Fi"]
    history = [(str(rng.randint(1, 3952)), "click", rng.choice(genres)) for _ in range(50)]
    state = fold(history, max_len=50)
    pool = [str(rng.randint(1, 3952)) for _ in range(25)]
    served = [
        Served(
            f"{rng.getrandbits(64):016x}{k:016x}", 1_764_800_000_000 + k, "v7", rng.sample(pool, 10)
        )
        for k in range(5)
    ]
    scores = [float(i) / 16 for i in range(10)]
    latest = Latest(scores, ("events", 3, 99), 1_764_800_000_000)
    record = recommendation_json(
        served[-1].rec_id,
        "u",
        list(zip(served[-1].items, scores, strict=True)),
        "v7",
        Source(topic="events", partition=3, offset=99),
        latest.event_ts,
        served[-1].created_ts,
    )
    layout2 = len(state.to_json()) + len(served_to_json(served)) + len(record)
    packed = pack(UserValue(state, served, latest))
    assert len(packed) * 3 < layout2


@pytest.mark.parametrize(
    "raw", [b"\x00", b"not msgpack \xff", orjson.dumps({"seq": []}), b"\x92\x02\x90", "text"]
)
def test_an_unreadable_value_is_a_clear_error(raw: bytes | str) -> None:
    with pytest.raises(UnreadableValue):
        unpack(raw)


def test_no_value_is_a_new_user() -> None:
    assert unpack(None) == UserValue(UserState(), [])
