"""Multi-head attention blocks: self-attention SA (Eq. 10, 13, 14) and bi-attention BA (Eq. 15, 16).

Both are the same Transformer block (Vaswani et al. 2017: attention, residual, LayerNorm,
feed-forward, residual, LayerNorm); SA attends to its own sequence, BA to the other modality's.
The paper does not give the block's internals; post-norm, with an optional 2-layer feed-forward
(``ffn_dim`` > 0; none by default, see CMAConfig.ffn_dim), is the fallback. Attention runs through
``scaled_dot_product_attention`` so fused kernels apply; a context without padding passes no mask
(:func:`key_mask`), which the kernels skip.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


def key_mask(mask: torch.Tensor) -> torch.Tensor | None:
    """``mask`` (B, S) bool, or None when no key is padded (then attention needs no mask at all).

    Decided only for CPU tensors: reading the flag there is free, while on CUDA it would wait for
    the device. Without padding both give the same numbers (a mask of all True changes nothing).
    """
    if mask.device.type == "cpu" and bool(mask.all()):
        return None
    return mask


class MultiHeadAttention(nn.Module):
    """Multi-head attention of queries x (B, T, D) over a context (B, S, D)."""

    def __init__(self, dim: int, num_heads: int, dropout: float) -> None:
        super().__init__()
        self.num_heads = num_heads
        self.q = nn.Linear(dim, dim)
        self.kv = nn.Linear(dim, 2 * dim)
        self.out = nn.Linear(dim, dim)
        self.dropout = dropout

    def forward(self, x: torch.Tensor, context: torch.Tensor, context_mask: torch.Tensor | None) -> torch.Tensor:
        """x (B, T, D), context (B, S, D), context_mask (B, S) bool True = valid, or None (no
        padding) -> (B, T, D)."""
        B, T, D = x.shape
        S = context.shape[1]
        h = self.num_heads
        q = self.q(x).view(B, T, h, D // h).transpose(1, 2)  # (B, h, T, D/h)
        k, v = self.kv(context).view(B, S, 2, h, D // h).permute(2, 0, 3, 1, 4)  # each (B, h, S, D/h)
        mask = None if context_mask is None else context_mask[:, None, None, :]  # (B, 1, 1, S): padded keys get no weight
        y = F.scaled_dot_product_attention(q, k, v, attn_mask=mask, dropout_p=self.dropout if self.training else 0.0)
        return self.out(y.transpose(1, 2).reshape(B, T, D))


class AttentionBlock(nn.Module):
    """Attention + feed-forward with residuals and LayerNorm; SA when context is x, BA otherwise."""

    def __init__(self, dim: int, num_heads: int, ffn_dim: int, dropout: float) -> None:
        super().__init__()
        self.attn = MultiHeadAttention(dim, num_heads, dropout)
        self.norm1 = nn.LayerNorm(dim)
        if ffn_dim > 0:
            self.ffn = nn.Sequential(nn.Linear(dim, ffn_dim), nn.ReLU(), nn.Dropout(dropout), nn.Linear(ffn_dim, dim))
            self.norm2 = nn.LayerNorm(dim)
        else:
            self.ffn = None
        self.drop = nn.Dropout(dropout)

    def forward(self, x: torch.Tensor, context: torch.Tensor, context_mask: torch.Tensor | None) -> torch.Tensor:
        """x (B, T, D) attends to context (B, S, D) under context_mask (B, S) or None -> (B, T, D)."""
        x = self.norm1(x + self.drop(self.attn(x, context, context_mask)))
        if self.ffn is None:
            return x
        return self.norm2(x + self.drop(self.ffn(x)))
