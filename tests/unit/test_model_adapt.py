"""Settings chosen from the data: the rules, and train() applying only the ones left open."""

from __future__ import annotations

import numpy as np
import pytest

from recstream.model import adapt
from recstream.model.config import ModelConfig, TrainConfig
from recstream.model.data import Interactions
from recstream.model.training import train


def shape_of(lengths: list[int], items: int) -> adapt.DataShape:
    return adapt.data_shape(tuple(np.arange(n) for n in lengths), items)


def test_large_dense_data_gets_the_wide_model() -> None:
    # ML-1M-like: long histories, 564,000 interactions, ~270 per item.
    chosen = adapt.choose(shape_of([40, 100, 300, 500] * 600, 2100))
    assert chosen == {"max_len": 100, "dim": 128, "dropout": 0.3, "n_layers": 4, "serve_len": 40}
    # As many interactions spread over five times the items: too sparse to widen.
    sparse = adapt.choose(shape_of([40, 100, 300, 500] * 600, 10500))
    assert sparse == {"max_len": 100, "dim": 64, "dropout": 0.1, "n_layers": 2, "serve_len": 50}


def test_short_histories_get_short_windows() -> None:
    # A shop: 5-10 interactions per user.
    shape = shape_of([5, 6, 8, 8, 8] * 300, 400)
    assert shape.length_p90 == 8 and shape.per_item == pytest.approx(26.25)
    assert adapt.choose(shape) == {
        "max_len": 10, "dim": 64, "dropout": 0.1, "n_layers": 2, "serve_len": 50,
    }  # fmt: skip
    assert adapt.choose(shape_of([20, 25] * 10, 10))["max_len"] == 30  # p90 25 (+1) -> 30


def test_apply_changes_only_what_is_left_open() -> None:
    shape = shape_of([5, 8] * 100, 50)
    model, chosen = adapt.apply(shape, frozenset({"max_len"}), ModelConfig(dropout=0.4))
    assert chosen == {"max_len": 10}
    assert model == ModelConfig(max_len=10, dropout=0.4)
    with pytest.raises(ValueError, match=r"cannot choose \['n_heads'\]"):
        adapt.apply(shape, frozenset({"n_heads"}), ModelConfig())


def test_the_served_length_and_dropout_follow_the_depth_given_or_chosen() -> None:
    wide = shape_of([40, 100, 300, 500] * 600, 2100)
    both = frozenset({"serve_len", "dropout"})
    model, chosen = adapt.apply(wide, both, ModelConfig(n_layers=2))
    assert chosen == {"serve_len": 50, "dropout": 0.2}  # 2 layers given
    assert (model.serve_len, model.dropout) == (50, 0.2)
    model, chosen = adapt.apply(wide, both | {"n_layers"}, ModelConfig())
    assert chosen == {"n_layers": 4, "serve_len": 40, "dropout": 0.3}
    assert (model.inference_len, model.dropout) == (40, 0.3)
    small = shape_of([5, 8] * 100, 50)
    model, chosen = adapt.apply(small, frozenset({"max_len", "serve_len"}), ModelConfig(n_layers=4))
    assert chosen == {"max_len": 10, "serve_len": 40}  # 4 layers given: the shorter one
    assert model.inference_len == 10  # never more than max_len


def test_train_records_what_it_chose() -> None:
    rng = np.random.default_rng(0)
    rows = [(f"u{u}", f"i{rng.integers(30)}", t, "click") for u in range(60) for t in range(7)]
    trained = train(
        Interactions.from_rows(rows),
        ModelConfig(dim=16, n_layers=1),
        TrainConfig(epochs=1, threads=1),
        progress=False,
        auto=frozenset(adapt.ADAPTABLE),
    )
    assert trained.adapted["chosen"] == {
        "max_len": 10, "dim": 64, "dropout": 0.1, "n_layers": 2, "serve_len": 50,
    }  # fmt: skip
    assert trained.adapted["shape"]["length_p90"] == 5.0  # 7 items, 2 held out
    assert trained.model_config.max_len == 10 and trained.model_config.dim == 64
