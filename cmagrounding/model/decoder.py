"""The CMA decoder (Eq. 13-16): two parallel branches that align video and words alternately."""

from __future__ import annotations

import torch
from torch import nn

from cmagrounding.model.attention import AttentionBlock, key_mask
from cmagrounding.model.config import CMAConfig


class DecoderLayer(nn.Module):
    """One layer: each branch applies self-attention, then bi-attention to the other branch.

    The last layer has no query bi-attention: its F_Q2 (Eq. 15) would feed nothing, since the
    grounding head reads only F_V2, and a block that receives no gradient is dead weight.
    """

    def __init__(self, config: CMAConfig, last: bool = False) -> None:
        super().__init__()
        c = config
        block = lambda: AttentionBlock(c.hidden, c.num_heads, c.ffn_dim, c.dropout)  # noqa: E731
        self.sa_query, self.sa_video = block(), block()
        self.ba_query = None if last else block()
        self.ba_video = block()

    def forward(
        self, q: torch.Tensor, word_mask: torch.Tensor | None, v: torch.Tensor, video_mask: torch.Tensor | None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """q (B, L, D), v (B, N, D), masks (B, L) / (B, N) or None (no padding) -> (F_Q2 (B, L, D), F_V2 (B, N, D))."""
        q1 = self.sa_query(q, q, word_mask)  # Eq. 13
        v1 = self.sa_video(v, v, video_mask)  # Eq. 14
        v2 = self.ba_video(v1, q1, word_mask)  # Eq. 16: clips attend to the words
        if self.ba_query is None:
            return q1, v2
        q2 = self.ba_query(q1, v1, video_mask)  # Eq. 15: words attend to the video
        return q2, v2


class CMADecoder(nn.Module):
    """Stacked decoder layers; the last layer's video branch F_V2 feeds the grounding head."""

    def __init__(self, config: CMAConfig) -> None:
        super().__init__()
        n = config.decoder_layers
        self.layers = nn.ModuleList(DecoderLayer(config, last=i == n - 1) for i in range(n))

    def forward(
        self, q: torch.Tensor, word_mask: torch.Tensor, v: torch.Tensor, video_mask: torch.Tensor
    ) -> torch.Tensor:
        """q (B, L, D), v (B, N, D) -> F_V2 (B, N, D)."""
        word_mask, video_mask = key_mask(word_mask), key_mask(video_mask)  # None without padding
        for layer in self.layers:
            q, v = layer(q, word_mask, v, video_mask)
        return v
