"""Export and verified loading, tamper detection, and the encoder's contract with streams."""

from __future__ import annotations

import dataclasses
import json
import tempfile
from pathlib import Path

import numpy as np
import pytest
import torch

from recstream.artifacts import ArtifactError
from recstream.model.artifact import EMBEDDINGS, ITEM_IDS, WEIGHTS, load_artifact, save_artifact
from recstream.model.config import ModelConfig, TrainConfig
from recstream.model.data import Interactions
from recstream.model.encoder import Encoder
from recstream.model.training import Trained, train

MAX_LEN = 6


@pytest.fixture(scope="module")
def trained() -> Trained:
    rng = np.random.default_rng(1)
    rows = [(f"u{u}", f"item-{int(i)}", t, "click") for u in range(30) for t, i in
            enumerate(rng.integers(0, 25, 9))]  # fmt: skip
    config = ModelConfig(max_len=MAX_LEN, dim=16, n_layers=2, n_heads=2, dropout=0.1)
    schedule = TrainConfig(epochs=2, batch_size=8, eval_every=1, threads=1)
    return train(Interactions.from_rows(rows), config, schedule, progress=False)


@pytest.fixture
def version(trained: Trained, tmp_path: Path) -> Path:
    return save_artifact(trained, tmp_path / "artifacts", {"name": "toy", "path": ""})


def test_round_trip(trained: Trained, version: Path) -> None:
    assert version.name == "v1"
    manifest = json.loads((version / "manifest.json").read_text())
    assert manifest["kind"] == "sasrec" and "created" in manifest and "dataset" in manifest
    loaded = load_artifact(version.parent)  # the root resolves to the newest version
    assert loaded.item_ids == trained.vocab.item_ids
    for name, tensor in trained.model.state_dict().items():
        torch.testing.assert_close(loaded.model.state_dict()[name], tensor)
    embeddings = np.load(version / EMBEDDINGS)
    assert embeddings.dtype == np.float32
    assert embeddings.shape == (len(trained.vocab), 16)  # no padding row
    assert json.loads((version / ITEM_IDS).read_text()) == list(trained.vocab.item_ids)
    assert json.loads((version / "metrics.json").read_text())["epochs"] == 2


def test_extra_files_are_allowed(version: Path) -> None:
    (version / "index").mkdir()
    (version / "index" / "faiss.index").write_bytes(b"x")
    load_artifact(version)


@pytest.mark.parametrize("name", [WEIGHTS, EMBEDDINGS, ITEM_IDS, "config.json"])
def test_flipped_byte_is_refused(version: Path, name: str) -> None:
    path = version / name
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0x01
    path.write_bytes(bytes(data))
    with pytest.raises(ArtifactError, match=name):
        load_artifact(version)


def test_truncated_file_is_refused(version: Path) -> None:
    path = version / WEIGHTS
    path.write_bytes(path.read_bytes()[:-10])
    with pytest.raises(ArtifactError, match="truncated"):
        Encoder.load(version)


def test_encoder_agrees_with_training_forward_and_inner_product(
    trained: Trained, version: Path
) -> None:
    encoder = Encoder.load(version, threads=1)
    assert (encoder.version, encoder.dim) == ("v1", 16)
    ids = encoder.item_ids
    histories = [[ids[3], ids[1], ids[4]], [ids[0]], list(ids[:MAX_LEN])]
    vectors = encoder.encode(histories)  # [3, 16]
    index = trained.vocab.index
    model = trained.model.eval()
    for row, history in enumerate(histories):
        seq = torch.tensor([[index[i] for i in history]])
        with torch.no_grad():
            hidden = model(seq)[0, -1]  # the training-time forward pass
            scores = hidden @ model.item_embeddings().T
        np.testing.assert_allclose(vectors[row], hidden.numpy(), rtol=1e-5, atol=1e-5)
        # The exported rows reproduce the model's scores by inner product.
        ip = encoder.item_embeddings() @ vectors[row]
        np.testing.assert_allclose(ip, scores.numpy(), rtol=1e-4, atol=1e-4)


def test_bfloat16_encoder_ranks_like_float32(version: Path) -> None:
    exact, half = Encoder.load(version), Encoder.load(version, dtype="bfloat16")
    assert (exact.dtype, half.dtype) == ("float32", "bfloat16")
    ids = exact.item_ids
    histories = [list(ids[i : i + MAX_LEN]) for i in range(len(ids) - MAX_LEN)]
    a, b = exact.encode(histories), half.encode(histories)
    assert b.dtype == np.float32
    cosine = (a * b).sum(1) / np.linalg.norm(a, axis=1) / np.linalg.norm(b, axis=1)
    assert cosine.min() > 0.99  # bfloat16 keeps 8 bits of mantissa
    embeddings = exact.item_embeddings()
    top_a = np.argsort(-(a @ embeddings.T), axis=1)[:, :3]
    top_b = np.argsort(-(b @ embeddings.T), axis=1)[:, :3]
    assert np.mean([len(set(x) & set(y)) / 3 for x, y in zip(top_a, top_b, strict=True)]) > 0.8
    with pytest.raises(ValueError, match="float32 or bfloat16"):
        Encoder.load(version, dtype="float16")


def test_encoder_skips_unknown_truncates_and_flags_cold_users(version: Path) -> None:
    encoder = Encoder.load(version)
    ids = encoder.item_ids
    long = [ids[i % len(ids)] for i in range(20)]
    out = encoder.encode([["nope", ids[2], "??"], [ids[2]], [], ["nope"], long, long[-MAX_LEN:]])
    assert out.dtype == np.float32 and out.shape == (6, 16)
    np.testing.assert_allclose(out[0], out[1], atol=1e-6)  # unknown ids skipped
    assert not out[2].any() and not out[3].any()  # nothing known: zero vector
    np.testing.assert_allclose(out[4], out[5], atol=1e-6)  # only the last max_len count
    assert encoder.has_history([[], ["nope"], [ids[0]]]).tolist() == [False, False, True]
    assert encoder.known_counts([["nope", ids[0], ids[1]]]).tolist() == [2]
    batch = encoder.encode([long[:k] for k in range(1, 20)])
    for k in (1, 7, 19):  # grouping by length inside encode() changes nothing
        np.testing.assert_allclose(batch[k - 1], encoder.encode([long[:k]])[0], atol=1e-5)


def test_served_history_length_reads_the_newest_items_only(trained: Trained) -> None:
    with pytest.raises(ValueError, match="serve_len"):
        ModelConfig(max_len=4, serve_len=-1)
    assert ModelConfig(max_len=4, serve_len=50).inference_len == 4  # at most max_len
    short = dataclasses.replace(trained, model_config=dataclasses.replace(
        trained.model_config, serve_len=3))  # fmt: skip
    with tempfile.TemporaryDirectory() as tmp:
        encoder = Encoder.load(save_artifact(short, Path(tmp), {"name": "toy", "path": ""}))
        assert encoder.max_len == 3
        history = [f"item-{i}" for i in (3, 1, 4, 1, 5, 9)]
        full, newest = encoder.encode([history, history[-3:]])
        np.testing.assert_allclose(full, newest, rtol=1e-6)


def test_configs_written_before_block_and_serve_len_keep_their_meaning() -> None:
    old = {"n_items": 9, "max_len": 100, "dim": 16, "n_layers": 2, "n_heads": 2, "dropout": 0.2}
    config = ModelConfig.from_dict(old)
    assert (config.block, config.inference_len) == ("pre", 100)
