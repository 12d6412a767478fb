"""Fusion f_u of video features with a query guide vector (Eq. 9, 12; Table 5)."""

from __future__ import annotations

import torch
from torch import nn


class Fusion(nn.Module):
    """Fuses video features V (B, N, D) with a guide vector g (B, D) -> (B, N, D).

    "hadamard" (the paper's best) and "add" are parameter-free as Eq. 9 reads ("plain"); "concat"
    needs a projection back to D, a Linear + ReLU here (LGI's; the paper does not specify it).
    ``projection="lgi"`` gives Hadamard LGI's "mul" form, relu(W3 (relu(W1 v) * relu(W2 g))),
    three D x D Linear layers (fallback choice, CMAConfig.fusion_projection).
    """

    def __init__(self, kind: str, dim: int, projection: str = "plain") -> None:
        super().__init__()
        self.kind = kind
        self.proj = nn.Sequential(nn.Linear(2 * dim, dim), nn.ReLU()) if kind == "concat" else None
        self.mul = None
        if kind == "hadamard" and projection == "lgi":
            self.mul = nn.ModuleDict({name: nn.Linear(dim, dim) for name in ("video", "guide", "out")})

    def forward(self, v: torch.Tensor, g: torch.Tensor) -> torch.Tensor:
        """v (B, N, D), g (B, D) -> (B, N, D)."""
        if self.mul is not None:  # the guide is projected once per row, before broadcasting over clips
            m = self.mul
            return torch.relu(m["out"](torch.relu(m["video"](v)) * torch.relu(m["guide"](g)).unsqueeze(1)))
        g = g.unsqueeze(1).expand_as(v)  # (B, N, D)
        if self.kind == "hadamard":
            return v * g
        if self.kind == "add":
            return v + g
        return self.proj(torch.cat([v, g], dim=-1))
