"""User state invariants: bounded, order kept, exclusions kept, deterministic serialisation."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from recstream.contract import DEFAULT_EVENT_WEIGHTS
from recstream.streams.records import Event
from recstream.streams.state import MAX_SEEN, UserState, apply_event

TS = 1_764_000_000_000


def ev(item: str, kind: str = "click") -> Event:
    return Event(user_id="u", item_id=item, type=kind, ts=TS)  # type: ignore[arg-type]


def fold(events: list[Event], max_len: int = 5) -> UserState:
    state = UserState()
    for e in events:
        state = apply_event(state, e, DEFAULT_EVENT_WEIGHTS, max_len, category=e.item_id[0])
    return state


def test_sequence_keeps_order_and_the_last_l_items() -> None:
    state = fold([ev(f"i{n}") for n in range(8)], max_len=5)
    assert state.sequence == ("i3", "i4", "i5", "i6", "i7")
    assert state.events == 8


def test_skip_hides_an_item_without_entering_the_sequence() -> None:
    state = fold([ev("a1"), ev("b2", "skip")])
    assert state.sequence == ("a1",)
    assert "b2" in state.excluded


def test_purchases_are_excluded_and_weigh_more_in_taste() -> None:
    state = fold([ev("a1"), ev("b1", "purchase")])
    assert state.purchased == ("b1",)
    assert state.excluded == {"a1", "b1"}
    assert state.categories["b"] > state.categories["a"]


def test_a_repeated_click_does_not_repeat_in_the_sequence() -> None:
    assert fold([ev("a1"), ev("a1"), ev("a2"), ev("a1")]).sequence == ("a1", "a2", "a1")


items = st.sampled_from([f"{c}{n}" for c in "abc" for n in range(6)])
kinds = st.sampled_from(sorted(DEFAULT_EVENT_WEIGHTS))
event_lists = st.lists(st.builds(ev, items, kinds), max_size=60)


@given(event_lists, st.integers(min_value=1, max_value=10))
def test_state_is_bounded_and_consistent(events: list[Event], max_len: int) -> None:
    state = fold(events, max_len)
    assert len(state.sequence) <= max_len
    assert len(state.seen) <= MAX_SEEN
    assert len(set(state.seen)) == len(state.seen)
    assert set(state.sequence) <= set(state.seen)
    assert set(state.purchased) <= set(state.seen)
    positive = [e.item_id for e in events if DEFAULT_EVENT_WEIGHTS[e.type] > 0]
    if positive:
        assert state.sequence[-1] == positive[-1]


@given(event_lists)
def test_serialisation_round_trips_byte_for_byte(events: list[Event]) -> None:
    state = fold(events)
    raw = state.to_json()
    assert UserState.from_json(raw).to_json() == raw
    assert fold(events).to_json() == raw  # same events, same bytes
