"""Warm start: a new model that begins where a trained artifact left off.

The new vocabulary is the artifact's item ids in their row order followed by the items it has
never seen (:func:`recstream.model.sequences.extend_vocabulary`), so row ``i`` of the old item
table is row ``i`` of the new one. Every other parameter has the same shape in both models and
is copied as is; the rows of new items keep the new model's fresh initialisation.

An artifact written before the bias by distance existed gains it on a warm start: the new
parameters start at zero, so the warm model computes exactly what the artifact did until
training moves them (the upgrade needs no cold retrain).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence

import torch

from recstream.model.config import ModelConfig
from recstream.model.sasrec import SASRec
from recstream.model.sequences import Vocabulary

# The fields that fix the parameters' shapes (n_items aside, which only grows).
SHAPE_FIELDS = ("max_len", "dim", "n_layers", "n_heads")
ITEM_TABLE = "items.weight"  # [n_items + 1, D]; row 0 is padding
# Parameters a warm start may add to an older artifact's model: zero-initialised, so adding
# them leaves the model's output unchanged.
ZERO_STARTED = ("distance_bias.weight",)


def warm_config(old: ModelConfig, requested: ModelConfig | None) -> ModelConfig:
    """The artifact's config (shape and ``serve_len``); ``requested`` may change the dropout,
    never the shape. A bias by distance is added where the artifact has none, unless
    ``requested`` turns it off (one already learned is kept)."""
    bias = old.distance_bias or (requested or ModelConfig()).distance_bias
    if requested is None:
        return dataclasses.replace(old, distance_bias=bias)
    differ = [
        f"{name} {getattr(old, name)} in the artifact, {getattr(requested, name)} requested"
        for name in SHAPE_FIELDS
        if getattr(old, name) != getattr(requested, name)
    ]
    if differ:
        raise ValueError(
            "cannot warm-start from an artifact of another shape (" + "; ".join(differ) + "); "
            "train cold, or leave the model's shape to the artifact"
        )
    return dataclasses.replace(old, dropout=requested.dropout, distance_bias=bias)


def check_prefix(old_ids: Sequence[str], vocab: Vocabulary) -> None:
    """The old rows must map 1:1: ``vocab`` starts with ``old_ids`` in the same order."""
    if tuple(vocab.item_ids[: len(old_ids)]) != tuple(old_ids):
        raise ValueError("the new vocabulary does not start with the artifact's item ids")


def copy_weights(
    model: SASRec, old_state: Mapping[str, torch.Tensor], n_old_items: int
) -> list[str]:
    """Load ``old_state`` (a model with ``n_old_items`` items) into ``model`` in place; return
    the names of the zero-started parameters ``model`` has and ``old_state`` lacks.

    Item rows 0..n_old_items (padding and the old items) are copied exactly; rows after them
    are left as ``model`` initialised them. Raises ValueError when the two models differ in
    anything but the number of items and those added parameters.
    """
    state = {name: tensor.detach().clone() for name, tensor in model.state_dict().items()}
    added = sorted(name for name in set(state) - set(old_state) if _zero_started(name, state))
    expected = set(state) - set(added)
    if expected != set(old_state):
        missing = sorted(expected ^ set(old_state))
        raise ValueError(f"cannot warm-start: parameter names differ ({missing[:5]})")
    for name, target in state.items():
        if name in added:
            continue
        source = old_state[name]
        if name == ITEM_TABLE:
            rows = n_old_items + 1
            if tuple(source.shape) != (rows, target.shape[1]) or target.shape[0] < rows:
                raise ValueError(
                    f"cannot warm-start: item table {tuple(source.shape)} for {n_old_items} "
                    f"items does not fit the new table {tuple(target.shape)}"
                )
            target[:rows] = source
        elif source.shape != target.shape:
            raise ValueError(
                f"cannot warm-start: {name} is {tuple(source.shape)} in the artifact, "
                f"{tuple(target.shape)} in the new model"
            )
        else:
            target.copy_(source)
    model.load_state_dict(state)
    return added


def _zero_started(name: str, state: Mapping[str, torch.Tensor]) -> bool:
    return name.endswith(ZERO_STARTED) and not state[name].any()
