"""Warm start: the vocabulary grows at the end, old rows and all other weights carry over."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest
import torch

from recstream.contract import DEFAULT_EVENT_WEIGHTS
from recstream.model.artifact import load_artifact, save_artifact
from recstream.model.config import ModelConfig, TrainConfig
from recstream.model.data import Interactions
from recstream.model.sasrec import SASRec
from recstream.model.sequences import Vocabulary, build_sequences, extend_vocabulary
from recstream.model.training import train
from recstream.model.warm import copy_weights, warm_config

TINY = ModelConfig(max_len=6, dim=8, n_layers=1, n_heads=2, dropout=0.0)
QUICK = TrainConfig(epochs=1, batch_size=8, eval_every=1, threads=1)


def rows(items: list[str], users: int = 6) -> Interactions:
    return Interactions.from_rows(
        [(f"u{u}", items[(u + t) % len(items)], t, "click") for u in range(users) for t in range(5)]
    )


def test_extend_vocabulary_keeps_old_rows_and_appends_new_items_sorted() -> None:
    old = Vocabulary(("b", "10", "a"))
    assert extend_vocabulary(old, ["a", "11", "z", "2", "b", "z"]).item_ids == (
        "b", "10", "a", "2", "11", "z",
    )  # fmt: skip


def test_build_sequences_drops_or_extends_unknown_items() -> None:
    data = Interactions.from_rows([("u", "x", 1, "click"), ("u", "new", 2, "click")])
    old = Vocabulary(("x", "y"))
    dropped = build_sequences(data, DEFAULT_EVENT_WEIGHTS, old)
    assert dropped.vocab == old and dropped.items[0].tolist() == [1]
    extended = build_sequences(data, DEFAULT_EVENT_WEIGHTS, old, extend=True)
    assert extended.vocab.item_ids == ("x", "y", "new")
    assert extended.items[0].tolist() == [1, 3]


def test_copy_weights_copies_old_rows_exactly_and_keeps_fresh_new_rows() -> None:
    torch.manual_seed(1)
    old = SASRec(dataclasses.replace(TINY, n_items=5))
    torch.manual_seed(2)
    new = SASRec(dataclasses.replace(TINY, n_items=8))
    fresh = new.items.weight.detach().clone()
    copy_weights(new, old.state_dict(), n_old_items=5)
    for name, tensor in new.state_dict().items():
        if name != "items.weight":
            torch.testing.assert_close(tensor, old.state_dict()[name], rtol=0, atol=0)
    table = new.items.weight.detach()
    assert torch.equal(table[:6], old.items.weight.detach())  # padding + 5 old items
    assert torch.equal(table[6:], fresh[6:])  # new items: the new model's own init
    assert table[6:].abs().sum() > 0


def test_copy_weights_refuses_another_shape() -> None:
    old = SASRec(dataclasses.replace(TINY, n_items=5))
    wider = SASRec(dataclasses.replace(TINY, n_items=8, dim=16))
    with pytest.raises(ValueError, match="cannot warm-start"):
        copy_weights(wider, old.state_dict(), n_old_items=5)
    with pytest.raises(ValueError, match="item table"):
        copy_weights(SASRec(dataclasses.replace(TINY, n_items=3)), old.state_dict(), 5)


def test_a_model_without_the_bias_by_distance_gains_it_at_zero_and_computes_the_same() -> None:
    old_config = dataclasses.replace(TINY, n_items=5, distance_bias=False)
    config = warm_config(old_config, None)
    assert config == dataclasses.replace(old_config, distance_bias=True)
    torch.manual_seed(1)
    old = SASRec(old_config).eval()
    new = SASRec(config).eval()
    added = copy_weights(new, old.state_dict(), n_old_items=5)
    assert added == ["blocks.0.distance_bias.weight"]
    seq = torch.tensor([[0, 0, 1, 2, 3, 4], [0, 0, 0, 0, 5, 1], [1, 2, 3, 4, 5, 1]])
    with torch.no_grad():
        torch.testing.assert_close(new.user_vectors(seq), old.user_vectors(seq))
    # Turned off on request it stays off; one already learned is kept whatever is asked.
    no_bias = dataclasses.replace(TINY, distance_bias=False)
    assert not warm_config(old_config, no_bias).distance_bias
    assert warm_config(dataclasses.replace(old_config, distance_bias=True), no_bias).distance_bias
    # Only zero-started parameters may be added: a learned table the artifact lacks may not.
    learned = SASRec(config)
    with torch.no_grad():
        learned.blocks[0].distance_bias.weight.fill_(0.5)  # type: ignore[union-attr]
    with pytest.raises(ValueError, match="parameter names differ"):
        copy_weights(learned, old.state_dict(), n_old_items=5)


def test_warm_config_keeps_the_artifact_shape_and_names_a_mismatch() -> None:
    old = dataclasses.replace(TINY, n_items=5)
    assert warm_config(old, None) == old
    assert warm_config(old, dataclasses.replace(TINY, dropout=0.3)).dropout == 0.3
    with pytest.raises(ValueError, match=r"dim 8 in the artifact, 16 requested"):
        warm_config(old, dataclasses.replace(TINY, dim=16))
    with pytest.raises(ValueError, match="max_len"):
        warm_config(old, dataclasses.replace(TINY, max_len=7))


def test_train_from_an_artifact_extends_the_vocabulary_and_starts_from_its_weights(
    tmp_path: Path,
) -> None:
    first = train(rows(["a", "b", "c", "d"]), TINY, QUICK, progress=False)
    loaded = load_artifact(save_artifact(first, tmp_path, {"name": "test"}))
    # Zero epochs of change: a learning rate so small the copied weights barely move.
    still = dataclasses.replace(QUICK, lr=1e-12)
    second = train(rows(["c", "e", "a", "f"]), None, still, progress=False, init_from=loaded)
    assert second.vocab.item_ids == ("a", "b", "c", "d", "e", "f")
    assert second.model_config == dataclasses.replace(loaded.config, n_items=6)
    torch.testing.assert_close(
        second.model.items.weight.detach()[:5], loaded.model.items.weight.detach()
    )
    assert second.warm_start == {
        "from": str(loaded.path), "old_items": 4, "new_items": 2, "added": [],
    }  # fmt: skip
    with pytest.raises(ValueError, match="another shape"):
        train(rows(["a"]), dataclasses.replace(TINY, dim=16), QUICK, init_from=loaded)
