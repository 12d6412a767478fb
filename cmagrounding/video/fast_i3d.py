"""An inference-only copy of I3D, rebuilt for speed from an ``InceptionI3d`` (whose weights and
pytorch-i3d state-dict layout stay untouched: this module is derived, never saved or loaded).

What it changes, each measured by ``benchmarks/bench_extractor.py``:
- BatchNorm folded into the convolution's weights and bias (computed in float64): no separate
  batch-norm pass over every activation.
- Weights stored once in the compute dtype (bf16 where the CPU has it), instead of autocast casting
  all 12.7 M weights on every call.
- The three 1x1x1 convolutions of an Inception module that read the same input (b0, b1a, b2a)
  merged into one convolution with their output channels stacked: one GEMM over the input instead
  of three, followed by one in-place ReLU.
- channels_last_3d kept through every layer (the default layout is otherwise returned by oneDNN
  for the 3x3x3 convolutions with few input channels, and ``cat`` keeps it).
- fp32 1x1x1 convolutions as one GEMM (``F.linear``) over the channels-last rows.
- TF "SAME" max pools as separable running maxima of strided views (no padded copy, no indices).

Numerically it is the same network: features match the eager fp32 model to cosine > 0.9999 in fp32
(differences are float rounding of the folded weights), see tests/test_video_fast_i3d.py.
"""

from __future__ import annotations

import math
from typing import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from cmagrounding.video.i3d import ENDPOINTS, InceptionI3d, MaxPool3dSame, Unit3D, _pads

CL = torch.channels_last_3d


def fold_unit(unit: Unit3D) -> tuple[torch.Tensor, torch.Tensor]:
    """(weight, bias) of ``unit``'s conv with its BatchNorm folded in, in float32 (eval statistics)."""
    w = unit.conv3d.weight.detach().double()
    b = unit.conv3d.bias.detach().double() if unit.conv3d.bias is not None else torch.zeros(w.shape[0], dtype=torch.float64)
    if unit.bn is not None:
        bn = unit.bn
        scale = bn.weight.detach().double() / torch.sqrt(bn.running_var.detach().double() + bn.eps)
        w = w * scale.view(-1, 1, 1, 1, 1)
        b = (b - bn.running_mean.detach().double()) * scale + bn.bias.detach().double()
    return w.float(), b.float()


class FusedConv(nn.Module):
    """Conv3d with folded BN + optional ReLU and TF SAME padding. (B, Cin, T, H, W) -> (B, Cout, ...)."""

    def __init__(
        self, weight: torch.Tensor, bias: torch.Tensor, kernel: Sequence[int], stride: Sequence[int], relu: bool, dtype: torch.dtype
    ) -> None:
        super().__init__()
        self.kernel = tuple(kernel)
        self.stride = tuple(stride)
        self.relu = relu
        # fp32 1x1x1: a plain GEMM over the channels-last rows. torch sends a 1x1x1 conv with one
        # thread and a batch under 16 to its unfold-and-GEMM fallback, 1.5-2.6x slower than
        # F.linear here; in bf16 oneDNN's conv is as fast (docs/performance.md)
        self.gemm = self.kernel == (1, 1, 1) and self.stride == (1, 1, 1) and dtype == torch.float32
        self.register_buffer("weight", weight.to(dtype).contiguous(memory_format=CL))
        self.register_buffer("bias", bias.to(dtype))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.gemm and x.is_contiguous(memory_format=CL):
            rows = x.permute(0, 2, 3, 4, 1)  # (B, T, H, W, Cin), contiguous: no copy
            y = F.linear(rows, self.weight.view(self.weight.shape[:2]), self.bias).permute(0, 4, 1, 2, 3)
            return F.relu_(y) if self.relu else y
        pads = _pads(x, self.kernel, self.stride)
        if all(a == b for a, b in pads):
            y = F.conv3d(x, self.weight, self.bias, self.stride, tuple(a for a, _ in pads))
        else:
            flat = [p for pair in reversed(pads) for p in pair]
            y = F.conv3d(F.pad(x, flat), self.weight, self.bias, self.stride)
        if not y.is_contiguous(memory_format=CL):
            y = y.contiguous(memory_format=CL)  # oneDNN may hand back the default layout; keep one layout
        return F.relu_(y) if self.relu else y

    @classmethod
    def from_units(cls, units: Sequence[Unit3D], dtype: torch.dtype) -> FusedConv:
        """One conv computing the given units (same input, same kernel) with outputs stacked on channels."""
        folded = [fold_unit(u) for u in units]
        w = torch.cat([f[0] for f in folded])
        b = torch.cat([f[1] for f in folded])
        first = units[0]
        return cls(w, b, first.kernel, first.stride, first.activation, dtype)


def _shifted_max_padded(x: torch.Tensor, kernel: Sequence[int], pads: Sequence[tuple[int, int]], pad_value: float) -> torch.Tensor:
    """The functional form of stride-1 ``_strided_max`` (padded copies, no in-place writes), for compilers."""
    for dim, k, (front, back) in zip((2, 3, 4), kernel, pads):
        if k == 1:
            continue
        n = x.shape[dim]
        flat = [0] * 6
        flat[2 * (4 - dim)], flat[2 * (4 - dim) + 1] = front, back
        z = F.pad(x, flat, value=pad_value)
        y = z.narrow(dim, 0, n)
        for j in range(1, k):
            y = torch.maximum(y, z.narrow(dim, j, n))
        x = y
    return x


def _every(dim: int, step: int) -> tuple[slice, ...]:
    """Index taking every ``step``-th element along ``dim`` of a 5-D tensor."""
    return (slice(None),) * dim + (slice(None, None, step),)


def _strided_max(x: torch.Tensor, kernel: Sequence[int], stride: Sequence[int], pads: Sequence[tuple[int, int]]) -> torch.Tensor:
    """TF SAME max pool as separable running maxima of strided views, one dimension at a time.

    No padded copy and no indices: each output takes the max over the in-range part of its window,
    which is what -inf padding gives (and 0 padding after a ReLU), for any input. For the pools
    that halve I3D's resolution (1x3x3 and 3x3x3 at stride 2, 2x2x2), which would otherwise pad
    their whole input and run ``max_pool3d`` (it also computes indices): 1.10x on the whole fused
    fp32 network. For the stride-1 3x3x3 pools of the Inception modules: 2-2.4x faster than
    ``max_pool3d`` in bf16 on channels-last data and 1.05-2.1x in fp32 (one thread, an
    AVX512-BF16 Xeon; docs/performance.md)."""
    for dim, k, s, (front, _) in zip((2, 3, 4), kernel, stride, pads):
        if k == 1 and s == 1:
            continue
        n = x.shape[dim]
        out_n = -(-n // s)
        shape = list(x.shape)
        shape[dim] = out_n
        y = torch.empty(shape, dtype=x.dtype, device=x.device, memory_format=CL)
        taps = []  # (input view, first output, end output) per tap in range
        for j in [front] + [j for j in range(k) if j != front]:  # offset 0 first: it reaches every output
            off = j - front
            o_lo = -(off // s) if off < 0 else 0  # first output whose tap j lies inside the input
            o_hi = min(out_n, (n - 1 - off) // s + 1)
            if o_hi > o_lo:
                taps.append((x.narrow(dim, o_lo * s + off, (o_hi - o_lo - 1) * s + 1)[_every(dim, s)], o_lo, o_hi))
        first = taps[0][0]
        if len(taps) == 1:
            y.copy_(first)
        else:  # the first two taps in one pass (no copy of the first), its uncovered ends copied
            src, lo, hi = taps[1]
            torch.maximum(first.narrow(dim, lo, hi - lo), src, out=y.narrow(dim, lo, hi - lo))
            for e0, e1 in ((0, lo), (hi, out_n)):
                if e1 > e0:
                    y.narrow(dim, e0, e1 - e0).copy_(first.narrow(dim, e0, e1 - e0))
        for src, lo, hi in taps[2:]:
            v = y.narrow(dim, lo, hi - lo)
            torch.maximum(v, src, out=v)
        x = y
    return x


class FastPool(nn.Module):
    """TF SAME max pool: strided maxima in eager (``_strided_max``); under a compiler, forms it can fuse.

    ``nonnegative``: the input follows a ReLU (true of every pool in I3D), so padding with 0 is exact
    and keeps compiled graphs finite."""

    def __init__(self, pool: MaxPool3dSame, nonnegative: bool = False) -> None:
        super().__init__()
        self.kernel = pool.kernel
        self.stride = pool.stride
        self.pad_value = 0.0 if nonnegative else -math.inf

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        pads = _pads(x, self.kernel, self.stride)
        if not torch.compiler.is_compiling():
            return _strided_max(x, self.kernel, self.stride, pads)
        if x.dtype != torch.float32 and self.stride == (1, 1, 1):  # inductor cannot fuse around in-place
            return _shifted_max_padded(x, self.kernel, pads, self.pad_value)
        if all(a == b for a, b in pads) and all(2 * a <= k for (a, _), k in zip(pads, self.kernel)):
            return F.max_pool3d(x, self.kernel, self.stride, tuple(a for a, _ in pads))
        flat = [p for pair in reversed(pads) for p in pair]
        return F.max_pool3d(F.pad(x, flat, value=self.pad_value), self.kernel, self.stride)


class FastMixed(nn.Module):
    """An Inception module with its three shared-input 1x1x1 convs merged into one."""

    def __init__(self, module: nn.Module, dtype: torch.dtype) -> None:
        super().__init__()
        self.split = (module.b0.conv3d.out_channels, module.b1a.conv3d.out_channels, module.b2a.conv3d.out_channels)
        self.reduce = FusedConv.from_units([module.b0, module.b1a, module.b2a], dtype)
        self.b1b = FusedConv.from_units([module.b1b], dtype)
        self.b2b = FusedConv.from_units([module.b2b], dtype)
        self.b3a = FastPool(module.b3a, nonnegative=True)  # its input is the previous module's ReLU outputs
        self.b3b = FusedConv.from_units([module.b3b], dtype)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y0, y1, y2 = torch.split(self.reduce(x), self.split, dim=1)
        return torch.cat([y0, self.b1b(y1), self.b2b(y2), self.b3b(self.b3a(x))], dim=1)


class FastI3D(nn.Module):
    """Inference-only I3D in ``dtype`` (float32 or bfloat16). Input (B, 3, T, H, W) in [-1, 1].

    ``features(x)`` -> (B, 1024) float32, ``forward(x)`` -> (B, num_classes) logits, as InceptionI3d.
    """

    feature_dim = 1024

    def __init__(self, model: InceptionI3d, dtype: torch.dtype = torch.float32) -> None:
        super().__init__()
        self.dtype = dtype
        self.num_classes = model.num_classes
        layers = []
        for name in ENDPOINTS:
            layer = getattr(model, name)
            if isinstance(layer, Unit3D):
                layers.append((name, FusedConv.from_units([layer], dtype)))
            elif isinstance(layer, MaxPool3dSame):
                layers.append((name, FastPool(layer, nonnegative=True)))  # every I3D pool follows a ReLU
            else:
                layers.append((name, FastMixed(layer, dtype)))
        self.layers = nn.ModuleDict(layers)
        w, b = fold_unit(model.logits)  # no BN: the plain conv with its bias, kept in float32
        self.logits = FusedConv(w, b, (1, 1, 1), (1, 1, 1), relu=False, dtype=torch.float32)
        self.eval()

    def mixed_5c(self, x: torch.Tensor) -> torch.Tensor:
        """(B, 3, T, H, W) -> Mixed_5c (B, 1024, ~T/8, ~H/32, ~W/32) in ``dtype``."""
        x = x.to(self.dtype).contiguous(memory_format=CL)
        for layer in self.layers.values():
            x = layer(x)
        return x

    def features(self, x: torch.Tensor) -> torch.Tensor:
        return self.mixed_5c(x).float().mean(dim=(2, 3, 4))

    def head(self, mixed_5c: torch.Tensor) -> torch.Tensor:
        """As ``InceptionI3d.head``, in float32."""
        m = mixed_5c.float()
        _, _, t, h, w = m.shape
        pooled = F.avg_pool3d(m, (min(2, t), min(7, h), min(7, w)), stride=1)
        return self.logits(pooled).mean(dim=(2, 3, 4))

    def features_and_logits(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        m = self.mixed_5c(x)
        return m.float().mean(dim=(2, 3, 4)), self.head(m)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.mixed_5c(x))
