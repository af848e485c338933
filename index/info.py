"""``IndexInfo``: how an index was built and how well it did, as its manifest records it."""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields
from typing import Any

from recstream.index.inputs import Metric, check_metric
from recstream.index.space import Transform


@dataclass(frozen=True)
class IndexInfo:
    """How an index was built and how well it did; written to the index manifest."""

    factory: str  # faiss factory string: "Flat", "HNSW32", "IVF4096,Flat"
    metric: Metric
    transform: Transform
    n_items: int
    d: int
    search_param: str | None  # "efSearch" or "nprobe"; None for exact search
    search_value: int | None  # the tuned value of search_param
    recall_at_10: float  # on the tuning queries, against exact search
    target_recall: float
    tuning_queries: int
    build_s: float
    build_threads: int

    def to_manifest(self) -> dict[str, Any]:
        values = asdict(self)
        values["recall@10"] = values.pop("recall_at_10")
        return values

    @classmethod
    def from_manifest(cls, manifest: dict[str, Any]) -> IndexInfo:
        """Inverse of ``to_manifest``; KeyError/ValueError when a field is missing or wrong."""
        values = {f.name: manifest[f.name] for f in fields(cls) if f.name != "recall_at_10"}
        info = cls(recall_at_10=float(manifest["recall@10"]), **values)
        check_metric(info.metric)
        if info.transform not in ("none", "l2-augment"):
            raise ValueError(f"unknown transform {info.transform!r}")
        return info
