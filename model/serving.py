"""Which encoder serves a version: ONNX Runtime or torch, in which dtype
(``RECSTREAM_ENCODER_BACKEND``, ``RECSTREAM_ENCODER_DTYPE``)."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import TYPE_CHECKING

from recstream.artifacts import ArtifactError, resolve_version
from recstream.model.cpu import native_int8
from recstream.model.onnx_encoder import ONNX_FILES, OnnxEncoder, onnx_available

if TYPE_CHECKING:
    from recstream.model.encoder import Encoder

BACKENDS = ("auto", "onnx", "torch")
# auto: the fastest the version has — int8 ONNX Runtime (when its activation scales were
# calibrated at publish time), float32 ONNX Runtime, float32 torch.
DTYPES = ("auto", "float32", "bfloat16", "int8")
log = logging.getLogger(__name__)


def load_encoder(
    path: Path, backend: str = "auto", dtype: str = "auto", threads: int = 1
) -> Encoder | OnnxEncoder:
    """The encoder for a version: ONNX Runtime in the first of :func:`onnx_dtypes` the version
    has (and onnxruntime is installed), else torch (imported only then). A backend or dtype
    asked for by name and not available is an error, never a silent substitute. ``auto``
    serves int8 only on a CPU with integer dot-product instructions, and never a copy whose
    vectors depend on the batch (published before its scales were calibrated)."""
    candidates = onnx_dtypes(backend, dtype)
    if dtype == "auto" and not native_int8():
        log.info("no integer dot-product instructions on this CPU: encoding in float32")
        candidates = [c for c in candidates if c != "int8"]
    version = resolve_version(Path(path))
    for candidate in candidates:
        if onnx_available(version, candidate):
            encoder = OnnxEncoder.load(version, threads=threads, dtype=candidate)
            if dtype == "auto" and not encoder.batch_independent:
                log.info("%s: its int8 copy quantises per batch; serving float32", version.name)
                continue
            return encoder
    if backend == "onnx" or dtype == "int8":
        files = " or ".join(ONNX_FILES[c] for c in candidates)
        raise ArtifactError(
            f"{version}: encoding with ONNX Runtime in {'/'.join(candidates)} needs {files} "
            "in the version (written at publish time when it matches torch) and the "
            "onnxruntime package"
        )
    if candidates:
        log.info("%s: no ONNX encoder, encoding with torch", version.name)
    from recstream.model.encoder import Encoder

    return Encoder.load(version, threads=threads, dtype="float32" if dtype == "auto" else dtype)


def onnx_dtypes(backend: str, dtype: str) -> list[str]:
    """The ONNX Runtime dtypes to try for a backend and dtype setting, best first; [] for
    torch. Raises ValueError for unknown names and combinations no runtime serves."""
    if backend not in BACKENDS:
        raise ValueError(f"encoder backend {backend!r} unknown; expected one of {BACKENDS}")
    if dtype not in DTYPES:
        raise ValueError(f"encoder dtype {dtype!r} unknown; expected one of {DTYPES}")
    if (backend, dtype) == ("torch", "int8"):
        raise ValueError("int8 encoding runs on ONNX Runtime: use the onnx or auto backend")
    if (backend, dtype) == ("onnx", "bfloat16"):
        raise ValueError("bfloat16 encoding runs on torch: use the torch or auto backend")
    if backend == "torch" or dtype == "bfloat16":
        return []
    return ["int8", "float32"] if dtype == "auto" else [dtype]
