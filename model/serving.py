"""Which encoder serves a version: ONNX Runtime or torch (``RECSTREAM_ENCODER_BACKEND``)."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import TYPE_CHECKING

from recstream.artifacts import ArtifactError, resolve_version
from recstream.model.onnx_encoder import OnnxEncoder, onnx_available

if TYPE_CHECKING:
    from recstream.model.encoder import Encoder

BACKENDS = ("auto", "onnx", "torch")
log = logging.getLogger(__name__)


def load_encoder(
    path: Path, backend: str = "auto", dtype: str = "float32", threads: int = 1
) -> Encoder | OnnxEncoder:
    """``auto``: ONNX Runtime when the version has ``encoder.onnx``, onnxruntime is installed
    and the dtype is float32; torch otherwise (torch is imported only then)."""
    if backend not in BACKENDS:
        raise ValueError(f"encoder backend {backend!r} unknown; expected one of {BACKENDS}")
    version = resolve_version(Path(path))
    if backend == "onnx" or (backend == "auto" and dtype == "float32"):
        if onnx_available(version):
            return OnnxEncoder.load(version, threads=threads)
        if backend == "onnx":
            raise ArtifactError(
                f"{version}: the onnx encoder backend needs {version}/encoder.onnx (published "
                "with the version since it exists) and the onnxruntime package"
            )
        log.info("%s: no encoder.onnx, encoding with torch", version.name)
    from recstream.model.encoder import Encoder

    return Encoder.load(version, threads=threads, dtype=dtype)
