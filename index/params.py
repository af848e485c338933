"""How faiss is driven: index families, their one search knob, and the OpenMP thread count."""

from __future__ import annotations

import re
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Literal

import faiss

Family = Literal["flat", "hnsw", "ivf"]

_FACTORY = re.compile(r"^(?:Flat|HNSW(\d+)(?:,Flat)?|IVF(\d+),(?:Flat|SQ8|SQfp16))$")

# Knob values the build-time tuner tries, cheapest first. efSearch is the size of HNSW's
# candidate list; nprobe is how many IVF lists are scanned. Both trade speed for recall.
EF_SEARCH_STEPS = (16, 24, 32, 48, 64, 96, 128, 192, 256, 384, 512, 768, 1024, 1536, 2048)
NPROBE_STEPS = (1, 2, 3, 4, 6, 8, 12, 16, 24, 32, 48, 64, 96, 128, 192, 256, 384, 512, 1024)


def family_of(factory: str) -> Family:
    """``"Flat"`` / ``"HNSW32"`` / ``"IVF1024,Flat"`` -> its family; ValueError otherwise."""
    if not _FACTORY.match(factory):
        raise ValueError(
            f"unsupported index factory string {factory!r}; use 'Flat', 'HNSW<M>' or "
            "'IVF<nlist>,Flat' (also ',SQ8', ',SQfp16')"
        )
    if factory.startswith("HNSW"):
        return "hnsw"
    return "ivf" if factory.startswith("IVF") else "flat"


def nlist_of(factory: str) -> int:
    match = _FACTORY.match(factory)
    return int(match.group(2)) if match and match.group(2) else 0


def knob_name(family: Family) -> str | None:
    return {"flat": None, "hnsw": "efSearch", "ivf": "nprobe"}[family]


def knob_steps(family: Family, nlist: int) -> tuple[int, ...]:
    if family == "hnsw":
        return EF_SEARCH_STEPS
    if family == "ivf":
        return (*(p for p in NPROBE_STEPS if p < nlist), nlist)
    return ()


def search_params(family: Family, knob: int | None, fetch: int) -> faiss.SearchParameters | None:
    """Per-call parameters, so concurrent searches never mutate the shared index."""
    # (faiss' bundled type stubs lack these two classes, hence the ignores.)
    if family == "hnsw" and knob is not None:
        # HNSW returns at most efSearch results, so the candidate list must cover the fetch.
        return faiss.SearchParametersHNSW(efSearch=max(knob, fetch))  # type: ignore[attr-defined]
    if family == "ivf" and knob is not None:
        return faiss.SearchParametersIVF(nprobe=knob)  # type: ignore[call-arg]
    return None


@contextmanager
def faiss_threads(n: int) -> Iterator[None]:
    """Run the block with ``n`` OpenMP threads in faiss (and its bundled BLAS), then restore."""
    if n < 1:
        raise ValueError(f"threads must be >= 1, got {n}")
    before = faiss.omp_get_max_threads()
    faiss.omp_set_num_threads(n)
    try:
        yield
    finally:
        faiss.omp_set_num_threads(before)
