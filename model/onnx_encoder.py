"""The user encoder on ONNX Runtime: the same vectors as :class:`recstream.model.Encoder`
without torch, and faster per call on one CPU thread (docs/streams.md has the figures)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import orjson

from recstream.artifacts import ArtifactError, load_npy, resolve_version, verify_manifest
from recstream.model.histories import HistoryEncoder
from recstream.model.layout import (
    CONFIG,
    EMBEDDINGS,
    ENCODER_INT8,
    ENCODER_ONNX,
    INT8_SCALES,
    ITEM_IDS,
    METRICS,
    read_config,
    read_item_ids,
)

SERVED_FILES = (CONFIG, ITEM_IDS, EMBEDDINGS, METRICS)
# The exported encoder file of each dtype ONNX Runtime serves.
ONNX_FILES = {"float32": ENCODER_ONNX, "int8": ENCODER_INT8}


def onnx_available(version_dir: Path, dtype: str = "float32") -> bool:
    """True when the version has the encoder exported in ``dtype`` and ONNX Runtime is
    installed."""
    if not (version_dir / ONNX_FILES[dtype]).is_file():
        return False
    try:
        import onnxruntime  # noqa: F401
    except ImportError:
        return False
    return True


class OnnxEncoder(HistoryEncoder):
    """A verified version's exported encoder, float32 or int8. Build it with :meth:`load`."""

    def __init__(self, version_dir: Path, threads: int = 1, dtype: str = "float32") -> None:
        import onnxruntime

        if dtype not in ONNX_FILES:
            raise ValueError(f"dtype {dtype!r}: ONNX Runtime serves {' or '.join(ONNX_FILES)}")
        self.dtype = dtype
        # Every file the version lists, weights included: a damaged version is refused
        # whichever backend serves it.
        listed = verify_manifest(version_dir)["files"]
        missing = [name for name in (*SERVED_FILES, ONNX_FILES[dtype]) if name not in listed]
        if missing:
            raise ArtifactError(f"{version_dir}: {', '.join(missing)} not listed in the manifest")
        config = read_config(version_dir / CONFIG)
        item_ids = read_item_ids(version_dir / ITEM_IDS, config.n_items)
        embeddings = load_npy(version_dir / EMBEDDINGS)
        metrics = orjson.loads((version_dir / METRICS).read_bytes())
        self._init_vocabulary(version_dir, config.dim, config.inference_len, item_ids,
                              embeddings, metrics)  # fmt: skip
        options = onnxruntime.SessionOptions()
        options.intra_op_num_threads = threads
        options.inter_op_num_threads = 1
        self._session = onnxruntime.InferenceSession(
            str(version_dir / ONNX_FILES[dtype]), options, providers=["CPUExecutionProvider"]
        )
        key, value = INT8_SCALES
        metadata = self._session.get_modelmeta().custom_metadata_map
        # float32 computes each row on its own; int8 does when its scales were calibrated.
        self.batch_independent = dtype == "float32" or metadata.get(key) == value

    @classmethod
    def load(cls, path: Path, threads: int = 1, dtype: str = "float32") -> OnnxEncoder:
        """A version directory, or the newest version under a root."""
        if threads < 1:
            raise ValueError(f"threads={threads} must be >= 1")
        return cls(resolve_version(Path(path)), threads, dtype)

    def _forward(self, batch: np.ndarray) -> np.ndarray:
        return np.asarray(self._session.run(["vec"], {"seq": batch})[0], dtype=np.float32)
