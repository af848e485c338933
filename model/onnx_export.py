"""Export the user encoder to ONNX (dynamic batch and history length) and check it against
torch before it is published: a file that does not reproduce the model is not written. An int8
copy (faster on CPUs with integer dot-product instructions) is written beside it when its
rankings agree with torch's; its activation scales are calibrated on real histories at publish
time, so a user's vector never depends on who else shares the batch."""

from __future__ import annotations

import io
import logging
import warnings
from collections.abc import Callable, Sequence
from functools import partial
from pathlib import Path

import numpy as np
import torch
from torch import Tensor, nn

from recstream.model.int8 import calibrated_int8
from recstream.model.layout import ENCODER_INT8, ENCODER_ONNX
from recstream.model.sasrec import SASRec
from recstream.model.sequences import pad_right

OPSET = 17
TOLERANCE = 1e-4  # max abs difference of a user vector, ONNX Runtime vs torch (float32)
# The int8 copy is published when, on real histories it was not calibrated on, it keeps at
# least this share of each user's top TOP items from torch's float32 ranking, on average.
INT8_MIN_AGREEMENT = 0.9
TOP = 10
# Real histories the int8 copy's activation scales come from; as many others check it.
CALIBRATION_USERS = 512
CALIBRATION_BATCH = 64
log = logging.getLogger(__name__)


def export_encoders(
    model: SASRec, directory: Path, histories: Sequence[np.ndarray], length: int, seed: int = 0
) -> list[str]:
    """The encoder files written into ``directory``: ``encoder.onnx`` when it reproduces
    torch, then ``encoder.int8.onnx`` when it ranks like torch on ``histories`` (the training
    data's item-index sequences, read as the served model reads them: the last ``length``
    items); [] when the export fails."""
    if not export_encoder(model, directory / ENCODER_ONNX, seed):
        return []
    source, target = directory / ENCODER_ONNX, directory / ENCODER_INT8
    if not quantize_encoder(model, source, target, histories, length, seed):
        return [ENCODER_ONNX]
    return [ENCODER_ONNX, ENCODER_INT8]


class _UserVectors(nn.Module):
    def __init__(self, model: SASRec) -> None:
        super().__init__()
        self.model = model

    def forward(self, seq: Tensor) -> Tensor:
        return self.model.user_vectors(seq)


def export_encoder(model: SASRec, path: Path, seed: int = 0) -> bool:
    """Write ``path`` (input ``seq`` int64 [b, t] right-padded, output ``vec`` float32 [b, d])
    when ONNX Runtime reproduces torch on histories of mixed lengths; False (nothing written,
    the reason logged) otherwise — the worker then encodes with torch."""
    was_training = model.training
    try:
        return _export_checked(model.eval(), path, seed)
    finally:
        model.train(was_training)


def _export_checked(model: SASRec, path: Path, seed: int) -> bool:
    probe = _probe(model, seed)
    # Every length from 1 to the model's, and a short batch (padded to its longest history).
    batches = [probe, probe[:3, :3]]
    trial = _trial(model, batches, lambda: _export_bytes(model, probe), path.name)
    if trial is None:
        return False
    data, got, want = trial
    error = max(float(np.abs(g - w).max()) for g, w in zip(got, want, strict=True))
    if not error <= TOLERANCE:
        log.warning("no %s: ONNX Runtime differs from torch by %.2e", path.name, error)
        return False
    path.write_bytes(data)
    return True


def _trial(
    model: SASRec, batches: list[np.ndarray], make: Callable[[], bytes], name: str
) -> tuple[bytes, list[np.ndarray], list[np.ndarray]] | None:
    """``make``'s ONNX bytes, their user vectors on ``batches`` and torch's; None, the failure
    logged, when making or running them fails."""
    try:
        data = make()
        got = _run(data, batches)
    except Exception as exc:  # an optional speed-up must not stop publishing
        log.warning("no %s: making or running it failed (%s)", name, exc)
        return None
    with torch.inference_mode():
        want = [model.user_vectors(torch.from_numpy(b)).float().numpy() for b in batches]
    return data, got, want


def _probe(model: SASRec, seed: int) -> np.ndarray:
    """Histories of every length from 1 to the model's, right-padded."""
    rng = np.random.default_rng(seed)
    n_items, length = model.items.num_embeddings - 1, model.max_len
    batch = np.zeros((length, length), dtype=np.int64)
    for row in range(length):
        batch[row, : row + 1] = rng.integers(1, n_items + 1, row + 1)
    return batch


def _export_bytes(model: SASRec, example: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # tracer warnings about Python-level shape checks
        torch.onnx.export(
            _UserVectors(model).eval(),  # export restores the wrapper's mode, recursively
            (torch.from_numpy(example),),
            buffer,  # type: ignore[arg-type]  # file-like objects are documented
            input_names=["seq"],
            output_names=["vec"],
            dynamic_axes={"seq": {0: "batch", 1: "length"}, "vec": {0: "batch"}},
            opset_version=OPSET,
            dynamo=False,
        )
    return buffer.getvalue()


def _run(data: bytes, batches: list[np.ndarray]) -> list[np.ndarray]:
    import onnxruntime

    session = onnxruntime.InferenceSession(data, providers=["CPUExecutionProvider"])
    return [np.asarray(session.run(["vec"], {"seq": b})[0]) for b in batches]


def quantize_encoder(
    model: SASRec,
    source: Path,
    path: Path,
    histories: Sequence[np.ndarray],
    length: int,
    seed: int = 0,
) -> bool:
    """Write ``path``: the exported ``source`` with its weight products in int8 (int8
    weights; activations quantised with fixed scales calibrated on a sample of real
    ``histories``), when its top-10 lists on other real histories agree with torch's
    (:data:`INT8_MIN_AGREEMENT`); False, with nothing written and the reason logged,
    otherwise. Fewer than two histories: random ones of every length stand in."""
    was_training = model.training
    try:
        return _quantize_checked(model.eval(), source, path, histories, length, seed)
    finally:
        model.train(was_training)


def _quantize_checked(
    model: SASRec,
    source: Path,
    path: Path,
    histories: Sequence[np.ndarray],
    length: int,
    seed: int,
) -> bool:
    calibration, check = real_samples(histories, length, seed)
    if not len(check):
        calibration = check = _probe(model, seed)
    batches = _split(check)
    make = partial(calibrated_int8, source, _split(calibration))
    trial = _trial(model, batches, make, path.name)
    if trial is None:
        return False
    data, got, want = trial
    with torch.inference_mode():
        items = model.item_embeddings().float().numpy()
    agreement = top_agreement(np.concatenate(got) @ items.T, np.concatenate(want) @ items.T)
    if not agreement >= INT8_MIN_AGREEMENT:
        log.warning("no %s: its top-%d lists keep %.3f of torch's", path.name, TOP, agreement)
        return False
    path.write_bytes(data)
    return True


def real_samples(
    histories: Sequence[np.ndarray], length: int, seed: int, size: int = CALIBRATION_USERS
) -> tuple[np.ndarray, np.ndarray]:
    """Two disjoint samples of up to ``size`` non-empty histories (calibration, check), each
    history cut after a random item and to its last ``length`` items, so that short and long
    ones appear as the worker sees them; right-padded int64 ``[m, <= length]`` (m = 0 with
    fewer than two histories)."""
    rng = np.random.default_rng(seed)
    usable = [h for h in histories if len(h)]
    order = rng.permutation(len(usable))
    half = min(size, len(usable) // 2)

    def cut(rows: np.ndarray) -> np.ndarray:
        ends = [int(rng.integers(1, len(usable[r]) + 1)) for r in rows]
        return pad_right(
            [usable[r][:end] for r, end in zip(rows, ends, strict=True)], length
        ).numpy()

    return cut(order[:half]), cut(order[half : 2 * half])


def _split(batch: np.ndarray) -> list[np.ndarray]:
    """Batches of the worker's size, each cut to its longest history (as the worker pads)."""
    parts = [batch[i : i + CALIBRATION_BATCH] for i in range(0, len(batch), CALIBRATION_BATCH)]
    return [p[:, : int((p != 0).sum(1).max())] for p in parts]


def top_agreement(scores: np.ndarray, reference: np.ndarray, top: int = TOP) -> float:
    """Mean share of each row's ``top`` highest-scoring columns in ``reference`` that
    ``scores`` also ranks in its ``top``."""
    top = min(top, scores.shape[1])
    mine = np.argpartition(-scores, top - 1, axis=1)[:, :top]
    theirs = np.argpartition(-reference, top - 1, axis=1)[:, :top]
    kept = [len(np.intersect1d(a, b)) for a, b in zip(mine, theirs, strict=True)]
    return float(np.mean(kept)) / top
