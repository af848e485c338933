"""The streams-facing encoder: item-id histories in, float32 user vectors out.

A user's score for item i is ``encode([history])[0] @ item_embeddings()[i]``, exactly the
model's own score, so an inner-product index over ``item_embeddings()`` ranks as the model does.
"""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import torch

from recstream.artifacts import load_npy
from recstream.model.artifact import EMBEDDINGS, LoadedModel, load_artifact
from recstream.model.cpu import native_bfloat16
from recstream.model.histories import HistoryEncoder

# Weights and activations in bfloat16 halve the arithmetic's cost on CPUs that multiply
# bfloat16 natively (AVX512-BF16, AMX); the vectors come back as float32 either way.
DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16}
log = logging.getLogger(__name__)


class Encoder(HistoryEncoder):
    """A loaded, checksum-verified model in inference mode. Build it with :meth:`load`."""

    def __init__(self, loaded: LoadedModel, dtype: str = "float32") -> None:
        self._dtype = dtype
        self._model = loaded.model.eval().to(_torch_dtype(dtype))
        embeddings = load_npy(loaded.path / EMBEDDINGS)
        config = loaded.config
        self._init_vocabulary(loaded.path, config.dim, config.inference_len, loaded.item_ids,
                              embeddings, loaded.metrics)  # fmt: skip

    @classmethod
    def load(cls, version_dir: Path, threads: int = 1, dtype: str = "float32") -> Encoder:
        """Verify and load an artifact (root or version dir); sets torch's thread count.

        ``dtype`` ``bfloat16`` computes in bfloat16 (see ``DTYPES``); on a CPU without native
        bfloat16 it still works, only slower, so that is logged.
        """
        if threads < 1:
            raise ValueError(f"threads={threads} must be >= 1")
        if _torch_dtype(dtype) == torch.bfloat16 and not native_bfloat16():
            log.warning("this CPU has no native bfloat16: encoding in bfloat16 will be slow")
        torch.set_num_threads(threads)  # process-wide: streams encode on one thread by default
        return cls(load_artifact(Path(version_dir)), dtype)

    @property
    def dtype(self) -> str:
        """``float32`` or ``bfloat16``: what the forward pass computes in."""
        return self._dtype

    def _forward(self, batch: np.ndarray) -> np.ndarray:
        with torch.inference_mode():
            vectors = self._model.user_vectors(torch.from_numpy(batch))  # [b, dim]
            return vectors.float().numpy()


def _torch_dtype(name: str) -> torch.dtype:
    if name not in DTYPES:
        raise ValueError(f"encoder dtype {name!r} unknown; expected float32 or bfloat16")
    return DTYPES[name]
