"""Which encoder serves a version: ONNX Runtime or torch (``RECSTREAM_ENCODER_BACKEND``)."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import TYPE_CHECKING

from recstream.artifacts import ArtifactError, resolve_version
from recstream.model.cpu import native_bfloat16
from recstream.model.layout import CONFIG, read_config
from recstream.model.onnx_encoder import OnnxEncoder, onnx_available

if TYPE_CHECKING:
    from recstream.model.encoder import Encoder

BACKENDS = ("auto", "onnx", "torch")
DTYPES = ("auto", "float32", "bfloat16")
# dtype auto: bfloat16 from this width up, on a CPU with native bfloat16 (below it float32
# encodes as fast; docs/model.md, "Encoder").
BFLOAT16_FROM_DIM = 96
log = logging.getLogger(__name__)


def resolve_dtype(dtype: str, dim: int) -> str:
    """``auto`` → bfloat16 for a model of ``dim`` >= BFLOAT16_FROM_DIM on a CPU with native
    bfloat16, else float32; the others as given."""
    if dtype not in DTYPES:
        raise ValueError(f"encoder dtype {dtype!r} unknown; expected one of {DTYPES}")
    if dtype != "auto":
        return dtype
    return "bfloat16" if dim >= BFLOAT16_FROM_DIM and native_bfloat16() else "float32"


def load_encoder(
    path: Path, backend: str = "auto", dtype: str = "float32", threads: int = 1
) -> Encoder | OnnxEncoder:
    """``auto``: ONNX Runtime when the version has ``encoder.onnx``, onnxruntime is installed
    and the dtype is float32; torch otherwise (torch is imported only then). ``dtype`` auto:
    see :func:`resolve_dtype`."""
    if backend not in BACKENDS:
        raise ValueError(f"encoder backend {backend!r} unknown; expected one of {BACKENDS}")
    version = resolve_version(Path(path))
    dtype = resolve_dtype(dtype, read_config(version / CONFIG).dim)
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
