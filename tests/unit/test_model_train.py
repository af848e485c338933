"""The network and training: a known-answer toy task, padding invariance, losses, resume."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from torch.nn import functional

from recstream.model import losses, sasrec
from recstream.model.config import ModelConfig, TrainConfig
from recstream.model.data import Interactions
from recstream.model.losses import next_item_loss
from recstream.model.sasrec import SASRec
from recstream.model.training import Trained, train

N_ITEMS = 12
SMALL = ModelConfig(max_len=8, dim=32, n_layers=1, n_heads=2, dropout=0.0)


def cyclic_interactions(n_users: int = 48, length: int = 10, seed: int = 0) -> Interactions:
    """Each user walks the cycle 1 -> 2 -> ... -> 12 -> 1 from a random start."""
    rng = np.random.default_rng(seed)
    rows = []
    for user in range(n_users):
        start = int(rng.integers(N_ITEMS))
        rows += [(f"u{user}", f"i{(start + t) % N_ITEMS}", t, "click") for t in range(length)]
    return Interactions.from_rows(rows)


def _fit(config: TrainConfig, **kwargs: object) -> Trained:
    return train(cyclic_interactions(), SMALL, config, progress=False, **kwargs)  # type: ignore[arg-type]


FAST = TrainConfig(epochs=30, batch_size=16, lr=1e-2, schedule="constant", eval_every=10, threads=1)


@pytest.mark.parametrize("loss", ["ce", "sampled", "gbce"])
def test_known_answer_next_item_is_ranked_first(loss: str) -> None:
    trained = _fit(TrainConfig(**{**FAST.__dict__, "loss": loss, "negatives": 6}))
    index = trained.vocab.index
    sequences = [[index[f"i{(s + t) % N_ITEMS}"] for t in range(5)] for s in range(N_ITEMS)]
    with torch.no_grad():
        users = trained.model.eval().user_vectors(torch.tensor(sequences))  # [12, D]
        scores = users @ trained.model.item_embeddings().T  # [12, n_items]
        # History excluded, as evaluation and the streams do (ce is trained that way).
        scores.scatter_(1, torch.tensor(sequences) - 1, float("-inf"))
        top = scores.argmax(dim=1) + 1
    expected = [index[f"i{(s + 5) % N_ITEMS}"] for s in range(N_ITEMS)]
    assert top.tolist() == expected
    assert trained.best_ndcg > 0.9


@pytest.mark.parametrize(
    ("block", "positions", "heads", "bias"),
    [("pre", "newest", 2, False), ("kang", "oldest", 2, False), ("kang", "newest", 1, False),
     ("ligr", "newest", 2, False), ("hstu", "newest", 2, False), ("hstu", "newest", 1, False),
     ("kang", "newest", 2, True), ("pre", "oldest", 1, True)],
)  # fmt: skip
def test_user_vectors_match_forward_and_ignore_padding(
    block: str, positions: str, heads: int, bias: bool
) -> None:
    torch.manual_seed(0)
    config = ModelConfig(n_items=20, max_len=6, dim=16, n_heads=heads, block=block,
                         positions=positions, serve_len=0, distance_bias=bias)  # fmt: skip
    model = SASRec(config).eval()
    with torch.no_grad():  # HSTU's bias by distance starts at zero: make it matter
        for name, parameter in model.named_parameters():
            if "distance_bias" in name:
                parameter.normal_()
    seq = torch.tensor([[3, 4, 5, 0, 0], [1, 2, 3, 4, 5]])
    with torch.no_grad():
        full = model(seq)  # [2, 5, D]
        vectors = model.user_vectors(seq)
        alone = model.user_vectors(torch.tensor([[3, 4, 5]]))
    torch.testing.assert_close(vectors[0], full[0, 2])
    torch.testing.assert_close(vectors[1], full[1, 4])
    torch.testing.assert_close(vectors[0], alone[0])


def test_cosine_scores_are_cosines_over_the_temperature() -> None:
    torch.manual_seed(0)
    model = SASRec(ModelConfig(n_items=20, max_len=6, dim=16, temperature=0.1)).eval()
    raw = SASRec(ModelConfig(n_items=20, max_len=6, dim=16)).eval()
    raw.load_state_dict(model.state_dict())
    seq = torch.tensor([[3, 4, 5, 0], [1, 2, 3, 4]])
    with torch.no_grad():
        scores = model.user_vectors(seq) @ model.item_embeddings().T  # [2, 20]
        users, items = raw.user_vectors(seq), raw.item_embeddings()
    cosines = functional.cosine_similarity(users[:, None], items[None], dim=-1)  # [2, 20]
    torch.testing.assert_close(scores, cosines / 0.1)
    with pytest.raises(ValueError, match="temperature"):
        ModelConfig(temperature=-1.0)


def test_distance_bias_changes_attention_and_old_configs_load_without_it() -> None:
    torch.manual_seed(0)
    model = SASRec(ModelConfig(n_items=20, max_len=6, dim=16, distance_bias=True)).eval()
    seq = torch.tensor([[3, 4, 5, 6, 7, 0], [1, 2, 3, 4, 5, 6]])
    with torch.no_grad():
        before = model(seq)
        for block in model.blocks:
            block.distance_bias.weight.normal_()
        after = model(seq)
    assert not torch.allclose(before, after)  # the bias reaches the scores
    torch.testing.assert_close(before[:, 0], after[:, 0])  # one key: softmax ignores its bias
    # A config saved before the option existed loads without it: the old model is unchanged.
    assert not ModelConfig.from_dict({"block": "kang"}).distance_bias


def test_cosine_model_learns_the_known_answer() -> None:
    config = ModelConfig(**{**SMALL.__dict__, "temperature": 0.1})
    trained = train(cyclic_interactions(), config, FAST, progress=False)
    assert trained.best_ndcg > 0.9


@pytest.mark.parametrize("heads", [1, 2, 4])
def test_heads_split_and_merge_as_reshape_and_transpose(heads: int) -> None:
    y = torch.randn(3, 5, 8)  # [B, T, D]
    split = sasrec._split_heads(y, heads)
    torch.testing.assert_close(split, y.view(3, 5, heads, 8 // heads).transpose(1, 2))
    torch.testing.assert_close(sasrec._merge_heads(split, heads), y)


def test_losses_weight_targets() -> None:
    torch.manual_seed(0)
    hidden, items = torch.randn(4, 8), torch.randn(10, 8)
    targets = torch.tensor([0, 1, 2, 3])
    ones = next_item_loss("ce", hidden, items, targets, torch.ones(4))
    doubled = next_item_loss("ce", hidden, items, targets, torch.full((4,), 2.0))
    torch.testing.assert_close(ones, doubled)  # a weighted mean
    only_first = next_item_loss("ce", hidden, items, targets, torch.tensor([1.0, 0, 0, 0]))
    expected = torch.nn.functional.cross_entropy(hidden[:1] @ items.T, targets[:1])
    torch.testing.assert_close(only_first, expected)
    with pytest.raises(ValueError, match="unknown loss"):
        next_item_loss("hinge", hidden, items, targets, torch.ones(4))


def test_ce_leaves_excluded_items_out_of_the_softmax() -> None:
    torch.manual_seed(0)
    hidden = torch.randn(2, 8, requires_grad=True)
    items = torch.randn(6, 8, requires_grad=True)
    targets = torch.tensor([0, 4])
    exclude = torch.zeros(2, 6, dtype=torch.bool)
    exclude[0, [2, 5]] = True
    exclude[1, 1] = True
    loss = next_item_loss("ce", hidden, items, targets, torch.ones(2), exclude=exclude)
    logits = hidden @ items.T
    kept_0, kept_1 = logits[0, [0, 1, 3, 4]], logits[1, [0, 2, 3, 4, 5]]
    # Targets 0 and 4 are at positions 0 and 3 of the kept logits.
    expected = -(torch.log_softmax(kept_0, 0)[0] + torch.log_softmax(kept_1, 0)[3]) / 2
    torch.testing.assert_close(loss, expected)
    # With only row 0 weighted, items it excludes get no gradient at all.
    only_row_0 = torch.tensor([1.0, 0.0])
    next_item_loss("ce", hidden, items, targets, only_row_0, exclude=exclude).backward()
    assert items.grad is not None and torch.isfinite(items.grad).all()
    assert torch.count_nonzero(items.grad[[2, 5]]) == 0
    assert torch.count_nonzero(items.grad[[0, 1, 3, 4]]) > 0


@pytest.mark.parametrize("exclude_some", [False, True])
def test_bfloat16_ce_matches_float32_loss_and_gradients(exclude_some: bool) -> None:
    # More rows than one chunk, so the chunking is exercised too.
    gen = torch.Generator().manual_seed(0)
    n, n_items = losses.CHUNK + 37, 300
    hidden0 = torch.randn(n, 16, generator=gen) * 0.5
    items0 = torch.randn(n_items, 16, generator=gen) * 0.5
    targets = torch.randint(0, n_items, (n,), generator=gen)
    weights = torch.rand(n, generator=gen) + 0.5
    exclude = None
    if exclude_some:
        exclude = torch.rand(n, n_items, generator=gen) < 0.2
        exclude[torch.arange(n), targets] = False  # the target is never excluded
    results = []
    for precision in ("float32", "bfloat16"):
        hidden = hidden0.clone().requires_grad_()
        items = items0.clone().requires_grad_()
        loss = next_item_loss(
            "ce", hidden, items, targets, weights, exclude=exclude, precision=precision
        )
        (loss * 3.0).backward()  # the upstream gradient scales both
        results.append((loss.detach(), hidden.grad, items.grad))
    (loss32, h32, i32), (loss16, h16, i16) = results
    assert h32 is not None and h16 is not None and i32 is not None and i16 is not None
    torch.testing.assert_close(loss16, loss32, rtol=5e-3, atol=0)
    torch.testing.assert_close(h16, h32, rtol=0, atol=2e-2 * float(h32.abs().max()))
    torch.testing.assert_close(i16, i32, rtol=0, atol=2e-2 * float(i32.abs().max()))
    if exclude is not None:
        # An item every row excludes gets no gradient from the softmax at all.
        assert torch.count_nonzero(i16[exclude.all(dim=0)]) == 0


def test_precision_is_checked_and_resolved() -> None:
    with pytest.raises(ValueError, match="precision 'half' unknown"):
        TrainConfig(precision="half")
    assert losses.resolve_precision("float32") == "float32"
    native = losses.native_bfloat16()
    assert losses.resolve_precision("auto") == ("bfloat16" if native else "float32")


def test_dropout_masks_are_seeded_scaled_and_off_in_eval() -> None:
    model = SASRec(ModelConfig(n_items=N_ITEMS, max_len=8, dim=32, dropout=0.2)).train()
    x = torch.ones(64, 8, 32)
    model.seed_dropout([1, 2])
    first = model.dropout(x)
    model.seed_dropout([1, 2])
    torch.testing.assert_close(model.dropout(x), first)  # the same seed, the same masks
    dropped = float((first == 0).float().mean())
    assert abs(dropped - 51 / 256) < 0.01  # 0.2 rounds to 51/256
    assert abs(float(first.mean()) - 1.0) < 0.02  # kept values are scaled: the mean holds
    assert torch.equal(model.eval().dropout(x), x)
    nearly_all = SASRec(ModelConfig(n_items=N_ITEMS, max_len=8, dim=32, dropout=0.999)).train()
    assert torch.isfinite(nearly_all.dropout(x)).all()


def test_training_is_deterministic_and_resume_continues_exactly(tmp_path: Path) -> None:
    # A constant rate: the cosine schedule's length is the epoch count, which differs here.
    short = TrainConfig(
        epochs=4, batch_size=16, lr=1e-2, schedule="constant", eval_every=2, threads=1
    )
    straight = _fit(short)
    again = _fit(short)
    for a, b in zip(straight.model.parameters(), again.model.parameters(), strict=True):
        torch.testing.assert_close(a, b)
    half = TrainConfig(**{**short.__dict__, "epochs": 2})
    _fit(half, checkpoint_dir=tmp_path)
    resumed = _fit(short, checkpoint_dir=tmp_path, resume=True)
    assert resumed.epochs_run == 4
    for a, b in zip(straight.model.parameters(), resumed.model.parameters(), strict=True):
        torch.testing.assert_close(a, b)


def test_resume_reproduces_dropout_and_bfloat16_training(tmp_path: Path) -> None:
    shape = ModelConfig(max_len=8, dim=32, n_layers=1, n_heads=2, dropout=0.3)
    config = TrainConfig(
        epochs=4, batch_size=16, schedule="constant", eval_every=2, threads=1,
        precision="bfloat16",
    )  # fmt: skip
    data = cyclic_interactions()
    straight = train(data, shape, config, progress=False)
    assert straight.train_config.precision == "bfloat16"
    half = TrainConfig(**{**config.__dict__, "epochs": 2})
    train(data, shape, half, progress=False, checkpoint_dir=tmp_path)
    resumed = train(data, shape, config, progress=False, checkpoint_dir=tmp_path, resume=True)
    for a, b in zip(straight.model.parameters(), resumed.model.parameters(), strict=True):
        torch.testing.assert_close(a, b)


def test_early_stopping_counts_only_the_second_half_of_a_cosine_schedule() -> None:
    # A rate too small to move any float32 weight: validation never improves after epoch 1.
    frozen = {"epochs": 8, "batch_size": 16, "lr": 1e-12, "eval_every": 1, "patience": 1}
    cosine = _fit(TrainConfig(**frozen, threads=1))  # type: ignore[arg-type]
    assert cosine.best_epoch == 1 and cosine.stopped.startswith("early stop")
    # Patience 1 counts from the first validation past the midpoint: epoch 5 (position
    # 4.x / 8), which stops the run.
    assert cosine.epochs_run == 5
    constant = _fit(TrainConfig(**frozen, schedule="constant", threads=1))  # type: ignore[arg-type]
    assert constant.epochs_run == 2 and constant.best_epoch == 1


def skewed_interactions(n_users: int = 64, length: int = 8, seed: int = 0) -> Interactions:
    """Histories drawn from 30 items of Zipf-like popularity: a bestseller list is strong."""
    rng = np.random.default_rng(seed)
    p = 1.0 / np.arange(1, 31)
    rows = []
    for user in range(n_users):
        items = rng.choice(30, size=length, replace=False, p=p / p.sum())
        rows += [(f"u{user}", f"i{item}", t, "click") for t, item in enumerate(items)]
    return Interactions.from_rows(rows)


def test_a_model_that_did_not_learn_is_reported_under_the_popularity_floor(
    caplog: pytest.LogCaptureFixture,
) -> None:
    frozen = TrainConfig(epochs=1, batch_size=16, lr=1e-12, eval_every=1, threads=1)
    with caplog.at_level("WARNING", logger="recstream.model.training"):
        stuck = train(skewed_interactions(), SMALL, frozen, progress=False)
    assert 0.0 <= stuck.best_ndcg <= stuck.popularity_ndcg <= 1.0
    assert "no better than most-popular" in caplog.text
    caplog.clear()
    learned = _fit(FAST)  # the cyclic walk: the model ranks the next item first
    assert 0.0 < learned.popularity_ndcg < learned.best_ndcg
    assert "most-popular" not in caplog.text


def test_resume_refuses_a_different_configuration(tmp_path: Path) -> None:
    _fit(TrainConfig(epochs=2, batch_size=16, eval_every=2, threads=1), checkpoint_dir=tmp_path)
    other = TrainConfig(epochs=2, batch_size=8, eval_every=2, threads=1)
    with pytest.raises(ValueError, match="different dataset or configuration"):
        _fit(other, checkpoint_dir=tmp_path, resume=True)


def test_resuming_a_finished_cosine_run_returns_the_same_model(tmp_path: Path) -> None:
    cosine = TrainConfig(epochs=4, batch_size=16, lr=1e-2, eval_every=2, threads=1)
    straight = _fit(cosine)
    _fit(cosine, checkpoint_dir=tmp_path)
    # A later resume of a finished run continues nothing and returns the same best model.
    resumed = _fit(cosine, checkpoint_dir=tmp_path, resume=True)
    for a, b in zip(straight.model.parameters(), resumed.model.parameters(), strict=True):
        torch.testing.assert_close(a, b)


def test_weight_decay_shrinks_the_weights() -> None:
    config = TrainConfig(epochs=2, batch_size=16, lr=1e-2, schedule="constant", threads=1)
    plain = _fit(config).model.items.weight.norm()
    decayed = _fit(TrainConfig(**{**config.__dict__, "weight_decay": 5.0})).model
    assert decayed.items.weight.norm() < 0.8 * plain
    with pytest.raises(ValueError, match="weight_decay"):
        TrainConfig(weight_decay=-0.1)


def test_bad_configs_fail_clearly() -> None:
    with pytest.raises(ValueError, match="multiple of n_heads"):
        ModelConfig(dim=10, n_heads=3)
    with pytest.raises(ValueError, match="loss"):
        TrainConfig(loss="mse")
