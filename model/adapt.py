"""Defaults chosen from the data: history length, width, depth, served length and dropout.

A shop's users have 5-10 interactions, MovieLens users a hundred and more; one set of fixed
defaults fits one of them. ``train(..., auto=...)`` names the settings the user left open;
:func:`choose` picks them from the training split's shape. The thresholds come from sweeps on
ML-1M, ML-100K and ML-1M cut to each user's 10 newest items (docs/model.md, "Defaults chosen
from the data").
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from typing import Any

import numpy as np

from recstream.model.config import ModelConfig

# Settings that may be chosen from the data (the CLI leaves a flag not given to them).
ADAPTABLE = ("max_len", "dim", "dropout", "n_layers", "serve_len")
# max_len: the history length that covers 90% of users, in steps of 10, from 10 to 100 (the
# cap keeps a served history cheap to encode).
LENGTH_QUANTILE = 0.9
MIN_LEN, MAX_LEN, LEN_STEP = 10, 100, 10
# dim: WIDE when the data is large and dense (at least both of these), else ModelConfig's.
WIDE, WIDE_FROM_INTERACTIONS, WIDE_FROM_PER_ITEM = 128, 500_000, 150.0
# dropout: on wide data WIDE_DROPOUT for a model of fewer than DEEP_LAYERS blocks, DEEP_DROPOUT
# for a deeper one (both measured on ML-1M), else ModelConfig's. On the small sets dropouts from
# 0.1 to 0.5 (and validating every epoch) changed nothing beyond noise: there the
# regularisation that counts is early stopping on the best epoch.
WIDE_DROPOUT, DEEP_DROPOUT = 0.2, 0.3
# n_layers: DEEP_LAYERS for the wide model (measured on ML-1M), else ModelConfig's.
DEEP_LAYERS = 4
# serve_len: a model of DEEP_LAYERS or more reads the newest DEEP_SERVE_LEN items, which keeps
# its encoding within the worker's budget (with the bias by distance, at no cost in ranking).
DEEP_SERVE_LEN = 40


@dataclass(frozen=True)
class DataShape:
    """What the choices look at, from the training sequences."""

    users: int
    items: int
    interactions: int
    length_p50: float
    length_p90: float

    @property
    def per_item(self) -> float:
        return self.interactions / max(self.items, 1)

    def as_dict(self) -> dict[str, float]:
        return dataclasses.asdict(self) | {"per_item": round(self.per_item, 1)}


def data_shape(train: tuple[np.ndarray, ...], n_items: int) -> DataShape:
    lengths = np.array([len(s) for s in train], dtype=np.float64)
    if not len(lengths):
        raise ValueError("no training sequences to adapt to")
    return DataShape(
        users=len(lengths),
        items=n_items,
        interactions=int(lengths.sum()),
        length_p50=float(np.quantile(lengths, 0.5)),
        length_p90=float(np.quantile(lengths, LENGTH_QUANTILE)),
    )


def choose(shape: DataShape) -> dict[str, Any]:
    """Every adaptable setting's value for data of this shape."""
    covering = LEN_STEP * math.ceil((shape.length_p90 + 1) / LEN_STEP)  # +1: the input window
    wide = is_wide(shape)
    layers = DEEP_LAYERS if wide else ModelConfig.n_layers
    return {
        "max_len": min(max(covering, MIN_LEN), MAX_LEN),
        "dim": WIDE if wide else ModelConfig.dim,
        "dropout": dropout_for(wide, layers),
        "n_layers": layers,
        "serve_len": serve_len_for(layers),
    }


def is_wide(shape: DataShape) -> bool:
    """Large and dense enough for the wide (and deep) model."""
    return shape.interactions >= WIDE_FROM_INTERACTIONS and shape.per_item >= WIDE_FROM_PER_ITEM


def dropout_for(wide: bool, n_layers: int) -> float:
    """The dropout for data of this kind and a model of this depth."""
    if not wide:
        return ModelConfig.dropout
    return DEEP_DROPOUT if n_layers >= DEEP_LAYERS else WIDE_DROPOUT


def serve_len_for(n_layers: int) -> int:
    """The served history length for a model of this depth."""
    return DEEP_SERVE_LEN if n_layers >= DEEP_LAYERS else ModelConfig.serve_len


def apply(
    shape: DataShape, auto: frozenset[str], model: ModelConfig
) -> tuple[ModelConfig, dict[str, Any]]:
    """The config with the ``auto`` settings chosen from ``shape``, and what was chosen."""
    unknown = sorted(auto - set(ADAPTABLE))
    if unknown:
        raise ValueError(f"cannot choose {unknown} from the data; only {list(ADAPTABLE)}")
    chosen = {k: v for k, v in choose(shape).items() if k in auto}
    # Served length and dropout follow the depth given, not only the one chosen.
    layers = chosen.get("n_layers", model.n_layers)
    if "serve_len" in chosen:
        chosen["serve_len"] = serve_len_for(layers)
    if "dropout" in chosen:
        chosen["dropout"] = dropout_for(is_wide(shape), layers)
    # A serve_len above max_len reads the whole max_len (ModelConfig.inference_len).
    return dataclasses.replace(model, **chosen), chosen
