"""The self-attention sequential model: data, training, evaluation, export and encoding.

Streams use an encoder only (:class:`Encoder` on torch, ``onnx_encoder.OnnxEncoder`` without);
training is :func:`train` then :func:`save_artifact`. Names below load on first use, so that
importing a light module of the package (config, layout, histories) costs no torch.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from recstream.lazy import lazy_attributes

if TYPE_CHECKING:
    from recstream.model.artifact import LoadedModel as LoadedModel
    from recstream.model.artifact import load_artifact as load_artifact
    from recstream.model.artifact import save_artifact as save_artifact
    from recstream.model.config import ModelConfig as ModelConfig
    from recstream.model.config import TrainConfig as TrainConfig
    from recstream.model.data import Interactions as Interactions
    from recstream.model.data import load_dataset as load_dataset
    from recstream.model.encoder import Encoder as Encoder
    from recstream.model.report import evaluate_artifact as evaluate_artifact
    from recstream.model.sasrec import SASRec as SASRec
    from recstream.model.training import Trained as Trained
    from recstream.model.training import train as train

_HOMES = {
    "LoadedModel": "artifact",
    "load_artifact": "artifact",
    "save_artifact": "artifact",
    "ModelConfig": "config",
    "TrainConfig": "config",
    "Interactions": "data",
    "load_dataset": "data",
    "Encoder": "encoder",
    "evaluate_artifact": "report",
    "SASRec": "sasrec",
    "Trained": "training",
    "train": "training",
}
__all__ = sorted(_HOMES)


__getattr__ = lazy_attributes(__name__, _HOMES)
