"""The SASRec network: causal self-attention over a user's most recent items.

W.-C. Kang and J. McAuley, "Self-Attentive Sequential Recommendation", ICDM 2018. Item
embeddings are shared with the output layer, so the score of item i after a sequence is
exactly ``user_vector · item_embeddings[i]`` (no bias): inner-product search reproduces
the model's ranking. Pre-norm blocks with a final LayerNorm, as in later re-implementations.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import Tensor, nn
from torch.nn import functional

from recstream.model.config import ModelConfig


class SASRec(nn.Module):
    """Sequences of item indices in, hidden states out.

    Sequences are right-padded with 0 (items first, oldest first, then padding), so plain
    causal attention never lets an item see padding and needs no mask.
    """

    def __init__(self, config: ModelConfig) -> None:
        super().__init__()
        self.max_len = config.max_len
        self.oldest_first = config.positions == "oldest"
        self.scale = config.dim**0.5
        self.temperature = config.temperature
        self.items = nn.Embedding(config.n_items + 1, config.dim, padding_idx=0)
        self.positions = nn.Embedding(config.max_len, config.dim)
        self.noise = _Noise()
        self.dropout = _Dropout(config.dropout, self.noise)
        self.blocks = nn.ModuleList(_block(config, self.noise) for _ in range(config.n_layers))
        self.norm = nn.LayerNorm(config.dim)
        nn.init.xavier_normal_(self.items.weight)
        nn.init.xavier_normal_(self.positions.weight)
        with torch.no_grad():
            self.items.weight[0].zero_()

    def seed_dropout(self, seed: list[int]) -> None:
        """Draw the dropout masks from here on from ``seed`` (training seeds every epoch)."""
        self.noise.rng = np.random.default_rng(seed)

    def forward(self, seq: Tensor) -> Tensor:
        """Hidden state after each position: seq [B, T] int64 -> [B, T, D]."""
        x, _ = self._embed(seq)  # [B, T, D]
        for block in self.blocks:
            x = block(x)
        return self._output(x)

    def user_vectors(self, seq: Tensor) -> Tensor:
        """Each row's hidden state at its last item, [B, T] -> [B, D].

        Equals ``forward(seq)`` at that position; the last block only attends from it.
        """
        x, lengths = self._embed(seq)  # [B, T, D], [B]
        for block in self.blocks[:-1]:
            x = block(x)
        last = (lengths - 1).clamp_min(0)  # [B]; an empty row yields garbage, callers zero it
        return self._output(self.blocks[-1](x, last=last))[:, 0]

    def item_embeddings(self) -> Tensor:
        """Output embeddings of items 1..n, [n_items, D]; row i is item index i + 1."""
        if self.temperature:
            return functional.normalize(self.items.weight[1:], dim=-1)
        return self.items.weight[1:]

    def _output(self, x: Tensor) -> Tensor:
        x = self.norm(x)
        if self.temperature:  # cosine similarity over the temperature, as a dot product
            return functional.normalize(x, dim=-1) / self.temperature
        return x

    def _embed(self, seq: Tensor) -> tuple[Tensor, Tensor]:
        valid = seq != 0  # [B, T]
        lengths = valid.sum(dim=1)  # [B]
        if seq.shape[1] > self.max_len:
            raise ValueError(f"sequence length {seq.shape[1]} exceeds max_len {self.max_len}")
        t = torch.arange(seq.shape[1], device=seq.device)  # [T]
        if self.oldest_first:
            # Position 0 is the window's oldest item: for a user with fewer than max_len items,
            # how far into their whole history an item is (the original SASRec's convention).
            pos = t.expand(seq.shape[0], -1)  # [B, T]
        else:
            # Position max_len - 1 is always the newest item, so short and long rows line up.
            pos = ((self.max_len - lengths)[:, None] + t).clamp_max(self.max_len - 1)  # [B, T]
        x = self.items(seq) * self.scale + self.positions(pos)  # [B, T, D]
        return self.dropout(x) * valid.unsqueeze(-1), lengths


def _block(config: ModelConfig, noise: _Noise) -> nn.Module:
    dropout = _Dropout(config.dropout, noise)
    if config.block == "hstu":
        return _HSTUBlock(config.dim, config.n_heads, config.max_len, dropout)
    bias = config.max_len if config.distance_bias else 0
    return _Block(config.dim, config.n_heads, dropout, config.block, bias)


class _Block(nn.Module):
    """Multi-head causal self-attention and a position-wise feed-forward layer.

    ``kang=False``: the usual pre-norm block. ``kang=True``: the layout of the SASRec paper's
    code — the query and both residual paths start from the normalised input, keys and values
    from the raw one — so the residual stream is re-normalised in every block.
    """

    def __init__(
        self, dim: int, n_heads: int, dropout: _Dropout, block: str, distances: int = 0
    ) -> None:
        super().__init__()
        self.n_heads = n_heads
        # A learned bias by distance on the attention scores (``distances`` = max_len), or none.
        self.distance_bias = nn.Embedding(distances, n_heads) if distances else None
        if self.distance_bias is not None:
            nn.init.zeros_(self.distance_bias.weight)
        self.kang = block == "kang"
        self.norm1 = nn.LayerNorm(dim)
        self.qkv = nn.Linear(dim, 3 * dim)
        self.proj = nn.Linear(dim, dim)
        self.norm2 = nn.LayerNorm(dim)
        self.ff = nn.Sequential(nn.Linear(dim, dim), nn.GELU(), dropout, nn.Linear(dim, dim))
        self.dropout = dropout
        # "ligr": pre-norm, each branch scaled by a sigmoid gate of its own input (LinkedIn's
        # LiGR layer, the block of eSASRec).
        gated = block == "ligr"
        self.gates = nn.ModuleList(nn.Linear(dim, dim) for _ in range(2)) if gated else None

    def forward(self, x: Tensor, last: Tensor | None = None) -> Tensor:
        """x [B, T, D] -> [B, T, D]; with ``last`` [B], only row b's position last[b]: [B, 1, D]."""
        b, h = x.shape[0], self.n_heads
        rows = torch.arange(b, device=x.device)

        def at(y: Tensor) -> Tensor:  # the query positions: all, or each row's last
            return y if last is None else y[rows, last].unsqueeze(1)

        # Keys and values for every position, queries only where asked: the served last block
        # does a third of the arithmetic. Kang's keys and values read the raw x, so there it
        # normalises the query rows alone.
        kv_in = x if self.kang else self.norm1(x)
        normed = self.norm1(at(x)) if self.kang else at(kv_in)  # the query input
        base = normed if self.kang else at(x)  # the residual base
        # The rows of the fused projection are [query; key; value]. Sizes from the layer, not
        # from x, and one product per part: an exported graph then multiplies by constant
        # weights (which int8 quantisation can quantise) and splits no activations.
        w_q, w_k, w_v = self.qkv.weight.split(self.proj.in_features)
        b_q, b_k, b_v = self.qkv.bias.split(self.proj.in_features)
        q = _split_heads(functional.linear(normed, w_q, b_q), h)  # [B, H, Tq, Dh]
        k = _split_heads(functional.linear(kv_in, w_k, b_k), h)  # [B, H, T, Dh]
        v = _split_heads(functional.linear(kv_in, w_v, b_v), h)
        bias = None
        if self.distance_bias is not None:
            bias, future = _by_distance(self.distance_bias, x.shape[1], last)
            bias = bias.masked_fill(future, float("-inf"))
        a = _attention(q, k, v, last, self.proj.in_features // h, bias)  # [B, H, Tq, Dh]
        attended = self.proj(_merge_heads(a, h))  # [B, Tq, D]
        if self.gates is not None:
            x = base + self.dropout(torch.sigmoid(self.gates[0](normed)) * attended)
            normed2 = self.norm2(x)
            return x + self.dropout(torch.sigmoid(self.gates[1](normed2)) * self.ff(normed2))
        x = base + self.dropout(attended)
        if self.kang:
            x = self.norm2(x)
            return x + self.dropout(self.ff(x))
        return x + self.dropout(self.ff(self.norm2(x)))


class _HSTUBlock(nn.Module):
    """An HSTU layer (J. Zhai et al., "Actions Speak Louder than Words", ICML 2024): one
    projection gives a gate U, values V, queries Q and keys K (each through SiLU); attention is
    pointwise, SiLU(QK^T + a learned bias by distance) over a constant length instead of a
    softmax, normalised, gated by U and projected back. No feed-forward layer. Pre-norm, with
    the same ``last`` option as :class:`_Block`.
    """

    def __init__(self, dim: int, n_heads: int, max_len: int, dropout: _Dropout) -> None:
        super().__init__()
        self.n_heads, self.max_len = n_heads, max_len
        self.norm = nn.LayerNorm(dim)
        self.uvqk = nn.Linear(dim, 4 * dim)
        self.distance_bias = nn.Embedding(max_len, n_heads)  # [distance, head]
        self.attended_norm = nn.LayerNorm(dim)
        self.out = nn.Linear(dim, dim)
        self.dropout = dropout
        nn.init.zeros_(self.distance_bias.weight)

    def forward(self, x: Tensor, last: Tensor | None = None) -> Tensor:
        """x [B, T, D] -> [B, T, D]; with ``last`` [B], only row b's position last[b]: [B, 1, D]."""
        b, t, _ = x.shape
        h = self.n_heads
        rows = torch.arange(b, device=x.device)

        normed = self.norm(x)
        query_in = normed if last is None else normed[rows, last].unsqueeze(1)  # [B, Tq, D]
        parts = zip(self.uvqk.weight.split(self.out.in_features),
                    self.uvqk.bias.split(self.out.in_features), strict=True)  # fmt: skip
        (w_u, b_u), (w_v, b_v), (w_q, b_q), (w_k, b_k) = parts
        u = functional.silu(functional.linear(query_in, w_u, b_u))  # [B, Tq, D]
        q = _split_heads(functional.silu(functional.linear(query_in, w_q, b_q)), h)  # [B,H,Tq,Dh]
        k = _split_heads(functional.silu(functional.linear(normed, w_k, b_k)), h)  # [B, H, T, Dh]
        v = _split_heads(functional.silu(functional.linear(normed, w_v, b_v)), h)
        bias, future = _by_distance(self.distance_bias, t, last)
        weights = functional.silu(q @ k.transpose(-1, -2) + bias).masked_fill(future, 0.0)
        attended = (weights / self.max_len) @ v  # [B, H, Tq, Dh]
        attended = _merge_heads(attended, h)  # [B, Tq, D]
        y = self.out(self.dropout(self.attended_norm(attended) * u))
        return (x if last is None else x[rows, last].unsqueeze(1)) + y


def _by_distance(table: nn.Embedding, t: int, last: Tensor | None) -> tuple[Tensor, Tensor]:
    """The bias by distance from each query back to each key ([H, T, T], or [B, H, 1, T] with
    ``last``) and where the key lies in the future ([T, T] or [B, 1, 1, T]): a negative
    distance (the future, and the padding after a history) is left out."""
    positions = torch.arange(t, device=table.weight.device)
    if last is None:
        distance = positions[:, None] - positions  # [T, T]
        bias = table(distance.clamp(0, table.num_embeddings - 1)).permute(2, 0, 1)
        return bias, distance < 0
    distance = (last[:, None] - positions)[:, None]  # [B, 1, T]
    bias = table(distance.clamp(0, table.num_embeddings - 1)).permute(0, 3, 1, 2)
    return bias, (distance < 0)[:, None]


def _attention(
    q: Tensor, k: Tensor, v: Tensor, last: Tensor | None, dh: int, bias: Tensor | None = None
) -> Tensor:
    """Causal softmax attention, [B, H, Tq, Dh] -> [B, H, Tq, Dh]; with ``last`` [B] the one
    query of row b sees keys up to last[b]. ``dh`` is Dh as a constant (an exported graph would
    otherwise compute the scale from the tensor's shape at run time). ``bias``: added to the
    scores instead, with -inf on every key a query must not see (see :class:`_Block`)."""
    t = k.shape[2]
    seen = None  # [B, 1, 1, T]: the keys each row's one query sees, where no bias says it
    if last is not None and bias is None:
        seen = (torch.arange(t, device=k.device) <= last[:, None])[:, None, None, :]
    if not torch.onnx.is_in_onnx_export():
        # No dropout on the attention weights: it forces the slow unfused kernel on CPU and
        # costs a third of a training step; dropout on the residual branches regularises enough.
        if bias is not None:
            return functional.scaled_dot_product_attention(q, k, v, attn_mask=bias)
        if seen is None:
            return functional.scaled_dot_product_attention(q, k, v, is_causal=True)
        return functional.scaled_dot_product_attention(q, k, v, attn_mask=seen)
    # Written out for the exported encoder: the queries' scale and the keys' transpose feed the
    # product directly, so ONNX Runtime folds both into it (the exported fused kernel scales
    # queries and keys and transposes the keys as separate passes over them).
    scores = (q * dh**-0.5) @ k.transpose(-1, -2)  # [B, H, Tq, T]
    if bias is not None:
        return (scores + bias).softmax(-1) @ v
    if seen is None:
        seen = torch.ones(t, t, dtype=torch.bool, device=k.device).tril()  # [T, T]
    return scores.masked_fill(~seen, float("-inf")).softmax(-1) @ v


def _split_heads(y: Tensor, h: int) -> Tensor:
    """[B, T, D] -> [B, H, T, D / H]. One head is a new axis, not a transpose: the exported
    encoder then copies nothing to form its heads."""
    if h == 1:
        return y.unsqueeze(1)
    return y.view(y.shape[0], y.shape[1], h, -1).transpose(1, 2)


def _merge_heads(a: Tensor, h: int) -> Tensor:
    """[B, H, T, Dh] -> [B, T, H * Dh], the inverse of :func:`_split_heads`."""
    if h == 1:
        return a.squeeze(1)
    return a.transpose(1, 2).reshape(a.shape[0], a.shape[2], -1)


class _Noise:
    """The random bytes every dropout layer of one model draws from, one seeded generator."""

    def __init__(self) -> None:
        self.rng = np.random.default_rng(0)

    def keep(self, shape: torch.Size, threshold: int) -> Tensor:
        """A bool mask of ``shape``, False where a random byte falls below ``threshold``."""
        count = int(np.prod(shape))
        raw = torch.frombuffer(bytearray(self.rng.bytes(count)), dtype=torch.uint8)
        return raw.view(shape) >= threshold


class _Dropout(nn.Module):
    """Dropout with masks from random bytes: torch's CPU Bernoulli sampling cost a fifth of a
    training step, numpy's generator makes the same masks four times faster.

    The rate is rounded to a multiple of 1/256 (0.1 → 0.1016, 0.2 → 0.1992) and the kept
    values are scaled by the exact inverse of the rounded keep rate, so expectations hold.
    """

    def __init__(self, rate: float, noise: _Noise) -> None:
        super().__init__()
        self.threshold = min(round(rate * 256), 255)  # a rate near 1 still keeps 1/256
        self.scale = 256 / (256 - self.threshold)
        self.noise = noise

    def forward(self, x: Tensor) -> Tensor:
        if not self.training or self.threshold == 0:
            return x
        return x * self.noise.keep(x.shape, self.threshold) * self.scale
