"""The encoder exported at publish time: same vectors as torch (its int8 copy: the same rankings),
verified like every other file, chosen by RECSTREAM_ENCODER_BACKEND and RECSTREAM_ENCODER_DTYPE,
and never published when it does not match torch."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from recstream.artifacts import ArtifactError
from recstream.model import onnx_export
from recstream.model.config import ModelConfig, TrainConfig
from recstream.model.data import Interactions
from recstream.model.encoder import Encoder
from recstream.model.layout import ENCODER_INT8, ENCODER_ONNX
from recstream.model.onnx_encoder import OnnxEncoder
from recstream.model.serving import load_encoder
from recstream.model.training import Trained, train

MAX_LEN = 7


def _train(
    block: str, positions: str, heads: int = 2, temperature: float = 0.0, bias: bool = False
) -> Trained:
    rng = np.random.default_rng(3)
    rows = [(f"u{u}", f"item-{int(i)}", t, "click") for u in range(30) for t, i in
            enumerate(rng.integers(0, 25, 10))]  # fmt: skip
    config = ModelConfig(max_len=MAX_LEN, dim=16, n_layers=2, n_heads=heads, dropout=0.2,
                         block=block, positions=positions, temperature=temperature,
                         distance_bias=bias)  # fmt: skip
    schedule = TrainConfig(epochs=1, batch_size=8, eval_every=1, threads=1)
    return train(Interactions.from_rows(rows), config, schedule, progress=False)


@pytest.fixture(scope="module")
def trained() -> Trained:
    return _train("pre", "newest")


@pytest.fixture
def version(trained: Trained, tmp_path: Path) -> Path:
    from recstream.model.artifact import save_artifact

    return save_artifact(trained, tmp_path / "artifacts", {"name": "toy", "path": ""})


def _histories(ids: tuple[str, ...]) -> list[list[str]]:
    long = [ids[(3 * i) % len(ids)] for i in range(20)]
    return [long[:k] for k in range(1, 20)] + [["nope", ids[1]], [], ["nope"], long]


@pytest.mark.parametrize(
    ("block", "positions", "heads", "temperature", "bias"),
    [("pre", "oldest", 2, 0.0, False), ("kang", "newest", 2, 0.0, False),
     ("kang", "newest", 1, 0.0, False), ("hstu", "newest", 1, 0.0, False),
     ("kang", "newest", 1, 0.1, False), ("kang", "newest", 2, 0.0, True)],
)  # fmt: skip
def test_onnx_runtime_reproduces_torch_for_every_layout(
    block: str, positions: str, heads: int, temperature: float, bias: bool, tmp_path: Path
) -> None:
    from recstream.model.artifact import save_artifact

    trained = _train(block, positions, heads, temperature, bias)
    version = save_artifact(trained, tmp_path, {"name": "toy", "path": ""})
    torch_encoder, onnx_encoder = Encoder.load(version), OnnxEncoder.load(version)
    histories = _histories(torch_encoder.item_ids)
    want, got = torch_encoder.encode(histories), onnx_encoder.encode(histories)
    np.testing.assert_allclose(got, want, atol=1e-5)
    assert not got[-3].any() and not got[-2].any()  # nothing known: zero vector, as in torch


def test_version_publishes_the_encoder_in_its_manifest(version: Path) -> None:
    manifest = json.loads((version / "manifest.json").read_text())
    assert {ENCODER_ONNX, ENCODER_INT8} <= set(manifest["files"])
    encoder = OnnxEncoder.load(version.parent)  # the root resolves to the newest version
    reference = Encoder.load(version)
    histories = _histories(reference.item_ids)
    np.testing.assert_allclose(encoder.encode(histories), reference.encode(histories), atol=1e-5)
    assert encoder.known_counts(histories).tolist() == reference.known_counts(histories).tolist()
    assert (encoder.version, encoder.max_len, encoder.dim) == ("v1", MAX_LEN, 16)
    np.testing.assert_array_equal(encoder.item_embeddings(), reference.item_embeddings())


def test_an_altered_encoder_file_is_refused(version: Path) -> None:
    path = version / ENCODER_ONNX
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0x01
    path.write_bytes(bytes(data))
    with pytest.raises(ArtifactError, match=ENCODER_ONNX):
        OnnxEncoder.load(version)


def _top(encoder: Encoder | OnnxEncoder, histories: list[list[str]], k: int = 5) -> np.ndarray:
    scores = encoder.encode(histories) @ encoder.item_embeddings().T
    return np.argsort(-scores, axis=1, kind="stable")[:, :k]


def test_the_int8_encoder_ranks_like_torch(version: Path) -> None:
    reference, encoder = Encoder.load(version), OnnxEncoder.load(version, dtype="int8")
    assert encoder.dtype == "int8"
    histories = _histories(reference.item_ids)
    got, want = encoder.encode(histories), reference.encode(histories)
    assert not got[-3].any() and not got[-2].any()  # nothing known: zero vector, as in torch
    cosine = (got * want).sum(1) / np.maximum(
        np.linalg.norm(got, axis=1) * np.linalg.norm(want, axis=1), 1e-12
    )
    known = np.linalg.norm(want, axis=1) > 0
    assert cosine[known].min() > 0.99, cosine
    # Publishing required >= INT8_MIN_AGREEMENT of top-10 items kept on held-out histories.
    kept = [len(set(a) & set(b)) / 5 for a, b in
            zip(_top(encoder, histories), _top(reference, histories), strict=True)]  # fmt: skip
    assert np.mean(kept) >= onnx_export.INT8_MIN_AGREEMENT


def test_an_int8_vector_does_not_depend_on_the_batch(version: Path) -> None:
    """Activation scales fixed at publish time: a user alone, or batched with others of any
    length, gets the same vector to the bit."""
    encoder = OnnxEncoder.load(version, dtype="int8")
    assert encoder.batch_independent
    histories = _histories(encoder.item_ids)
    together = encoder.encode(histories)
    alone = np.concatenate([encoder.encode([h]) for h in histories])
    np.testing.assert_array_equal(together, alone)
    reversed_batch = encoder.encode(histories[::-1])[::-1]
    np.testing.assert_array_equal(together, reversed_batch)


def test_calibration_and_check_samples_are_disjoint_real_histories() -> None:
    histories = [np.arange(1, n + 2) + 100 * n for n in range(40)]
    calibration, check = onnx_export.real_samples(histories, length=8, seed=0, size=15)
    assert calibration.shape[0] == check.shape[0] == 15 and calibration.shape[1] <= 8
    # Rows are right-padded cuts of one history each: the hundreds digit names it.
    owners = [{int(r[0]) // 100 for r in batch} for batch in (calibration, check)]
    assert len(owners[0]) == len(owners[1]) == 15 and not owners[0] & owners[1]
    lengths = (calibration != 0).sum(1)
    assert lengths.min() >= 1 and len(set(lengths.tolist())) > 3  # cut at random points
    empty, none = onnx_export.real_samples([np.arange(1, 4)], length=8, seed=0)
    assert len(empty) == len(none) == 0  # one history cannot be split: probes stand in


def test_an_altered_int8_encoder_is_refused(version: Path) -> None:
    path = version / ENCODER_INT8
    path.write_bytes(path.read_bytes()[:-10])
    with pytest.raises(ArtifactError, match=r"encoder\.int8\.onnx"):
        load_encoder(version, "auto", "int8")


def test_backend_and_dtype_choice(version: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from recstream.model import serving

    monkeypatch.setattr(serving, "native_int8", lambda: True)  # as on VNNI CPUs
    best = load_encoder(version)  # the default, auto: the fastest the version has
    assert isinstance(best, OnnxEncoder) and best.dtype == "int8"
    exact = load_encoder(version, "auto", "float32")  # on ONNX Runtime where it can
    assert isinstance(exact, OnnxEncoder) and exact.dtype == "float32"
    assert isinstance(load_encoder(version, "torch"), Encoder)
    assert isinstance(load_encoder(version, "auto", "bfloat16"), Encoder)  # bfloat16 is torch's
    for backend, dtype, error in [
        ("tensorrt", "auto", "backend 'tensorrt' unknown"),
        ("auto", "float16", "dtype 'float16' unknown"),
        ("torch", "int8", "int8 encoding runs on ONNX Runtime"),
        ("onnx", "bfloat16", "bfloat16 encoding runs on torch"),
    ]:
        with pytest.raises(ValueError, match=error):
            load_encoder(version, backend, dtype)


def test_auto_passes_over_an_int8_copy_that_depends_on_the_batch(
    version: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Copies published before calibrated scales lack the metadata entry: auto serves float32,
    int8 by name still serves them."""
    from recstream.model import onnx_encoder

    monkeypatch.setattr(onnx_encoder, "INT8_SCALES", ("recstream.activation_scales", "other"))
    encoder = load_encoder(version, "auto", "auto")
    assert isinstance(encoder, OnnxEncoder) and encoder.dtype == "float32"
    named = load_encoder(version, "auto", "int8")
    assert isinstance(named, OnnxEncoder) and not named.batch_independent


def test_auto_serves_float32_on_a_cpu_without_integer_dot_products(
    version: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from recstream.model import serving

    monkeypatch.setattr(serving, "native_int8", lambda: False)
    encoder = load_encoder(version, "auto", "auto")
    assert isinstance(encoder, OnnxEncoder) and encoder.dtype == "float32"
    named = load_encoder(version, "auto", "int8")  # asked for by name: served as asked
    assert isinstance(named, OnnxEncoder) and named.dtype == "int8"


def test_a_version_without_int8_serves_float32_or_refuses_int8_by_name(
    trained: Trained, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from recstream.model.artifact import save_artifact

    monkeypatch.setattr(onnx_export, "INT8_MIN_AGREEMENT", 1.01)  # no copy ranks well enough
    version = save_artifact(trained, tmp_path, {"name": "toy", "path": ""})
    assert not (version / ENCODER_INT8).exists() and (version / ENCODER_ONNX).exists()
    encoder = load_encoder(version, "auto", "auto")
    assert isinstance(encoder, OnnxEncoder) and encoder.dtype == "float32"
    with pytest.raises(ArtifactError, match=r"encoder\.int8\.onnx"):
        load_encoder(version, "auto", "int8")


def test_a_version_without_onnx_encodes_with_torch(
    trained: Trained, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from recstream.model.artifact import save_artifact

    def broken(*args: object) -> bytes:
        raise RuntimeError("no exporter here")

    monkeypatch.setattr(onnx_export, "_export_bytes", broken)  # as before the export existed
    version = save_artifact(trained, tmp_path, {"name": "toy", "path": ""})
    assert not (version / ENCODER_ONNX).exists() and not (version / ENCODER_INT8).exists()
    assert isinstance(load_encoder(version), Encoder)
    with pytest.raises(ArtifactError, match=r"encoder\.onnx"):
        load_encoder(version, "onnx")


def test_an_export_that_does_not_reproduce_torch_is_not_written(
    trained: Trained, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def wrong(data: bytes, batches: list[np.ndarray]) -> list[np.ndarray]:
        return [np.zeros((len(b), 16), np.float32) for b in batches]

    monkeypatch.setattr(onnx_export, "_run", wrong)
    was_training = trained.model.training
    assert not onnx_export.export_encoder(trained.model, tmp_path / ENCODER_ONNX)
    assert not (tmp_path / ENCODER_ONNX).exists()
    assert trained.model.training == was_training  # export leaves the model's mode alone


ML1M = Path(__file__).resolve().parents[2] / ".." / "shared" / "data" / "ml-1m"


def test_real_histories_give_the_same_vectors_and_the_same_lists(tmp_path: Path) -> None:
    """A small model trained on 400 real ML-1M users; their real histories (up to the served
    length and beyond) encoded by both runtimes, then ranked through the same index and MMR."""
    from recstream.index import build
    from recstream.model.artifact import save_artifact
    from recstream.model.data import load_dataset
    from recstream.streams.recommender import ModelRecommender, Request

    if not (ML1M / "interactions.tsv.gz").is_file():
        pytest.skip(f"MovieLens-1M not found at {ML1M} (shared data is for development only)")
    data = load_dataset("ml-1m", ML1M)
    order = np.lexsort((data.ts, data.users))
    histories: dict[str, list[str]] = {}
    for i in order.tolist():
        histories.setdefault(str(data.users[i]), []).append(str(data.items[i]))
    users = sorted(histories)[:400]
    rows = [(u, item, t, "click") for u in users for t, item in enumerate(histories[u])]
    config = ModelConfig(max_len=50, dim=32, n_layers=2, n_heads=1, dropout=0.1)
    trained = train(Interactions.from_rows(rows), config,
                    TrainConfig(epochs=1, batch_size=64, threads=1), progress=False)  # fmt: skip
    version = save_artifact(trained, tmp_path, {"name": "ml-1m-400", "path": ""})
    torch_encoder, onnx_encoder = Encoder.load(version), OnnxEncoder.load(version)
    real = [histories[u] for u in users]
    assert max(map(len, real)) > 50  # longer than the served length: only the last 50 count
    want, got = torch_encoder.encode(real), onnx_encoder.encode(real)
    np.testing.assert_allclose(got, want, atol=1e-4)
    index = build(torch_encoder.item_embeddings(), list(torch_encoder.item_ids), metric="ip")
    requests = [Request(h, set(h)) for h in real]
    int8_encoder = OnnxEncoder.load(version, dtype="int8")
    lists = [ModelRecommender(e, index, 100, 0.7).recommend(requests, 10)
             for e in (torch_encoder, onnx_encoder, int8_encoder)]  # fmt: skip
    same = sum([i for i, _ in a] == [i for i, _ in b] for a, b in zip(*lists[:2], strict=True))
    # Vectors equal to 1e-4 can only swap two candidates whose scores tie that closely.
    assert same >= 0.99 * len(users), f"{same} of {len(users)} lists identical"
    kept = [len({i for i, _ in a} & {i for i, _ in b}) / 10
            for a, b in zip(lists[0], lists[2], strict=True)]  # fmt: skip
    assert np.mean(kept) >= 0.9, f"int8 lists keep {np.mean(kept):.3f} of torch's items"
