"""Grounding (Eq. 17-20): attention pooling over clips, then an MLP that regresses (t_s, t_e)."""

from __future__ import annotations

import torch
from torch import nn

from cmagrounding.model.config import CMAConfig


class GroundingHead(nn.Module):
    """B = tanh(W_b F) (Eq. 17), a = softmax(u^T B) (Eq. 18), f = sum_i a_i F_i (Eq. 19), MLP(f) (Eq. 20).

    The span is guaranteed ordered: the MLP's two outputs go through the activation
    ``config.span_activation`` and are then sorted, so start = min and end = max. With "sigmoid"
    (the default) the span lies inside (0, 1); with "relu" (LGI's on Charades-STA) in [0, inf),
    clipped to the video where it becomes seconds and at scoring. Sorting is differentiable
    almost everywhere (it routes each gradient to the output that holds the value).
    """

    def __init__(self, config: CMAConfig) -> None:
        super().__init__()
        d = config.hidden
        self.w_b = nn.Linear(d, d)  # W_b in R^{d x d}
        self.u = nn.Linear(d, 1, bias=False)  # u_ta in R^d
        self.mlp = nn.Sequential(nn.Linear(d, config.head_hidden), nn.ReLU(), nn.Linear(config.head_hidden, 2))
        self.activation = torch.relu if config.span_activation == "relu" else torch.sigmoid

    def forward(
        self, f: torch.Tensor, video_mask: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
        """f (B, N, D), video_mask (B, N) -> span (B, 2), a (B, N), attention logits (B, N), pooled f (B, D)."""
        logits = self.u(torch.tanh(self.w_b(f))).squeeze(-1)  # (B, N)
        logits = logits.masked_fill(~video_mask, float("-inf"))
        a = torch.softmax(logits, dim=-1)  # Eq. 18; exactly 0 on padded clips
        pooled = torch.einsum("bn,bnd->bd", a, f)  # Eq. 19
        span, _ = torch.sort(self.activation(self.mlp(pooled)), dim=-1)  # Eq. 20, ordered
        return span, a, logits, pooled
