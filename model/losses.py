"""Next-item losses over the hidden states of the non-padding positions.

``hidden`` [N, D] are the positions' states, ``items`` [n_items, D] the output embeddings,
``targets`` [N] the next items as 0-based rows of ``items``, ``weights`` [N] per-target weights
(event-type weights). Each loss is the weighted mean over the N targets.

- ``ce``: full-softmax cross-entropy over the whole catalogue ("SASRec+", Klenitskiy &
  Vasilev 2023); the best ranking quality while the catalogue fits one matmul.
- ``sampled``: softmax over the target and K uniformly sampled negatives shared by the batch.
- ``gbce``: gSASRec's generalised binary cross-entropy (Petrov & Macdonald 2023), which
  counters the overconfidence that negative sampling causes.

``ce`` in ``bfloat16`` multiplies in bfloat16 (fp32 accumulation) and keeps the softmax in
float32, a chunk of rows at a time: on a CPU with native bfloat16 the three catalogue-sized
products of a step take a third of their float32 time (docs/model.md, "Training speed").
"""

from __future__ import annotations

import torch
from torch import Tensor
from torch.nn import functional

from recstream.model.config import PRECISION_CHOICES
from recstream.model.cpu import native_bfloat16

PRECISIONS = PRECISION_CHOICES[1:]
# Rows of the bfloat16 loss computed together: [CHUNK, n_items] float32 logits stay small
# enough to be reused from cache while the product stays large enough to run at full speed.
CHUNK = 512


def resolve_precision(name: str) -> str:
    """``auto`` → bfloat16 where the CPU has it natively, else float32; others as given."""
    if name not in PRECISION_CHOICES:
        raise ValueError(f"precision {name!r} unknown; expected auto, float32 or bfloat16")
    if name == "auto":
        return "bfloat16" if native_bfloat16() else "float32"
    return name


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
    precision: str = "float32",
) -> Tensor:
    """Dispatch to the loss named ``kind`` (ce, sampled, gbce); returns a scalar.

    ``exclude`` [N, n_items] bool: logits ``ce`` leaves out of the softmax (see
    :func:`recstream.model.sequences.seen_mask`); the sampled losses ignore it.
    ``precision`` bfloat16: ``ce`` multiplies in bfloat16 (training only: it computes the
    gradients in its forward pass); the sampled losses ignore it.
    """
    if precision not in PRECISIONS:
        raise ValueError(f"precision {precision!r} unknown; expected float32 or bfloat16")
    if kind == "ce" and precision == "bfloat16":
        return _FusedCE.apply(hidden, items, targets, weights, exclude)
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


class _FusedCE(torch.autograd.Function):
    """``full_softmax_ce`` with the products in bfloat16, one chunk of rows at a time. (In
    float32 the same scheme is no faster than ``full_softmax_ce``.)

    The loss is the graph's last node, so the gradients are computed with it: each chunk's
    logits are made, turned into softmax − one-hot and multiplied back while still in cache,
    and never stored whole. ``backward`` only scales them.
    """

    @staticmethod
    def forward(
        ctx: torch.autograd.function.FunctionCtx,
        hidden: Tensor,
        items: Tensor,
        targets: Tensor,
        weights: Tensor,
        exclude: Tensor | None,
    ) -> Tensor:
        dtype = torch.bfloat16
        share = weights / weights.sum().clamp_min(1e-12)  # [N]: each row's part of the mean
        low_h, low_items = hidden.to(dtype), items.to(dtype)
        grad_h, grad_items = torch.empty_like(hidden), torch.zeros_like(items)
        loss = hidden.new_zeros(())
        for s in range(0, hidden.shape[0], CHUNK):
            rows = slice(s, s + CHUNK)
            logits = (low_h[rows] @ low_items.T).float()  # [C, n_items]
            if exclude is not None:
                logits.masked_fill_(exclude[rows], float("-inf"))
            top = logits.amax(dim=1, keepdim=True)  # [C, 1]
            target = targets[rows, None]  # [C, 1]
            picked = logits.gather(1, target) - top  # [C, 1]: the target's shifted logit
            exps = logits.sub_(top).exp_()  # one exp pass serves the loss and the gradient
            total = exps.sum(dim=1, keepdim=True)  # [C, 1]
            loss += ((total.log() - picked).squeeze(1) * share[rows]).sum()
            # d loss / d logits = share * (softmax - one-hot)
            grad = exps.mul_(share[rows, None] / total)
            grad.scatter_add_(1, target, -share[rows, None])
            low_grad = grad.to(dtype)
            grad_h[rows] = low_grad @ low_items
            grad_items += low_grad.T @ low_h[rows]
        ctx.save_for_backward(grad_h, grad_items)
        return loss

    @staticmethod
    def backward(
        ctx: torch.autograd.function.FunctionCtx, upstream: Tensor
    ) -> tuple[Tensor | None, ...]:
        grad_h, grad_items = ctx.saved_tensors  # type: ignore[attr-defined]
        return grad_h * upstream, grad_items * upstream, None, None, None


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
