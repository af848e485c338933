"""The self-attention sequential model: data, training, evaluation, export and encoding.

Streams use :class:`Encoder` only; training is :func:`train` then :func:`save_artifact`.
"""

from recstream.model.artifact import LoadedModel, load_artifact, save_artifact
from recstream.model.config import ModelConfig, TrainConfig
from recstream.model.data import Interactions, load_dataset
from recstream.model.encoder import Encoder
from recstream.model.report import evaluate_artifact
from recstream.model.sasrec import SASRec
from recstream.model.train import Trained, train

__all__ = [
    "Encoder",
    "Interactions",
    "LoadedModel",
    "ModelConfig",
    "SASRec",
    "TrainConfig",
    "Trained",
    "evaluate_artifact",
    "load_artifact",
    "load_dataset",
    "save_artifact",
    "train",
]
