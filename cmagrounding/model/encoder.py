"""The CMA encoder (Eq. 9-12): video features adjusted coarsely by each query guide vector."""

from __future__ import annotations

import torch
from torch import nn

from cmagrounding.model.attention import AttentionBlock, key_mask
from cmagrounding.model.config import CMAConfig
from cmagrounding.model.fusion import Fusion


class CMAEncoder(nn.Module):
    """F_in(i) = f_u(V_in, g(i)) (Eq. 9), F_enc(i) = SA(F_in(i)) (Eq. 10), F_enc = MLP_enc([...]) (Eq. 11).

    The K phrases share the self-attention weights and run as one batch of B * K sequences.
    With K = 1 the guide is s_global and no merge MLP is needed (Eq. 12).
    """

    def __init__(self, config: CMAConfig) -> None:
        super().__init__()
        c = config
        self.fusion = Fusion(c.fusion, c.hidden, c.fusion_projection)
        self.layers = nn.ModuleList(
            AttentionBlock(c.hidden, c.num_heads, c.ffn_dim, c.dropout) for _ in range(c.encoder_layers)
        )
        K = c.num_phrases
        # MLP_enc of Eq. 11; its shape is a fallback (two layers, ReLU).
        self.merge = (
            nn.Sequential(nn.Linear(K * c.hidden, c.hidden), nn.ReLU(), nn.Linear(c.hidden, c.hidden))
            if K > 1
            else None
        )

    def forward(self, v: torch.Tensor, video_mask: torch.Tensor, guides: torch.Tensor) -> torch.Tensor:
        """v (B, N, D), video_mask (B, N), guides (B, K, D) -> F_enc (B, N, D)."""
        B, N, D = v.shape
        K = guides.shape[1]
        if K > 1:  # one sequence per (video, phrase)
            v, video_mask = v.repeat_interleave(K, 0), video_mask.repeat_interleave(K, 0)
        f = self.fusion(v, guides.reshape(B * K, D))  # (B*K, N, D), Eq. 9
        mask = key_mask(video_mask)  # (B*K, N), None without padding
        for layer in self.layers:  # Eq. 10
            f = layer(f, f, mask)
        if self.merge is None:
            return f
        f = f.view(B, K, N, D).permute(0, 2, 1, 3).reshape(B, N, K * D)  # [F_enc(1), ..., F_enc(K)]
        return self.merge(f)  # Eq. 11
