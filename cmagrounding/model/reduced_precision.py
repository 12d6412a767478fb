"""The network in bf16 for inference on CPUs with native bf16 matrix instructions (opt-in).

A query's cost is almost all matrix products (the Linear layers of the attention blocks, about
1.3 GFLOP for the paper's Charades-STA model on 92 clips); on a CPU with AVX512-BF16 or AMX a
bf16 product runs at several times the fp32 rate. Autocast would cast every weight on every call
(megabytes per query), so a bf16 copy of the network is kept instead, made once and remade only
when a weight changes. The query encoder (embedding + BiLSTM) and the grounding head stay fp32
(a few percent of the work): rounding would compound along the recurrence, and the span would
come out with bf16's 8 significant bits. Answers move by about a thousandth of the video's length
(docs/performance.md); fp32 stays the default.
"""

from __future__ import annotations

import copy
import logging
import weakref

import torch
from torch import nn

from cmagrounding.errors import ConfigError
from cmagrounding.model.weights_version import weights_key

logger = logging.getLogger(__name__)

NETWORK_PRECISIONS = ("fp32", "bf16", "auto")

# the query encoder (rounding would compound along the recurrence) and the grounding head with the
# confidence head after it (a few percent of the work; the span and the attention over clips come
# out in fp32, not rounded to bf16's 8 significant bits)
_KEPT_FP32 = ("query_encoder", "head", "confidence")


class _Float32Input(nn.Module):
    """Runs a fp32 module on the reduced-precision features before it."""

    def __init__(self, module: nn.Module) -> None:
        super().__init__()
        self.module = module

    def forward(self, x: torch.Tensor, *args: torch.Tensor):
        return self.module(x.float(), *args)


_COPIES: weakref.WeakKeyDictionary[nn.Module, tuple[tuple, nn.Module]] = weakref.WeakKeyDictionary()


def network_dtype(precision: str, device: torch.device, fast_bf16: bool = False) -> torch.dtype:
    """The dtype the network runs in: ``"fp32"``; ``"bf16"``; ``"auto"`` = bf16 on a CPU with
    native bf16 measured faster than fp32 (``fast_bf16``: the video side's ``cpu_prefers_bf16``),
    else fp32 (on CUDA a query is launch-bound, and emulated
    bf16 on other CPUs is slower than fp32)."""
    if precision not in NETWORK_PRECISIONS:
        raise ConfigError(f"network_precision must be one of {', '.join(NETWORK_PRECISIONS)}, got {precision!r}")
    if precision == "fp32":
        return torch.float32
    if precision == "auto":
        return torch.bfloat16 if device.type == "cpu" and fast_bf16 else torch.float32
    return torch.bfloat16


def reduced_copy(network: nn.Module, dtype: torch.dtype) -> nn.Module:
    """``network`` itself for fp32, else an eval-mode copy in ``dtype`` with the query encoder kept
    in fp32; the copy is remade when any of ``network``'s weights changes."""
    if dtype == torch.float32:
        return network
    key = (weights_key(network), dtype)
    kept = _COPIES.get(network)
    if kept is not None and kept[0] == key:
        return kept[1]
    with torch.inference_mode(False), torch.no_grad():  # ordinary tensors: their versions are tracked
        clone = copy.deepcopy(network).eval()
        for name, child in clone.named_children():
            if name not in _KEPT_FP32:
                child.to(dtype)
        clone.head = _Float32Input(clone.head)
    for p in clone.parameters():
        p.requires_grad_(False)
    logger.debug("made a %s copy of %s for inference", dtype, type(network).__name__)
    _COPIES[network] = (key, clone)
    return clone
