"""The confidence head: does the sentence's moment lie in the clips the network sees?

An addition to the paper (docs/architecture.md, "Additions to the paper"): CMA regresses one span
(Eq. 20) and has no way to say that the sentence is absent from its input, so windows of a long
video cannot be ranked. This head reads the same pooled feature ``f`` (Eq. 19) as the regression
MLP and gives one logit; it is trained with binary cross-entropy on windows that contain the
whole moment (1) or none of it (0) (``cmagrounding.model.losses``, docs/training.md). It exists only
when ``CMAConfig.confidence_head`` is on, which no paper preset does.
"""

from __future__ import annotations

import torch
from torch import nn

from cmagrounding.model.config import CMAConfig


class ConfidenceHead(nn.Module):
    """MLP(f) -> one logit: Linear(D, H), ReLU, Linear(H, 1) with H = ``confidence_hidden``."""

    def __init__(self, config: CMAConfig) -> None:
        super().__init__()
        self.mlp = nn.Sequential(
            nn.Linear(config.hidden, config.confidence_hidden), nn.ReLU(), nn.Linear(config.confidence_hidden, 1)
        )

    def forward(self, pooled: torch.Tensor) -> torch.Tensor:
        """pooled f (B, D) of Eq. 19 -> logit (B,); sigmoid(logit) is the confidence."""
        return self.mlp(pooled).squeeze(-1)
