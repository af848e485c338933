"""The streams-facing encoder: item-id histories in, float32 user vectors out.

A user's score for item i is ``encode([history])[0] @ item_embeddings()[i]``, exactly the
model's own score, so an inner-product index over ``item_embeddings()`` ranks as the model does.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from recstream.artifacts import load_npy
from recstream.model.artifact import EMBEDDINGS, LoadedModel, load_artifact
from recstream.model.histories import encode_grouped, history_indices, known_counts

# Weights and activations in bfloat16 halve the arithmetic's cost on CPUs that multiply
# bfloat16 natively (AVX512-BF16, AMX); the vectors come back as float32 either way.
DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16}
log = logging.getLogger(__name__)


class Encoder:
    """A loaded, checksum-verified model in inference mode. Build it with :meth:`load`."""

    def __init__(self, loaded: LoadedModel, dtype: str = "float32") -> None:
        self._loaded = loaded
        self._dtype = dtype
        self._model = loaded.model.eval().to(_torch_dtype(dtype))
        self._index = {item: i + 1 for i, item in enumerate(loaded.item_ids)}
        self._max_len = loaded.config.inference_len  # the served history length
        embeddings = load_npy(loaded.path / EMBEDDINGS)
        self._embeddings = np.ascontiguousarray(embeddings, dtype=np.float32)

    @classmethod
    def load(cls, version_dir: Path, threads: int = 1, dtype: str = "float32") -> Encoder:
        """Verify and load an artifact (root or version dir); sets torch's thread count.

        ``dtype`` ``bfloat16`` computes in bfloat16 (see ``DTYPES``); on a CPU without native
        bfloat16 it still works, only slower, so that is logged.
        """
        if threads < 1:
            raise ValueError(f"threads={threads} must be >= 1")
        native = torch.ops.mkldnn._is_mkldnn_bf16_supported()
        if _torch_dtype(dtype) == torch.bfloat16 and not native:
            log.warning("this CPU has no native bfloat16: encoding in bfloat16 will be slow")
        torch.set_num_threads(threads)  # process-wide: streams encode on one thread by default
        return cls(load_artifact(Path(version_dir)), dtype)

    @property
    def version(self) -> str:
        """The artifact version directory's name, e.g. ``v3``."""
        return self._loaded.path.name

    @property
    def dtype(self) -> str:
        """``float32`` or ``bfloat16``: what the forward pass computes in."""
        return self._dtype

    @property
    def max_len(self) -> int:
        return self._max_len

    @property
    def metrics(self) -> dict[str, Any]:
        """The artifact's ``metrics.json`` (training figures, config, dataset)."""
        return self._loaded.metrics

    @property
    def dim(self) -> int:
        return self._loaded.config.dim

    @property
    def item_ids(self) -> tuple[str, ...]:
        return self._loaded.item_ids

    def item_embeddings(self) -> np.ndarray:
        """float32 [n_items, dim]; row i belongs to ``item_ids[i]``."""
        return self._embeddings

    def known_counts(self, sequences: Sequence[Sequence[str]]) -> np.ndarray:
        """How many of each user's items the model knows, [B] int64 (0 means cold start)."""
        return known_counts(sequences, self._index)

    def has_history(self, sequences: Sequence[Sequence[str]]) -> np.ndarray:
        """[B] bool: False where ``encode`` returns a zero vector (nothing known)."""
        return self.known_counts(sequences) > 0

    def encode(self, sequences: Sequence[Sequence[str]]) -> np.ndarray:
        """User vectors [B, dim] float32 from item-id histories, oldest first.

        Unknown ids are skipped, only the last ``max_len`` known items count, and a user
        with no known item gets a zero vector (see :meth:`has_history`).
        """
        rows = [history_indices(s, self._index, self._max_len) for s in sequences]
        return encode_grouped(rows, self.dim, self._forward)

    def _forward(self, batch: np.ndarray) -> np.ndarray:
        with torch.inference_mode():
            vectors = self._model.user_vectors(torch.from_numpy(batch))  # [b, dim]
            return vectors.float().numpy()


def _torch_dtype(name: str) -> torch.dtype:
    if name not in DTYPES:
        raise ValueError(f"encoder dtype {name!r} unknown; expected float32 or bfloat16")
    return DTYPES[name]
