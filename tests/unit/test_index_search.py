"""index/ search: exclusions, allow-filters, refill to k, id mapping, bad queries."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from recstream.index import build
from recstream.index.synthetic import clustered_catalogue, user_queries
from recstream.index.tuning import exact_top

RNG = np.random.default_rng(7)
EMB = RNG.standard_normal((300, 8)).astype(np.float32)
IDS = [f"item-{r}" for r in range(300)]
EXACT = build(EMB, IDS)
QUERIES = RNG.standard_normal((6, 8)).astype(np.float32)


def _brute_force(query, k, banned=frozenset(), allowed=None):
    order = np.argsort(-(EMB @ query))
    eligible = [IDS[r] for r in order if IDS[r] not in banned]
    return [i for i in eligible if allowed is None or i in allowed][:k]


@pytest.fixture(scope="module")
def approximate():
    catalogue = clustered_catalogue(6000, d=16, seed=4)
    tuning = user_queries(catalogue, 300, seed=5)
    index = build(
        catalogue.embeddings, catalogue.item_ids, kind="IVF32,Flat", tuning_queries=tuning
    )
    return catalogue, index


def test_excluding_most_of_the_top_hits_still_returns_k_eligible(approximate):
    catalogue, index = approximate
    queries = user_queries(catalogue, 40, seed=6)
    top = exact_top(catalogue.embeddings, queries, 200)
    exclude = [{catalogue.item_ids[r] for r in row[:190]} for row in top]  # 190 of the top 200
    found, scores = index.search(queries, 10, exclude=exclude)
    for row, banned, row_scores in zip(found, exclude, scores, strict=True):
        assert len(row) == 10 and len(set(row)) == 10
        assert not set(row) & banned
        assert row_scores == sorted(row_scores, reverse=True)


@given(
    st.lists(st.integers(0, 299), max_size=250),
    st.integers(1, 30),
    st.integers(0, 5),
)
@settings(max_examples=60, deadline=None)
def test_exact_search_with_exclusions_is_the_filtered_brute_force(banned_rows, k, row):
    banned = {IDS[r] for r in banned_rows}
    found, _ = EXACT.search(QUERIES[row : row + 1], k, exclude=[banned])
    assert found[0] == _brute_force(QUERIES[row], k, banned)


def test_selective_allow_set_refills_to_k_through_the_exact_fallback(approximate):
    catalogue, index = approximate
    allowed = set(catalogue.item_ids[::500])  # 12 of 6000 items
    found, _ = index.search(user_queries(catalogue, 5, seed=8), 10, allowed=allowed)
    assert all(len(row) == 10 and set(row) <= allowed for row in found)


def test_fewer_eligible_items_than_k_returns_all_of_them():
    allowed = {"item-1", "item-2", "item-3"}
    found, _ = EXACT.search(QUERIES[:2], 10, exclude=[{"item-2"}, None], allowed=allowed)
    assert sorted(found[0]) == ["item-1", "item-3"]
    assert sorted(found[1]) == ["item-1", "item-2", "item-3"]
    everything_else = [set(IDS) - {"item-9"}]
    assert EXACT.search(QUERIES[:1], 5, exclude=everything_else)[0] == [["item-9"]]


def test_search_rows_are_the_search_results_as_padded_arrays():
    everything_else = set(IDS) - {"item-9", "item-4"}
    rows, scores = EXACT.search_rows(QUERIES[:2], 5, exclude=[everything_else, None])
    assert rows.shape == scores.shape == (2, 5)
    ids, expected = EXACT.search(QUERIES[:2], 5, exclude=[everything_else, None])
    assert [EXACT.item_ids[r] for r in rows[0][:2]] == ids[0]
    assert rows[0][2:].tolist() == [-1, -1, -1] and np.isneginf(scores[0][2:]).all()
    assert [EXACT.item_ids[r] for r in rows[1]] == ids[1] == _brute_force(QUERIES[1], 5)
    np.testing.assert_allclose(scores[1], expected[1], rtol=1e-6)


def test_unit_vectors_have_length_one_and_padding_is_zero():
    unit = EXACT.unit_vectors(np.array([[0, 5, -1]]))
    assert unit.shape == (1, 3, 8) and unit.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(unit[0, :2], axis=1), 1.0, rtol=1e-6)
    np.testing.assert_allclose(unit[0, 1], EMB[5] / np.linalg.norm(EMB[5]), rtol=1e-6)
    assert not unit[0, 2].any()


def test_allowed_as_predicate_and_per_row():
    even = lambda item: int(item.split("-")[1]) % 2 == 0  # noqa: E731
    found, _ = EXACT.search(QUERIES[:2], 5, allowed=even)
    assert found[0] == _brute_force(QUERIES[0], 5, allowed={i for i in IDS if even(i)})
    per_row = [{"item-5", "item-6"}, None]
    found, _ = EXACT.search(QUERIES[:2], 2, allowed=per_row)
    assert sorted(found[0]) == ["item-5", "item-6"]
    assert found[1] == _brute_force(QUERIES[1], 2)


def test_edge_batches_and_k_larger_than_the_catalogue():
    assert EXACT.search(np.zeros((0, 8), np.float32), 5) == ([], [])
    found, _ = EXACT.search(QUERIES[:1], 1000)
    assert sorted(found[0]) == sorted(IDS)
    tiny = build(EMB[:3], IDS[:3], kind="HNSW8")
    assert sorted(tiny.search(QUERIES[:1], 10, exclude=[{"item-0"}])[0][0]) == ["item-1", "item-2"]


def test_unknown_ids_in_filters_are_ignored():
    found, _ = EXACT.search(QUERIES[:1], 3, exclude=[{"no-such-item"}], allowed=None)
    assert found[0] == _brute_force(QUERIES[0], 3)


def test_item_id_mapping_round_trips_through_vectors_and_scores():
    found, scores = EXACT.search(QUERIES, 7)
    for query, row_ids, row_scores in zip(QUERIES, found, scores, strict=True):
        np.testing.assert_allclose(EXACT.vectors(row_ids) @ query, row_scores, rtol=1e-5)
    np.testing.assert_array_equal(EXACT.vectors(["item-42", "item-0"]), EMB[[42, 0]])
    assert list(EXACT.item_ids) == IDS and EXACT.dim == 8 and EXACT.version is None
    assert all(isinstance(i, str) for row in found for i in row)
    assert all(isinstance(s, float) for row in scores for s in row)


@pytest.mark.parametrize(
    ("call", "message"),
    [
        (lambda: EXACT.search(QUERIES, 0), "k must be"),
        (lambda: EXACT.search(QUERIES[:, :4], 3), "d=4, the index has d=8"),
        (lambda: EXACT.search(QUERIES[0], 3), "2-D"),
        (lambda: EXACT.search(QUERIES.astype(np.int64), 3), "dtype"),
        (lambda: EXACT.search(np.full((1, 8), np.nan, np.float32), 3), "NaN"),
        (lambda: EXACT.search(QUERIES[:2], 3, exclude=[set()]), "1 rows for 2"),
        (lambda: EXACT.search(QUERIES[:1], 3, exclude={"item-1"}), "one collection"),
        (lambda: EXACT.search(QUERIES[:1], 3, exclude=["item-1"]), r"exclude\[0\]"),
        (lambda: EXACT.search(QUERIES[:1], 3, allowed=["item-1"]), r"allowed\[0\]"),
        (lambda: EXACT.vectors(["item-1", "nope"]), "unknown item ids"),
    ],
)
def test_bad_search_input_is_a_clear_value_error(call, message):
    with pytest.raises(ValueError, match=message):
        call()


@settings(max_examples=200, deadline=None)
@given(
    rows=st.integers(1, 12),
    n=st.integers(1, 2500),
    k=st.integers(1, 300),
    seed=st.integers(0, 2**16),
    shape=st.sampled_from(["normal", "ties", "masked", "skewed"]),
)
def test_top_k_columns_are_the_k_largest_of_every_row(rows, n, k, seed, shape):
    from recstream.index.search import top_k_columns

    rng = np.random.default_rng(seed)
    scores = rng.standard_normal((rows, n)).astype(np.float32)
    if shape == "ties":
        scores = np.round(scores, 1)
    elif shape == "masked":  # excluded items are -inf, as in a search with exclusions
        scores[:, rng.integers(0, n, size=n // 2)] = -np.inf
    elif shape == "skewed":  # the sampled scores are the largest: fewer than k pass
        scores[:, ::8] += 100.0
    top = top_k_columns(scores, k)
    kept = min(k, n)
    assert top.shape == (rows, kept)
    assert all(len(set(row)) == kept for row in top.tolist())
    expected = -np.sort(-scores, axis=1)[:, :kept]
    got = -np.sort(-np.take_along_axis(scores, top, axis=1), axis=1)
    np.testing.assert_array_equal(got, expected)
