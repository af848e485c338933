"""Hyper-parameters: the model's (saved as ``config.json`` beside the weights) and training's."""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

LOSSES = ("ce", "sampled", "gbce")
SCHEDULES = ("cosine", "constant")
BLOCKS = ("pre", "kang", "ligr", "hstu")
POSITIONS = ("newest", "oldest")
PRECISION_CHOICES = ("auto", "float32", "bfloat16")


# Retraining from the event log (recstream retrain, simulate --retrain): a warm start from the
# served version trains RETRAIN_EPOCHS; from fresh weights a model needs about three times
# that before its validation stops improving (docs/simulator.md, "Calibration").
RETRAIN_EPOCHS = 10
COLD_EPOCHS = 30
# Fewer valid events than this: refuse to train rather than publish a model of noise.
MIN_EVENTS = 100


@dataclass(frozen=True)
class ModelConfig:
    """Shape of a SASRec model. ``n_items`` excludes the padding index 0; training sets it
    from the data's vocabulary, so leave it 0 there."""

    n_items: int = 0
    max_len: int = 100
    dim: int = 64
    n_layers: int = 2
    n_heads: int = 1
    dropout: float = 0.1
    # History the served model reads (0 = max_len). The newest item always sits at the last
    # position, so a shorter history is a valid input; on ML-1M the last 50 of 100 items rank
    # as well as all 100 and encode in half the time.
    serve_len: int = 50
    # "pre": pre-norm transformer blocks; "kang": the SASRec paper code's block layout;
    # "ligr": pre-norm with sigmoid-gated residual branches (LiGR, as in eSASRec).
    # "hstu": HSTU layers (pointwise SiLU attention with a learned bias by distance, gated).
    block: str = "kang"
    # "newest": the newest item always has the last position (any shorter history is a valid
    # input, so serve_len can cut it); "oldest": positions count from the window's oldest item.
    positions: str = "newest"
    # 0: scores are dot products of the raw vectors. > 0: cosine similarity divided by it
    # (user vectors and item embeddings L2-normalised, as HSTU's recipe scores items).
    temperature: float = 0.0
    # Softmax blocks (pre, kang, ligr): add a learned bias by distance (query minus key
    # position, per head and block) to the attention scores, as HSTU's layers do. HSTU blocks
    # always have their own, whatever this says.
    distance_bias: bool = True

    @property
    def inference_len(self) -> int:
        return min(self.serve_len, self.max_len) if self.serve_len else self.max_len

    def __post_init__(self) -> None:
        if self.n_items < 0:
            raise ValueError(f"n_items={self.n_items} must be >= 0")
        _positive(max_len=self.max_len, dim=self.dim)
        _positive(n_layers=self.n_layers, n_heads=self.n_heads)
        if self.dim % self.n_heads:
            raise ValueError(f"dim={self.dim} must be a multiple of n_heads={self.n_heads}")
        if self.block not in BLOCKS:
            raise ValueError(f"block {self.block!r} unknown; expected one of {', '.join(BLOCKS)}")
        if self.positions not in POSITIONS:
            raise ValueError(f"positions {self.positions!r} unknown; expected newest or oldest")
        if self.positions == "oldest" and self.inference_len != self.max_len:
            raise ValueError("positions='oldest' reads whole windows: set serve_len to 0")
        if self.serve_len < 0:
            raise ValueError(f"serve_len={self.serve_len} must be >= 0 (0 = max_len)")
        if not 0.0 <= self.dropout < 1.0:
            raise ValueError(f"dropout={self.dropout} must be in [0, 1)")
        if self.temperature < 0:
            raise ValueError(f"temperature={self.temperature} must be >= 0 (0 = dot product)")

    def save(self, path: Path) -> None:
        path.write_text(json.dumps(dataclasses.asdict(self), indent=2, sort_keys=True) + "\n")

    @classmethod
    def load(cls, path: Path) -> ModelConfig:
        return cls.from_dict(json.loads(path.read_text()))

    @classmethod
    def from_dict(cls, raw: dict[str, Any]) -> ModelConfig:
        names = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(raw) - names)
        if unknown:
            raise ValueError(f"unknown model config keys {unknown}; expected {sorted(names)}")
        # Artifacts written before these keys existed were pre-norm, read the whole max_len and
        # had no bias by distance: the new defaults must not silently change an old model.
        return cls(**{"block": "pre", "serve_len": 0, "distance_bias": False, **raw})


@dataclass(frozen=True)
class TrainConfig:
    """How to train: optimiser, loss, stopping. Recorded in ``metrics.json``."""

    epochs: int = 40
    # Small batches: 4x the updates per epoch of 128 for the same arithmetic, which on ML-1M
    # reached in 10 epochs what batch 128 reached in 40.
    batch_size: int = 32
    lr: float = 1e-3
    # Cosine decay from lr to 0 over `epochs`: most of a long run's gain in a short budget.
    schedule: str = "cosine"
    # The share of the schedule over which the rate climbs linearly from 0 to lr (0 = none).
    # Without it 4 blocks at lr 2e-3 never leave popularity's level on ML-1M.
    warmup: float = 0.0
    weight_decay: float = 0.0
    loss: str = "ce"
    negatives: int = 256  # for the sampled and gbce losses
    gbce_t: float = 0.75  # gSASRec's calibration parameter
    # Train on all of each user's history in max_len windows, not only the newest window.
    full_history: bool = True
    # Leave the items a window has already shown out of the softmax at its later positions
    # (never the target itself). Evaluation and the streams never recommend a seen item, so
    # the loss need not spend itself pushing them down. ce only: a sampled negative is rarely
    # one of the <= max_len items of the window.
    exclude_seen: bool = True
    eval_every: int = 2  # epochs between validations
    patience: int = 5  # validations without improvement before stopping
    eval_users: int = 0  # validate on this many users (0 = all)
    time_budget_s: float = 0.0  # stop after this much training time (0 = no limit)
    threads: int = 2
    seed: int = 0
    # The full-softmax loss's products: "auto" = bfloat16 where the CPU multiplies it natively
    # (the softmax itself stays float32), else float32. metrics.json records what ran.
    precision: str = "auto"

    def __post_init__(self) -> None:
        if self.loss not in LOSSES:
            raise ValueError(f"loss {self.loss!r} unknown; expected one of {', '.join(LOSSES)}")
        if self.schedule not in SCHEDULES:
            raise ValueError(f"schedule {self.schedule!r} unknown; expected one of {SCHEDULES}")
        _positive(epochs=self.epochs, batch_size=self.batch_size, negatives=self.negatives)
        _positive(eval_every=self.eval_every, patience=self.patience, threads=self.threads)
        if self.precision not in PRECISION_CHOICES:
            raise ValueError(f"precision {self.precision!r} unknown; expected {PRECISION_CHOICES}")
        if self.lr <= 0:
            raise ValueError(f"lr={self.lr} must be > 0")
        if self.weight_decay < 0:
            raise ValueError(f"weight_decay={self.weight_decay} must be >= 0")
        if not 0.0 <= self.warmup < 1.0:
            raise ValueError(f"warmup={self.warmup} must be in [0, 1): a share of the schedule")


def _positive(**values: int) -> None:
    for name, value in values.items():
        if value < 1:
            raise ValueError(f"{name}={value} must be a positive integer")
