"""Export the user encoder to ONNX (dynamic batch and history length) and check it against
torch before it is published: a file that does not reproduce the model is not written."""

from __future__ import annotations

import io
import logging
import warnings
from pathlib import Path

import numpy as np
import torch
from torch import Tensor, nn

from recstream.model.sasrec import SASRec

OPSET = 17
TOLERANCE = 1e-4  # max abs difference of a user vector, ONNX Runtime vs torch (float32)
log = logging.getLogger(__name__)


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
    # Checked at the full length and a short one: a batch is padded to its longest history.
    batches = [probe, probe[:3, :3]]
    try:
        data = _export_bytes(model, probe)
        got = _run(data, batches)
    except Exception as exc:  # an optional speed-up must not stop publishing
        log.warning("no %s: the ONNX export failed (%s)", path.name, exc)
        return False
    with torch.inference_mode():
        want = [model.user_vectors(torch.from_numpy(b)).float().numpy() for b in batches]
    error = max(float(np.abs(g - w).max()) for g, w in zip(got, want, strict=True))
    if not error <= TOLERANCE:
        log.warning("no %s: ONNX Runtime differs from torch by %.2e", path.name, error)
        return False
    path.write_bytes(data)
    return True


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
