"""Position encodings f_PE of Eq. 2 and Eq. 5 (Table 4 compares none / learned / sin-cos)."""

from __future__ import annotations

import math

import torch
from torch import nn


def sincos_table(length: int, dim: int) -> torch.Tensor:
    """The constant sine/cosine encoding of Vaswani et al. (2017), (length, dim)."""
    pos = torch.arange(length, dtype=torch.float32).unsqueeze(1)
    freq = torch.exp(torch.arange(0, dim, 2, dtype=torch.float32) * (-math.log(10000.0) / dim))
    table = torch.zeros(length, dim)
    table[:, 0::2] = torch.sin(pos * freq)
    table[:, 1::2] = torch.cos(pos * freq[: dim // 2])
    return table


class PositionEncoding(nn.Module):
    """Adds a position code to a (B, T, D) sequence; T <= max_len.

    Positions index the sequence from 0, so padding appended at the end never shifts the codes of
    real elements (the padding invariance the masks rely on).
    """

    def __init__(self, kind: str, max_len: int, dim: int) -> None:
        super().__init__()
        self.kind = kind
        self.max_len = max_len
        if kind == "learned":
            self.table = nn.Parameter(torch.zeros(max_len, dim))
            nn.init.normal_(self.table, std=0.02)
        elif kind == "sincos":
            self.register_buffer("table", sincos_table(max_len, dim), persistent=False)
        else:
            self.table = None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.table is None:
            return x
        T = x.shape[1]
        if T > self.max_len:
            raise ValueError(f"sequence of length {T} exceeds the position encoding's maximum {self.max_len}")
        return x + self.table[:T].to(x.dtype)
