"""Attribution on a scripted sequence: which interaction is a hit on which list and position."""

from __future__ import annotations

from recstream.streams.attribution import (
    Hit,
    Served,
    attribute_batch,
    served_from_json,
    served_to_json,
)
from recstream.streams.records import Event

T0 = 1_764_000_000_000
MINUTE = 60_000
WINDOW = 30 * MINUTE
COUNTED = frozenset({"click", "purchase", "add_to_cart"})


def ev(item: str, kind: str = "click", ts: int = T0, rec_id: str | None = None) -> Event:
    return Event(user_id="u", item_id=item, type=kind, ts=ts, rec_id=rec_id)  # type: ignore[arg-type]


def made(rec_id: str, created: int, version: str = "v1") -> Served:
    """A list of five items named after the list: ``A0`` … ``A4``."""
    return Served(rec_id, created, version, [f"{rec_id}{n}" for n in range(5)])


class Script:
    """Runs batches against one user's served lists, as the pipeline does."""

    def __init__(self, keep: int = 8) -> None:
        self.served: dict[str, list[Served]] = {}
        self.keep = keep

    def batch(self, *steps: tuple[Event, bool, Served]) -> list[Hit]:
        """Steps as (event, applied, list): an applied event also counts."""
        full = [(event, applied, applied, list_) for event, applied, list_ in steps]
        return attribute_batch(full, self.served, WINDOW, self.keep, COUNTED)


def test_scripted_sequence() -> None:
    s = Script()
    # The first event only gets list A: nothing to hit yet.
    assert s.batch((ev("x"), True, made("A", T0))) == []
    # A click that carries rec_id A on A's third item.
    hits = s.batch((ev("A2", ts=T0 + MINUTE, rec_id="A"), True, made("B", T0 + MINUTE)))
    assert hits == [Hit("A", "v1", "click", 2)]
    # Without rec_id: the item is in the last list (B), within the window.
    hits = s.batch((ev("B1", ts=T0 + 2 * MINUTE), True, made("C", T0 + 2 * MINUTE)))
    assert hits == [Hit("B", "v1", "click", 1)]
    # Without rec_id, outside the window after C was made: no hit.
    late = T0 + 2 * MINUTE + WINDOW + 1
    assert s.batch((ev("C0", ts=late), True, made("D", late))) == []
    # Without rec_id, on an item of an older list (not the last one): no hit.
    assert s.batch((ev("B2", ts=late + 1), True, made("E", late + 1))) == []
    # With rec_id, on an item that list did not show; and an unknown rec_id: no hit.
    assert s.batch((ev("zzz", ts=late + 2, rec_id="E"), True, made("F", late + 2))) == []
    assert s.batch((ev("F0", ts=late + 3, rec_id="nope"), True, made("G", late + 3))) == []


def test_same_batch_reference_in_order() -> None:
    s = Script()
    hits = s.batch(
        (ev("x"), True, made("A", T0)),
        (ev("A3", ts=T0 + 1), True, made("B", T0 + 2)),  # hits A, made earlier in this batch
        (ev("B0", rec_id="B", ts=T0 + 3), True, made("C", T0 + 4)),
    )
    assert hits == [Hit("A", "v1", "click", 3), Hit("B", "v1", "click", 0)]
    # An event is never attributed to its own list.
    assert s.batch((ev("D0", rec_id="D", ts=T0 + 5), True, made("D", T0 + 6))) == []


def test_replays_and_duplicates_are_not_attributed_but_their_lists_are_kept() -> None:
    s = Script()
    s.batch((ev("x"), True, made("A", T0)))
    assert s.batch((ev("A1", rec_id="A"), False, made("B", T0 + 1))) == []
    assert [x.rec_id for x in s.served["u"]] == ["A", "B"]
    # The replay did not use up A's slot: the applied event still counts.
    assert s.batch((ev("A1", rec_id="A"), True, made("C", T0 + 2))) == [Hit("A", "v1", "click", 1)]


def test_a_position_counts_once_per_type_and_only_counted_types() -> None:
    s = Script()
    s.batch((ev("x"), True, made("A", T0)))
    steps = [
        (ev("A0", rec_id="A"), True, made("B", T0 + 1)),
        (ev("A0", rec_id="A"), True, made("C", T0 + 2)),  # the same click again
        (ev("A0", "purchase", rec_id="A"), True, made("D", T0 + 3)),
        (ev("A1", "skip", rec_id="A"), True, made("E", T0 + 4)),
        (ev("A1", "add_to_cart", rec_id="A"), True, made("F", T0 + 5)),
    ]
    hits = s.batch(*steps)
    assert [(h.type, h.position) for h in hits] == [
        ("click", 0),
        ("purchase", 0),
        ("add_to_cart", 1),
    ]


def test_old_lists_are_dropped_and_hits_carry_the_lists_version() -> None:
    s = Script(keep=2)
    s.batch((ev("x"), True, made("A", T0, "v1")))
    s.batch((ev("y"), True, made("B", T0 + 1, "v2")), (ev("z"), True, made("C", T0 + 2, "v2")))
    assert [x.rec_id for x in s.served["u"]] == ["B", "C"]
    assert s.batch((ev("A0", rec_id="A"), True, made("D", T0 + 3))) == []
    assert s.batch((ev("C4", rec_id="C"), True, made("E", T0 + 4))) == [Hit("C", "v2", "click", 4)]


def test_served_lists_round_trip_and_bad_values_are_empty() -> None:
    lists = [made("A", T0), Served("B", T0 + 5, "v2", ["i1", "i2"], ["click:1"])]
    assert served_from_json(served_to_json(lists)) == lists
    for bad in (None, b"", b"{", b'{"a": 1}', b"[[1]]"):
        assert served_from_json(bad) == []


def test_applied_but_already_counted_marks_without_counting() -> None:
    """A replay whose counters landed but whose user state did not (a Redis Cluster crash
    between the two calls): the hit is marked in the user's lists, not counted again."""
    s = Script()
    s.batch((ev("x"), True, made("A", T0)))
    click = ev("A1", ts=T0 + MINUTE, rec_id="A")
    replay = [(click, True, False, made("B", T0 + MINUTE))]
    assert attribute_batch(replay, s.served, WINDOW, s.keep, COUNTED) == []
    assert s.served["u"][0].hits == ["click:1"]


def test_a_zero_window_attributes_by_rec_id_only() -> None:
    served = {"u": [made("A", T0)]}
    same_ms = ev("A1", ts=T0)  # organic, stamped as the list was made: no rec_id
    assert attribute_batch([(same_ms, True, True, made("B", T0))], served, 0, 8, COUNTED) == []
    tagged = ev("A2", ts=T0 + MINUTE, rec_id="A")
    step = (tagged, True, True, made("C", T0 + MINUTE))
    hits = attribute_batch([step], served, 0, 8, COUNTED)
    assert [(h.rec_id, h.position) for h in hits] == [("A", 2)]
