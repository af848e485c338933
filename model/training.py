"""Training: next-item loss on every position, validation NDCG@10, early stopping, checkpoints.

Epoch ``e`` draws its shuffling and dropout masks from ``seed`` and ``e`` alone, so a run resumed
from a checkpoint continues exactly as the uninterrupted run would have.
"""

from __future__ import annotations

import copy
import dataclasses
import json
import logging
import math
import os
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

from recstream.contract import DEFAULT_EVENT_WEIGHTS
from recstream.model import adapt
from recstream.model.budget import BudgetSchedule
from recstream.model.config import ModelConfig, TrainConfig
from recstream.model.data import Interactions
from recstream.model.evaluate import (
    EvalTask,
    evaluation_task,
    masked_ndcg_hr,
    model_scores,
    popularity_scores,
)
from recstream.model.losses import next_item_loss, resolve_precision
from recstream.model.sasrec import SASRec
from recstream.model.sequences import (
    Split,
    Vocabulary,
    build_sequences,
    leave_one_out,
    seen_mask,
    training_batch,
    training_windows,
)
from recstream.model.warm import check_prefix, copy_weights, warm_config

if TYPE_CHECKING:  # artifact.py imports this module
    from recstream.model.artifact import LoadedModel

log = logging.getLogger(__name__)
CHECKPOINT = "checkpoint.pt"
# The cosine schedule's position (0 -> 1) before which validations do not count against
# the patience: early stopping never cuts a run before it.
EARLY_STOP_FROM = 0.5


@dataclass
class Trained:
    """A trained model with everything needed to export and evaluate it."""

    model: SASRec
    model_config: ModelConfig
    train_config: TrainConfig
    vocab: Vocabulary
    split: Split
    history: list[dict[str, float]] = field(default_factory=list)
    best_epoch: int = 0
    best_ndcg: float = -1.0
    # The most-popular ranking's validation NDCG@10 on the same users: the floor a model must
    # clear (a run that never learned, e.g. at too high a rate, sits at or under it).
    popularity_ndcg: float = -1.0
    epochs_run: int = 0
    train_seconds: float = 0.0
    stopped: str = ""
    # Where the weights started: {"from": version dir, "old_items", "new_items"}; empty if cold.
    warm_start: dict[str, Any] = field(default_factory=dict)
    schedule: dict[str, Any] = field(default_factory=dict)  # BudgetSchedule.state()
    # Settings chosen from the data ({"shape": ..., "chosen": ...}); empty if none were.
    adapted: dict[str, Any] = field(default_factory=dict)


def train(
    interactions: Interactions,
    model_config: ModelConfig | None = None,
    train_config: TrainConfig | None = None,
    *,
    event_weights: Mapping[str, float] = DEFAULT_EVENT_WEIGHTS,
    checkpoint_dir: Path | None = None,
    resume: bool = False,
    progress: bool = True,
    init_from: LoadedModel | None = None,
    auto: frozenset[str] = frozenset(),
) -> Trained:
    """Train SASRec on ``interactions`` with a leave-one-out split; returns the best epoch's model.

    ``auto`` names settings to choose from the training data instead (see
    :mod:`recstream.model.adapt`: max_len, dim, dropout); ignored on a warm start,
    which keeps the old shape.

    With ``init_from`` (a loaded artifact) training starts from its weights: its config is kept
    (``model_config`` may change the dropout; another shape is an error), its items keep their
    rows and new items are appended after them (see :mod:`recstream.model.warm`).
    """
    schedule = train_config or TrainConfig()
    schedule = dataclasses.replace(schedule, precision=resolve_precision(schedule.precision))
    if init_from is None:
        shape = model_config or ModelConfig()
        sequences = build_sequences(interactions, event_weights)
    else:
        shape = warm_config(init_from.config, model_config)
        old_vocab = Vocabulary(init_from.item_ids)
        sequences = build_sequences(interactions, event_weights, old_vocab, extend=True)
    if not sequences.users:
        raise ValueError("no interactions left to train on (all event types weighted 0?)")
    split = leave_one_out(sequences)
    adapted: dict[str, Any] = {}
    if auto and init_from is None:
        found = adapt.data_shape(split.train, len(sequences.vocab))
        shape, chosen = adapt.apply(found, auto, shape)
        adapted = {"shape": found.as_dict(), "chosen": chosen}
        log.info("chosen from the data: %s", json.dumps(adapted))
    config = dataclasses.replace(shape, n_items=len(sequences.vocab))
    torch.set_num_threads(schedule.threads)
    torch.manual_seed(schedule.seed)  # the initial weights (of new items, on a warm start)
    run = Trained(SASRec(config), config, schedule, sequences.vocab, split, adapted=adapted)
    if init_from is not None:
        check_prefix(init_from.item_ids, sequences.vocab)
        added = copy_weights(run.model, init_from.model.state_dict(), len(init_from.item_ids))
        n_old = len(init_from.item_ids)
        run.warm_start = {
            "from": str(init_from.path),
            "old_items": n_old,
            "new_items": len(sequences.vocab) - n_old,
            "added": added,
        }
        log.info("warm start from %s: %s", init_from.path, json.dumps(run.warm_start))
    _fit(run, checkpoint_dir, resume, progress)
    return run


def _fit(run: Trained, checkpoint_dir: Path | None, resume: bool, progress: bool) -> None:
    tc = run.train_config
    # Decoupled decay (AdamW): an L2 term inside Adam would be rescaled per weight by its
    # gradient history and barely touch the rarely-updated rows of the item table.
    optim = torch.optim.AdamW(run.model.parameters(), lr=tc.lr, weight_decay=tc.weight_decay)
    path = checkpoint_dir / CHECKPOINT if checkpoint_dir else None
    best, bad = copy.deepcopy(run.model.state_dict()), 0
    if resume and path and path.is_file():
        best, bad = _load_checkpoint(path, run, optim)
    plan = BudgetSchedule(tc.epochs, tc.time_budget_s, **run.schedule)
    task = evaluation_task(run.split, "valid", run.model_config.n_items, tc.eval_users)
    validation_s = 0.0  # the last validation's time, kept back from the budget
    while run.epochs_run < tc.epochs and not run.stopped:
        started = time.perf_counter()
        loss, done = _train_epoch(run, optim, plan, validation_s, progress)
        record: dict[str, float] = {"epoch": run.epochs_run + 1, "loss": loss}
        if done < 1.0:
            record["fraction"] = round(done, 4)
            run.stopped = _annealed(run, plan, done)
        run.epochs_run += 1
        if run.epochs_run % tc.eval_every == 0 or run.epochs_run == tc.epochs or run.stopped:
            began = time.perf_counter()
            scores = model_scores(run.model, task.inputs, run.model_config.inference_len)
            ndcg, hr = masked_ndcg_hr(scores, task)
            validation_s = time.perf_counter() - began
            record |= {"valid_ndcg@10": ndcg, "valid_hr@10": hr}
            best, bad = _track_best(run, ndcg, best, bad, _may_stop(tc, plan.position))
        elapsed = time.perf_counter() - started
        run.train_seconds += elapsed
        run.history.append(record | {"seconds": elapsed, "lr_position": plan.position})
        log.info("epoch %s", json.dumps(run.history[-1]))
        if not plan.timed:  # a timed schedule stops itself, annealed, inside an epoch
            _check_budget(run, elapsed)
        run.schedule = plan.state()
        if path and "valid_ndcg@10" in record:
            _save_checkpoint(path, run, optim, best, bad)
    run.model.load_state_dict(best)
    run.stopped = run.stopped or "max epochs"
    run.popularity_ndcg = _popularity_floor(run, task)


def _popularity_floor(run: Trained, task: EvalTask) -> float:
    """The popularity ranking's validation NDCG@10, with a warning when the best epoch does
    not clear it: such a model recommends worse than a bestseller list."""
    floor, _ = masked_ndcg_hr(popularity_scores(task), task)
    if run.best_ndcg <= floor:
        log.warning(
            "the trained model is no better than most-popular on validation (NDCG@10 %.4f <= "
            "%.4f): it did not learn; try a lower --lr, more epochs or more data",
            run.best_ndcg,
            floor,
        )
    return floor


def _annealed(run: Trained, plan: BudgetSchedule, done: float) -> str:
    """The stopping reason when the time budget, not the epochs, ended the schedule."""
    epochs = run.epochs_run + done
    return (
        f"time budget of {plan.budget_s:.0f} s: the schedule annealed over {epochs:.2f} of "
        f"{run.train_config.epochs} epochs"
    )


def _train_epoch(
    run: Trained,
    optim: torch.optim.Optimizer,
    plan: BudgetSchedule,
    reserve_s: float,
    progress: bool,
) -> tuple[float, float]:
    """One epoch (or its start, when the time budget runs out in it): the mean loss and the
    fraction of its steps taken."""
    tc, epoch = run.train_config, run.epochs_run
    rng = np.random.default_rng([tc.seed, epoch])
    generator = torch.Generator().manual_seed(tc.seed * 1_000_003 + epoch)
    run.model.seed_dropout([tc.seed, epoch, 1])
    max_len = run.model_config.max_len
    windows = training_windows(run.split.train, run.split.train_weights, max_len, tc.full_history)
    batches = _length_buckets([len(w) for w in windows[0]], tc.batch_size, rng)
    run.model.train()
    total, count, step_s, began = 0.0, 0, 0.0, time.perf_counter()
    with _progress_bar(progress) as bar:
        task = bar.add_task(f"epoch {epoch + 1}", total=len(batches))
        for step, rows in enumerate(batches):
            spent = run.train_seconds + time.perf_counter() - began
            left = (tc.epochs - epoch) * len(batches) - step
            at = epoch + step / len(batches)
            position = plan.next_position(at, spent, left, reserve_s, step_s)
            if plan.timed and (position >= 1.0 or plan.exhausted(spent, reserve_s)):
                return total / max(count, 1), step / len(batches)
            _set_learning_rate(optim, tc, position)
            items = [windows[0][r] for r in rows]
            weights = [windows[1][r] for r in rows]
            earlier = [windows[2][r] for r in rows]
            step_started = time.perf_counter()
            loss = _train_step(run, optim, items, weights, earlier, generator)
            step_s = time.perf_counter() - step_started
            total, count = total + loss, count + 1
            bar.update(task, advance=1, description=f"epoch {epoch + 1} loss {total / count:.4f}")
    return total / max(count, 1), 1.0


def _set_learning_rate(optim: torch.optim.Optimizer, tc: TrainConfig, position: float) -> None:
    # A function of the schedule's position (0 → 1): a resumed run needs no scheduler state.
    lr = tc.lr
    if tc.schedule == "cosine":
        lr *= 0.5 * (1.0 + math.cos(math.pi * position))
    if position < tc.warmup:
        lr *= position / tc.warmup
    for group in optim.param_groups:
        group["lr"] = lr


def _length_buckets(
    lengths: list[int], batch_size: int, rng: np.random.Generator
) -> list[np.ndarray]:
    """Shuffled batches of windows of similar length: padding to the longest is cheap.

    The jitter on the sort key keeps batch composition changing from epoch to epoch.
    """
    jitter = rng.uniform(0, 0.1 * max(lengths, default=1), len(lengths))
    order = np.argsort(np.array(lengths, dtype=np.float64) + jitter)
    batches = [order[i : i + batch_size] for i in range(0, len(order), batch_size)]
    return [batches[i] for i in rng.permutation(len(batches))]


def _train_step(
    run: Trained,
    optim: torch.optim.Optimizer,
    items: list[np.ndarray],
    weights: list[np.ndarray],
    earlier: list[np.ndarray],
    generator: torch.Generator,
) -> float:
    inputs, targets, target_weights = training_batch(items, weights, run.model_config.max_len)
    hidden = run.model(inputs)  # [B, T, D]
    real = targets != 0  # [B, T]; logits only where there is a next item
    tc = run.train_config
    exclude = None
    if tc.exclude_seen and tc.loss == "ce":
        exclude = seen_mask(inputs, targets, earlier, run.model_config.n_items)
    loss = next_item_loss(
        tc.loss,
        hidden[real],  # [N, D]
        run.model.item_embeddings(),
        targets[real] - 1,
        target_weights[real],
        negatives=tc.negatives,
        gbce_t=tc.gbce_t,
        generator=generator,
        exclude=exclude,
        precision=tc.precision,
    )
    optim.zero_grad(set_to_none=True)
    loss.backward()
    optim.step()
    return float(loss.detach())


def _may_stop(tc: TrainConfig, position: float) -> bool:
    """Early stopping counts only validations in the cosine's second half: validation often
    plateaus while the rate is high and climbs again as it anneals (ML-100K: a plateau from
    epoch 8 to 22, the best at 32 of 40), so a stop then would throw the annealing away."""
    return tc.schedule != "cosine" or position >= EARLY_STOP_FROM


def _track_best(
    run: Trained, ndcg: float, best: dict[str, Any], bad: int, may_stop: bool
) -> tuple[dict[str, Any], int]:
    if ndcg > run.best_ndcg:
        run.best_ndcg, run.best_epoch = ndcg, run.epochs_run
        return copy.deepcopy(run.model.state_dict()), 0
    if not may_stop:  # validations before the midpoint do not count against the patience
        return best, 0
    if bad + 1 >= run.train_config.patience:
        run.stopped = f"early stop: no better validation NDCG@10 for {bad + 1} validations"
    return best, bad + 1


def _check_budget(run: Trained, last_epoch_s: float) -> None:
    budget = run.train_config.time_budget_s
    # Stop before an epoch that would overrun the budget, not after.
    if budget and not run.stopped and run.train_seconds + last_epoch_s > budget:
        run.stopped = f"time budget of {budget:.0f} s reached"


def _progress_bar(enabled: bool) -> Progress:
    return Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeRemainingColumn(),
        console=Console(stderr=True),
        transient=True,
        disable=not enabled,
    )


def _fingerprint(run: Trained) -> str:
    configs = [dataclasses.asdict(run.model_config), dataclasses.asdict(run.train_config)]
    configs[1].pop("time_budget_s")  # may change on resume, as may a constant rate's epochs
    # Checkpoints written before these options existed still resume where they are off.
    for config, key in ((1, "warmup"), (0, "temperature"), (0, "distance_bias")):
        if not configs[config][key]:
            configs[config].pop(key)
    if run.train_config.schedule == "constant":
        configs[1].pop("epochs")
    lengths = sum(len(s) for s in run.split.train)
    return json.dumps([configs, len(run.vocab), lengths, run.vocab.item_ids[:50]])


def _save_checkpoint(
    path: Path, run: Trained, optim: torch.optim.Optimizer, best: dict[str, Any], bad: int
) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    payload = {
        "model": run.model.state_dict(),
        "optim": optim.state_dict(),
        "best": best,
        "bad": bad,
        "progress": json.dumps(_progress_state(run)),
        "fingerprint": _fingerprint(run),
    }
    tmp = path.with_name(f".{path.name}.tmp")
    torch.save(payload, tmp)
    os.replace(tmp, path)


def _progress_state(run: Trained) -> dict[str, Any]:
    keys = (
        "history",
        "best_epoch",
        "best_ndcg",
        "epochs_run",
        "train_seconds",
        "stopped",
        "schedule",
    )
    return {k: getattr(run, k) for k in keys}


def _load_checkpoint(
    path: Path, run: Trained, optim: torch.optim.Optimizer
) -> tuple[dict[str, Any], int]:
    payload = torch.load(path, map_location="cpu", weights_only=True)  # never unpickle code
    if payload.get("fingerprint") != _fingerprint(run):
        raise ValueError(
            f"{path}: checkpoint is from a different dataset or configuration; "
            "start without --resume or use another --checkpoint-dir"
        )
    run.model.load_state_dict(payload["model"])
    optim.load_state_dict(payload["optim"])
    for key, value in json.loads(payload["progress"]).items():
        setattr(run, key, value)
    run.stopped = ""  # a resumed run may have a larger epoch or time budget
    log.info("resumed from %s after epoch %d", path, run.epochs_run)
    return payload["best"], int(payload["bad"])
