"""Export the user encoder to ONNX (dynamic batch and history length) and check it against
torch before it is published: a file that does not reproduce the model is not written. An int8
copy (faster on CPUs with integer dot-product instructions) is written beside it when its
rankings agree with torch's."""

from __future__ import annotations

import io
import logging
import tempfile
import warnings
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import torch
from torch import Tensor, nn

from recstream.model.layout import ENCODER_INT8, ENCODER_ONNX
from recstream.model.sasrec import SASRec

OPSET = 17
TOLERANCE = 1e-4  # max abs difference of a user vector, ONNX Runtime vs torch (float32)
# The int8 copy is published when, on the probe histories, it keeps at least this share of
# each user's top TOP items from torch's float32 ranking, on average.
INT8_MIN_AGREEMENT = 0.9
TOP = 10
log = logging.getLogger(__name__)


def export_encoders(model: SASRec, directory: Path, seed: int = 0) -> list[str]:
    """The encoder files written into ``directory``: ``encoder.onnx`` when it reproduces
    torch, then ``encoder.int8.onnx`` when it ranks like torch; [] when the export fails."""
    if not export_encoder(model, directory / ENCODER_ONNX, seed):
        return []
    if not quantize_encoder(model, directory / ENCODER_ONNX, directory / ENCODER_INT8, seed):
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
    trial = _trial(model, seed, lambda probe: _export_bytes(model, probe), path.name)
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
    model: SASRec, seed: int, make: Callable[[np.ndarray], bytes], name: str
) -> tuple[bytes, list[np.ndarray], list[np.ndarray]] | None:
    """``make``'s ONNX bytes, their user vectors on the probe histories and torch's, checked
    at the full length and a short one (a batch is padded to its longest history); None, the
    failure logged, when making or running them fails."""
    probe = _probe(model, seed)
    batches = [probe, probe[:3, :3]]
    try:
        data = make(probe)
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


def quantize_encoder(model: SASRec, source: Path, path: Path, seed: int = 0) -> bool:
    """Write ``path``: the exported ``source`` with its weight products in int8 (dynamic
    quantisation: int8 weights, activations quantised per call), when its top-10 lists on
    histories of every length agree with torch's (:data:`INT8_MIN_AGREEMENT`); False, with
    nothing written and the reason logged, otherwise."""
    was_training = model.training
    try:
        return _quantize_checked(model.eval(), source, path, seed)
    finally:
        model.train(was_training)


def _quantize_checked(model: SASRec, source: Path, path: Path, seed: int) -> bool:
    trial = _trial(model, seed, lambda _: _quantized_bytes(source), path.name)
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


def top_agreement(scores: np.ndarray, reference: np.ndarray, top: int = TOP) -> float:
    """Mean share of each row's ``top`` highest-scoring columns in ``reference`` that
    ``scores`` also ranks in its ``top``."""
    top = min(top, scores.shape[1])
    mine = np.argpartition(-scores, top - 1, axis=1)[:, :top]
    theirs = np.argpartition(-reference, top - 1, axis=1)[:, :top]
    kept = [len(np.intersect1d(a, b)) for a, b in zip(mine, theirs, strict=True)]
    return float(np.mean(kept)) / top


def _quantized_bytes(source: Path) -> bytes:
    from onnxruntime.quantization import QuantType, quantize_dynamic
    from onnxruntime.quantization.shape_inference import quant_pre_process

    with tempfile.TemporaryDirectory() as tmp, _quiet_quantizer():
        folded, out = Path(tmp) / "folded.onnx", Path(tmp) / "int8.onnx"
        # ONNX Runtime's graph optimisation folds the exported weight slices and transposes
        # into constants; only a product with a constant weight can be quantised.
        quant_pre_process(str(source), str(folded), skip_symbolic_shape=True)
        quantize_dynamic(folded, out, weight_type=QuantType.QInt8, op_types_to_quantize=["MatMul"])
        return out.read_bytes()


@contextmanager
def _quiet_quantizer() -> Iterator[None]:
    """Drop the quantiser's per-tensor notes, which it logs on the root logger itself. A
    root-logger filter sees only records logged there directly, so other loggers' records
    (which reach the root's handlers by propagation) pass untouched."""

    def keep(record: logging.LogRecord) -> bool:
        return "onnxruntime" not in record.pathname

    root = logging.getLogger()
    root.addFilter(keep)
    try:
        yield
    finally:
        root.removeFilter(keep)
