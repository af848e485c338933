"""index/ build: recall floor against exact search on seeded data, metrics, bad input."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest

from recstream.index import build
from recstream.index.builder import auto_factory
from recstream.index.synthetic import clustered_catalogue, user_queries
from recstream.index.tuning import exact_top, recall


def _found_rows(index, ids_out):
    return np.array([[index.core.row_of[i] for i in row] for row in ids_out])


@pytest.mark.parametrize("kind", ["IVF64,Flat", "HNSW16"])
def test_approximate_index_keeps_the_recall_floor_on_unseen_queries(kind):
    catalogue = clustered_catalogue(8000, d=32, seed=1)
    index = build(
        catalogue.embeddings,
        catalogue.item_ids,
        kind=kind,
        tuning_queries=user_queries(catalogue, 500, seed=2),
    )
    assert index.info.recall_at_10 >= 0.95
    assert index.info.search_value is not None
    queries = user_queries(catalogue, 300, seed=3)
    found, _ = index.search(queries, 10)
    assert recall(_found_rows(index, found), exact_top(catalogue.embeddings, queries, 10)) >= 0.93


def test_exact_index_equals_brute_force_inner_product():
    rng = np.random.default_rng(0)
    embeddings = rng.standard_normal((500, 16)).astype(np.float32) * 3  # unnormalised
    ids = [f"i{r}" for r in range(500)]
    index = build(embeddings, ids)
    assert index.info.factory == "Flat" and index.info.recall_at_10 == 1.0
    queries = rng.standard_normal((20, 16)).astype(np.float32)
    found, scores = index.search(queries, 5)
    brute = queries @ embeddings.T
    for row, (got, got_scores) in enumerate(zip(found, scores, strict=True)):
        best = np.argsort(-brute[row])[:5]
        assert got == [ids[r] for r in best]
        np.testing.assert_allclose(got_scores, brute[row, best], rtol=1e-5)


def test_cosine_normalises_both_sides():
    embeddings = np.array([[10.0, 0.0], [0.6, 0.8], [0.0, 1.0]], dtype=np.float32)
    ids = ["long", "diagonal", "up"]
    query = np.array([[0.0, 2.0]], dtype=np.float32)
    assert build(embeddings, ids, metric="ip").search(query, 1)[0] == [["up"]]
    found, scores = build(embeddings, ids, metric="cosine").search(query, 3)
    assert found == [["up", "diagonal", "long"]]
    np.testing.assert_allclose(scores[0], [1.0, 0.8, 0.0], atol=1e-6)


def test_inner_product_prefers_long_vectors_as_the_model_does():
    embeddings = np.array([[10.0, 0.0], [0.0, 1.0]], dtype=np.float32)
    query = np.array([[1.0, 1.0]], dtype=np.float32)
    assert build(embeddings, ["long", "up"]).search(query, 1)[0] == [["long"]]


def test_auto_picks_exact_for_small_and_ivf_for_large_catalogues():
    assert auto_factory(10_000) == "Flat"
    assert auto_factory(100_000) == "IVF1024,Flat"
    assert auto_factory(1_000_000) == "IVF4096,Flat"


EMB = np.ones((3, 4), dtype=np.float32)


@pytest.mark.parametrize(
    ("embeddings", "ids", "kwargs", "message"),
    [
        (EMB.astype(np.int32), ["a", "b", "c"], {}, "dtype"),
        (EMB[0], ["a"], {}, "2-D"),
        (EMB, ["a", "b"], {}, "2 item ids for 3"),
        (EMB, ["a", "b", "a"], {}, "duplicate item id 'a'"),
        (EMB, ["a", "b", 3], {}, "non-empty string"),
        (np.where(np.eye(3, 4) > 0, np.nan, 1).astype(np.float32), ["a", "b", "c"], {}, "NaN"),
        (EMB, ["a", "b", "c"], {"metric": "l2"}, "metric"),
        (EMB, ["a", "b", "c"], {"kind": "LSH"}, "factory string"),
        (EMB, ["a", "b", "c"], {"kind": "IVF16,Flat"}, "at least 16 items"),
        (EMB, ["a", "b", "c"], {"target_recall": 1.5}, "target_recall"),
        ([[1.0]], ["a"], {}, "numpy array"),
    ],
)
def test_bad_build_input_is_a_clear_value_error(embeddings, ids, kwargs, message):
    with pytest.raises(ValueError, match=message):
        build(embeddings, ids, **kwargs)


def test_index_package_never_imports_torch():
    code = "import sys, recstream.index, recstream.index.bench; print('torch' in sys.modules)"
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    )
    assert result.stdout.strip() == "False"
