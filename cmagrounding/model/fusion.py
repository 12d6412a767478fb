"""Fusion f_u of video features with a query guide vector (Eq. 9, 12; Table 5)."""

from __future__ import annotations

import torch
from torch import nn


class Fusion(nn.Module):
    """Fuses video features V (B, N, D) with a guide vector g (B, D) -> (B, N, D).

    "hadamard" (the paper's best) and "add" are parameter-free; "concat" needs a projection back
    to D, a Linear + ReLU here (fallback; the paper does not specify it).
    """

    def __init__(self, kind: str, dim: int) -> None:
        super().__init__()
        self.kind = kind
        self.proj = nn.Sequential(nn.Linear(2 * dim, dim), nn.ReLU()) if kind == "concat" else None

    def forward(self, v: torch.Tensor, g: torch.Tensor) -> torch.Tensor:
        g = g.unsqueeze(1).expand_as(v)  # (B, N, D)
        if self.kind == "hadamard":
            return v * g
        if self.kind == "add":
            return v + g
        return self.proj(torch.cat([v, g], dim=-1))
