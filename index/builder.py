"""``build``: item embeddings in, a tuned in-memory ``ItemIndex`` out."""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Sequence

import faiss
import numpy as np

from recstream.index.info import IndexInfo
from recstream.index.inputs import Metric, check_item_ids, check_matrix, check_metric
from recstream.index.item_index import ItemIndex
from recstream.index.params import Family, faiss_threads, family_of, knob_name, nlist_of
from recstream.index.search import SearchCore
from recstream.index.space import (
    Transform,
    items_to_index_space,
    prepare_queries,
    scoring_rows,
    to_index_space,
)
from recstream.index.tuning import RECALL_K, exact_top, proxy_queries, tune

log = logging.getLogger(__name__)

# Exact search costs ~0.25 ms per query at 5*10^4 items, d=64, one thread: fast enough, and
# exact needs no training or tuning. Above that, IVF; HNSW measured worse on inner product.
EXACT_MAX_ITEMS = 50_000
# faiss' rule of thumb is 4..16*sqrt(n) lists; the low end keeps k-means training short
# (the 10^6 build takes seconds on 2 cores) and the lists long enough for batched scans.
IVF_LISTS_PER_SQRT_N = 4
# k-means on 64 points per list is as good as on all of them and bounds the build time.
IVF_TRAIN_POINTS_PER_LIST = 64
# faiss' default; higher builds a better HNSW graph at proportionally higher build time.
HNSW_EF_CONSTRUCTION = 40


def auto_factory(n_items: int) -> str:
    """The factory string ``kind="auto"`` picks for a catalogue of ``n_items``."""
    if n_items <= EXACT_MAX_ITEMS:
        return "Flat"
    nlist = 2 ** round(math.log2(IVF_LISTS_PER_SQRT_N * math.sqrt(n_items)))
    return f"IVF{nlist},Flat"


def transform_for(family: Family) -> Transform:
    """IVF searches the MIPS->L2 augmented space (see ``space``); the others inner product."""
    return "l2-augment" if family == "ivf" else "none"


def build(
    embeddings: np.ndarray,
    item_ids: Sequence[str],
    *,
    metric: str = "ip",
    kind: str = "auto",
    target_recall: float = 0.95,
    tuning_queries: np.ndarray | None = None,
    n_tuning: int = 1000,
    seed: int = 0,
    threads: int = 2,
) -> ItemIndex:
    """Build an in-memory index over ``embeddings`` float32 ``[n_items, d]``.

    ``item_ids``: one unique string per row. ``metric``: ``"ip"`` (the model's score) or
    ``"cosine"``. ``kind``: ``"auto"`` (by catalogue size, see ``auto_factory``), ``"exact"``
    or a faiss factory string (``"HNSW32"``, ``"IVF1024,Flat"``). Approximate indexes get the
    smallest efSearch/nprobe whose recall@10 against exact search reaches ``target_recall`` on
    ``tuning_queries`` ``[m, d]`` (user vectors if you have them; else ``n_tuning`` item rows
    plus noise). ``threads``: faiss OpenMP threads for the build; searches use one.
    """
    started = time.perf_counter()
    checked_metric = check_metric(metric)
    emb = check_matrix(embeddings, "embeddings")
    ids = check_item_ids(item_ids, emb.shape[0])
    if not 0.0 < target_recall <= 1.0:
        raise ValueError(f"target_recall must be in (0, 1], got {target_recall}")
    factory = {"auto": auto_factory(len(ids)), "exact": "Flat"}.get(kind, kind)
    family = family_of(factory)
    transform = transform_for(family)
    rows = scoring_rows(emb, checked_metric)
    with faiss_threads(threads):
        index = _faiss_index(
            factory, family, transform, items_to_index_space(rows, transform), seed
        )
        queries = _tuning_queries(tuning_queries, rows, checked_metric, n_tuning, seed, family)
        knob, achieved = _tune(index, factory, transform, rows, queries, target_recall)
    info = IndexInfo(
        factory=factory,
        metric=checked_metric,
        transform=transform,
        n_items=len(ids),
        d=emb.shape[1],
        search_param=knob_name(family),
        search_value=knob,
        recall_at_10=round(achieved, 4),
        target_recall=target_recall,
        tuning_queries=queries.shape[0],
        build_s=round(time.perf_counter() - started, 3),
        build_threads=threads,
    )
    log.info("built %s", info)
    return ItemIndex(SearchCore(index, family, knob, transform, rows, ids, _row_of(ids)), emb, info)


def _row_of(ids: Sequence[str]) -> dict[str, int]:
    return {item: row for row, item in enumerate(ids)}


def _faiss_index(
    factory: str, family: Family, transform: Transform, space: np.ndarray, seed: int
) -> faiss.Index:
    metric = faiss.METRIC_L2 if transform == "l2-augment" else faiss.METRIC_INNER_PRODUCT
    try:
        index = faiss.index_factory(space.shape[1], factory, metric)
    except RuntimeError as exc:
        raise ValueError(f"faiss cannot build {factory!r}: {exc}") from exc
    if isinstance(index, faiss.IndexHNSW):
        index.hnsw.efConstruction = HNSW_EF_CONSTRUCTION
    if family == "ivf":
        _train_ivf(index, nlist_of(factory), space, seed)
    index.add(space)
    return index


def _train_ivf(index: faiss.Index, nlist: int, space: np.ndarray, seed: int) -> None:
    n = space.shape[0]
    if n < nlist:
        raise ValueError(f"IVF{nlist} needs at least {nlist} items to train, got {n}")
    sample = min(n, IVF_TRAIN_POINTS_PER_LIST * nlist)
    rows = np.random.default_rng(seed).choice(n, size=sample, replace=False)
    index.train(space[np.sort(rows)])


def _tuning_queries(
    given: np.ndarray | None,
    rows: np.ndarray,
    metric: Metric,
    n_tuning: int,
    seed: int,
    family: Family,
) -> np.ndarray:
    """``[m, d]`` prepared queries; none for exact search, which has nothing to tune."""
    if family == "flat":
        return np.zeros((0, rows.shape[1]), dtype=np.float32)
    if given is None:
        return proxy_queries(rows, n_tuning, seed)
    return prepare_queries(check_matrix(given, "tuning queries", rows.shape[1]), metric)


def _tune(
    index: faiss.Index,
    factory: str,
    transform: Transform,
    rows: np.ndarray,
    queries: np.ndarray,
    target: float,
) -> tuple[int | None, float]:
    family = family_of(factory)
    if family == "flat":
        return None, 1.0
    truth = exact_top(rows, queries, min(RECALL_K, rows.shape[0]))
    in_space = to_index_space(queries, transform)
    return tune(index, family, nlist_of(factory), in_space, truth, target)
