"""Next-item losses over the hidden states of the non-padding positions.

``hidden`` [N, D] are the positions' states, ``items`` [n_items, D] the output embeddings,
``targets`` [N] the next items as 0-based rows of ``items``, ``weights`` [N] per-target weights
(event-type weights). Each loss is the weighted mean over the N targets.

- ``ce``: full-softmax cross-entropy over the whole catalogue ("SASRec+", Klenitskiy &
  Vasilev 2023); the best ranking quality while the catalogue fits one matmul.
- ``sampled``: softmax over the target and K uniformly sampled negatives shared by the batch.
- ``gbce``: gSASRec's generalised binary cross-entropy (Petrov & Macdonald 2023), which
  counters the overconfidence that negative sampling causes.
"""

from __future__ import annotations

import torch
from torch import Tensor
from torch.nn import functional


def next_item_loss(
    kind: str,
    hidden: Tensor,
    items: Tensor,
    targets: Tensor,
    weights: Tensor,
    *,
    negatives: int = 256,
    gbce_t: float = 0.75,
    generator: torch.Generator | None = None,
    exclude: Tensor | None = None,
) -> Tensor:
    """Dispatch to the loss named ``kind`` (ce, sampled, gbce); returns a scalar.

    ``exclude`` [N, n_items] bool: logits ``ce`` leaves out of the softmax (see
    :func:`recstream.model.sequences.seen_mask`); the sampled losses ignore it.
    """
    if kind == "ce":
        return full_softmax_ce(hidden, items, targets, weights, exclude)
    sampled = torch.randint(0, items.shape[0], (negatives,), generator=generator)  # [K]
    if kind == "sampled":
        return sampled_softmax(hidden, items, targets, weights, sampled)
    if kind == "gbce":
        return gbce(hidden, items, targets, weights, sampled, gbce_t)
    raise ValueError(f"unknown loss {kind!r}; expected ce, sampled or gbce")


def full_softmax_ce(
    hidden: Tensor,
    items: Tensor,
    targets: Tensor,
    weights: Tensor,
    exclude: Tensor | None = None,
) -> Tensor:
    logits = hidden @ items.T  # [N, n_items]
    if exclude is not None:
        # In place: the product's backward does not read its output, and a copy of an
        # [N, n_items] matrix per step would cost more than the masking itself.
        logits.masked_fill_(exclude, float("-inf"))
    return _weighted_mean(functional.cross_entropy(logits, targets, reduction="none"), weights)


def sampled_softmax(
    hidden: Tensor, items: Tensor, targets: Tensor, weights: Tensor, sampled: Tensor
) -> Tensor:
    pos, neg = _pos_neg_logits(hidden, items, targets, sampled)  # [N, 1], [N, K]
    logits = torch.cat([pos, neg], dim=1)  # [N, 1 + K]; the target is column 0
    zeros = torch.zeros(len(targets), dtype=torch.long, device=hidden.device)
    # Uniform sampling makes the logQ correction a constant, so it is left out.
    return _weighted_mean(functional.cross_entropy(logits, zeros, reduction="none"), weights)


def gbce(
    hidden: Tensor, items: Tensor, targets: Tensor, weights: Tensor, sampled: Tensor, t: float
) -> Tensor:
    pos, neg = _pos_neg_logits(hidden, items, targets, sampled)  # [N, 1], [N, K]
    alpha = sampled.numel() / max(items.shape[0] - 1, 1)  # negative sampling rate
    beta = alpha * (t * (1.0 - 1.0 / alpha) + 1.0 / alpha)
    pos_term = -beta * functional.logsigmoid(pos).squeeze(1)  # -log(sigmoid(s+)^beta)  [N]
    neg_term = -functional.logsigmoid(-neg).sum(dim=1)  # -sum log(1 - sigmoid(s-))  [N]
    return _weighted_mean(pos_term + neg_term, weights)


def _pos_neg_logits(
    hidden: Tensor, items: Tensor, targets: Tensor, sampled: Tensor
) -> tuple[Tensor, Tensor]:
    pos = (hidden * items[targets]).sum(dim=1, keepdim=True)  # [N, 1]
    neg = hidden @ items[sampled].T  # [N, K]
    # A sampled "negative" that is the target itself is no negative.
    neg = neg.masked_fill(sampled[None, :] == targets[:, None], float("-inf"))
    return pos, neg


def _weighted_mean(values: Tensor, weights: Tensor) -> Tensor:
    return (values * weights).sum() / weights.sum().clamp_min(1e-12)
