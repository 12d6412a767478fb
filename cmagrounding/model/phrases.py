"""Semantic Phrase Extracting, SPE (Eq. 7-8): K guide vectors from the word features."""

from __future__ import annotations

import torch
from torch import nn

from cmagrounding.model.config import CMAConfig


class SemanticPhraseExtractor(nn.Module):
    """A_spe = softmax(W_s2 tanh(W_s1 Q_in)) over words (Eq. 7); G = Q_in A_spe^T (Eq. 8)."""

    def __init__(self, config: CMAConfig) -> None:
        super().__init__()
        self.w_s1 = nn.Linear(config.hidden, config.spe_hidden, bias=False)
        self.w_s2 = nn.Linear(config.spe_hidden, config.num_phrases, bias=False)

    def forward(self, q: torch.Tensor, word_mask: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """q (B, L, D), word_mask (B, L) -> guides G (B, K, D), A_spe (B, K, L) (0 on padding)."""
        scores = self.w_s2(torch.tanh(self.w_s1(q))).transpose(1, 2)  # (B, K, L)
        scores = scores.masked_fill(~word_mask[:, None, :], float("-inf"))
        a = torch.softmax(scores, dim=-1)  # Eq. 7
        return a @ q, a  # Eq. 8: (B, K, D)
