"""From interaction rows to per-user index sequences, the leave-one-out split and padded batches.

Item indices run 1..n_items; 0 is padding. A user's rows are ordered by ``ts`` with a stable
sort, so rows that share a timestamp keep their file order.
"""

from __future__ import annotations

import functools
import itertools
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

import numpy as np
import torch

from recstream.model.data import Interactions

MIN_EVAL_LENGTH = 3  # one training item at least, one validation target, one test target


@dataclass(frozen=True)
class Vocabulary:
    """Item id strings in row order; item ``item_ids[i]`` has index ``i + 1``."""

    item_ids: tuple[str, ...]

    @property
    def index(self) -> dict[str, int]:
        return {item: i + 1 for i, item in enumerate(self.item_ids)}

    def __len__(self) -> int:
        return len(self.item_ids)


@dataclass(frozen=True)
class UserSequences:
    """Each user's item indices and target weights, oldest first."""

    users: tuple[str, ...]
    items: tuple[np.ndarray, ...]  # each [n_u] int64, values in 1..n_items
    weights: tuple[np.ndarray, ...]  # each [n_u] float32, the event-type weight of that row
    vocab: Vocabulary


@dataclass(frozen=True)
class Split:
    """Leave-one-out: ``train`` sequences, and for evaluable users the two held-out targets.

    Users with fewer than three interactions are never evaluated; their sequences still train.
    """

    train: tuple[np.ndarray, ...]  # all users' training items
    train_weights: tuple[np.ndarray, ...]
    eval_rows: np.ndarray  # [m] indices into train of users with >= 3 interactions
    valid_targets: np.ndarray  # [m] second-to-last item of each evaluable user
    test_targets: np.ndarray  # [m] last item


def build_sequences(
    data: Interactions,
    event_weights: Mapping[str, float],
    vocab: Vocabulary | None = None,
    *,
    extend: bool = False,
) -> UserSequences:
    """Drop zero-weight event types, order each user's rows by ts, map ids to indices.

    With ``vocab`` (a trained model's), unknown items are dropped, or with ``extend`` appended
    after the vocabulary's own ids (so its rows keep their indices); without, one is built.
    """
    keep = _type_weights(data.types, event_weights)
    rows = np.flatnonzero(keep > 0)
    if vocab is None:
        vocab = Vocabulary(tuple(sorted(set(data.items[rows]), key=_natural_key)))
    elif extend:
        vocab = extend_vocabulary(vocab, data.items[rows])
    index = vocab.index
    item_idx = np.array([index.get(i, 0) for i in data.items[rows]], dtype=np.int64)
    rows, item_idx = rows[item_idx > 0], item_idx[item_idx > 0]
    _, user_code = np.unique(data.users[rows], return_inverse=True)
    order = np.lexsort((data.ts[rows], user_code))  # stable: ties keep file order
    rows, item_idx, user_code = rows[order], item_idx[order], user_code[order]
    users = data.users[rows]
    starts = np.flatnonzero(np.r_[True, user_code[1:] != user_code[:-1]])
    bounds = list(itertools.pairwise([*starts.tolist(), len(rows)]))
    items = tuple(item_idx[a:b] for a, b in bounds)
    weights = tuple(keep[rows[a:b]] for a, b in bounds)
    return UserSequences(tuple(users[starts]), items, weights, vocab)


def extend_vocabulary(vocab: Vocabulary, items: Iterable[str]) -> Vocabulary:
    """``vocab``'s ids in their order, then the unseen ones among ``items`` (natural order)."""
    known = set(vocab.item_ids)
    new = sorted({i for i in items if i not in known}, key=_natural_key)
    return Vocabulary((*vocab.item_ids, *new))


def leave_one_out(sequences: UserSequences) -> Split:
    """Last item to test, second-to-last to validation, the rest to training."""
    lengths = np.array([len(s) for s in sequences.items])
    eval_rows = np.flatnonzero(lengths >= MIN_EVAL_LENGTH)
    held = set(eval_rows.tolist())
    train = tuple(s[:-2] if u in held else s for u, s in enumerate(sequences.items))
    weights = tuple(w[:-2] if u in held else w for u, w in enumerate(sequences.weights))
    valid = np.array([sequences.items[u][-2] for u in eval_rows], dtype=np.int64)
    test = np.array([sequences.items[u][-1] for u in eval_rows], dtype=np.int64)
    return Split(train, weights, eval_rows, valid, test)


def pad_right(
    sequences: Sequence[np.ndarray], max_len: int, dtype: type = np.int64
) -> torch.Tensor:
    """Keep each sequence's last ``max_len`` items, right-pad with 0 to the longest: [B, T]."""
    width = max(1, min(max_len, max((len(s) for s in sequences), default=1)))
    out: np.ndarray = np.zeros((len(sequences), width), dtype=dtype)
    for row, seq in enumerate(sequences):
        tail = seq[-width:] if len(seq) else seq
        if len(tail):
            out[row, : len(tail)] = tail
    return torch.from_numpy(out)


def training_windows(
    items: Sequence[np.ndarray], weights: Sequence[np.ndarray], max_len: int, full: bool
) -> tuple[list[np.ndarray], list[np.ndarray], list[np.ndarray]]:
    """Slices of at most ``max_len + 1`` items to train on: each user's newest one, and with
    ``full`` the older history too (neighbouring slices share one item, so every target is
    trained exactly once per epoch). Returns the slices, their weights, and the items before
    each slice (what :func:`seen_mask` excludes besides the slice's own items)."""
    out_items, out_weights, out_earlier = [], [], []
    for seq, weight in zip(items, weights, strict=True):
        end = len(seq)
        while end >= 2:
            start = max(0, end - max_len - 1)
            out_items.append(seq[start:end])
            out_weights.append(weight[start:end])
            out_earlier.append(seq[:start])
            if not full:
                break
            end = start + 1
    return out_items, out_weights, out_earlier


def training_batch(
    items: Sequence[np.ndarray], weights: Sequence[np.ndarray], max_len: int
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Inputs, next-item targets and target weights, each [B, T]; 0 target = padding."""
    inputs = pad_right([s[:-1] for s in items], max_len)
    targets = pad_right([s[1:] for s in items], max_len)
    target_weights = pad_right([w[1:] for w in weights], max_len, dtype=np.float32)
    return inputs, targets, target_weights


def seen_mask(
    inputs: torch.Tensor, targets: torch.Tensor, earlier: Sequence[np.ndarray], n_items: int
) -> torch.Tensor:
    """[N, n_items] bool: the items each non-padding position's user has already shown.

    ``inputs``/``targets`` [B, T] as from :func:`training_batch`; ``earlier[b]`` the user's
    items before window b (see :func:`training_windows`). Rows follow ``targets != 0`` in
    row-major order, columns are 0-based item rows. A position's own target is never marked,
    so a repeat stays learnable.
    """
    batch, width = inputs.shape
    real = targets != 0  # [B, T]
    shown = torch.zeros(batch, n_items + 1, dtype=torch.bool)  # column 0 is padding
    lengths = torch.tensor([len(e) for e in earlier])
    if int(lengths.sum()):
        windows = torch.arange(batch).repeat_interleave(lengths)
        shown[windows, torch.from_numpy(np.concatenate(earlier))] = True
    window_of = torch.arange(batch)[:, None].expand(batch, width)[real]  # [N]
    mask = shown[window_of]  # [N, n_items + 1]: what came before the window
    # Within the window: every pair s <= t. Right padding means a real t has only real s.
    t, s = _lower_triangle(width)
    b = torch.arange(batch).repeat_interleave(len(t))
    t, s = t.repeat(batch), s.repeat(batch)
    row_of = real.flatten().cumsum(0).view(batch, width) - 1  # [B, T]
    inside = real[b, t]
    mask[row_of[b, t][inside], inputs[b, s][inside]] = True
    mask[torch.arange(len(window_of)), targets[real]] = False
    return mask[:, 1:]


@functools.lru_cache(maxsize=8)
def _lower_triangle(width: int) -> tuple[torch.Tensor, torch.Tensor]:
    t, s = torch.tril_indices(width, width)
    return t, s


def _type_weights(types: np.ndarray, event_weights: Mapping[str, float]) -> np.ndarray:
    unknown = sorted(set(types.tolist()) - set(event_weights))
    if unknown:
        raise ValueError(
            f"event types {unknown[:5]} have no weight; known types: {sorted(event_weights)}"
        )
    lookup = {t: float(w) for t, w in event_weights.items()}
    return np.array([lookup[t] for t in types], dtype=np.float32)


def _natural_key(item: str) -> tuple[int, int | str]:
    # Numeric ids sort as numbers ("2" before "10"); the order only makes artifacts readable.
    return (0, int(item)) if item.isdigit() else (1, item)
