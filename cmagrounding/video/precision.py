"""Choosing the compute precision and memory layout of an extractor on the hardware at hand.

bf16 pays off on CPUs only with native bf16 matrix instructions (AMX or AVX512-BF16); elsewhere
(AVX2-only CPUs) bf16 convolutions are emulated and far slower than fp32, so "auto" detects them
instead of assuming. On CUDA "auto" is bf16 where supported, else fp16. "int8" (opt-in, never
chosen by "auto") is a statically quantized I3D run by ONNX Runtime; it needs AVX512-VNNI or
AVX-VNNI, whose int8 dot products make it pay off (cmagrounding.video.runtime).
"""

from __future__ import annotations

import functools
import logging
from dataclasses import dataclass

import torch

from cmagrounding.errors import ConfigError

logger = logging.getLogger(__name__)


@functools.lru_cache(maxsize=1)
def cpu_flags() -> frozenset[str]:
    """CPU feature flags from /proc/cpuinfo (empty where unavailable, e.g. macOS)."""
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("flags"):
                    return frozenset(line.split(":", 1)[1].split())
    except OSError:
        pass
    return frozenset()


@functools.lru_cache(maxsize=1)
def cpu_has_fast_bf16() -> bool:
    """True when the CPU has AMX-BF16 or AVX512-BF16 (PyTorch's own probe, else /proc/cpuinfo)."""
    for probe in ("_is_amx_tile_supported", "_is_avx512_bf16_supported"):
        fn = getattr(torch.cpu, probe, None)
        try:
            if fn is not None and fn():
                return True
        except Exception:  # noqa: BLE001  (private API; absent or failing on some builds)
            pass
    return bool({"amx_bf16", "avx512_bf16"} & cpu_flags())


@functools.lru_cache(maxsize=1)
def cpu_has_vnni() -> bool:
    """True when the CPU has int8 dot-product instructions (AVX512-VNNI, AVX-VNNI or AMX-INT8)."""
    return bool({"avx512_vnni", "avx_vnni", "amx_int8"} & cpu_flags())


@dataclass(frozen=True)
class ComputePlan:
    """How to run a model: autocast dtype (None = fp32), channels_last_3d, and int8 quantization
    (``int8``: the extractor runs quantized, outside autocast)."""

    device: torch.device
    autocast_dtype: torch.dtype | None
    channels_last: bool
    int8: bool = False

    @property
    def name(self) -> str:
        if self.int8:
            return "int8"
        return {None: "fp32", torch.bfloat16: "bf16", torch.float16: "fp16"}[self.autocast_dtype]


def plan_for(precision: str, device: torch.device) -> ComputePlan:
    """Resolve ``precision`` ("auto" | "fp32" | "bf16" | "fp16" | "int8") on ``device``."""
    if precision not in ("auto", "fp32", "bf16", "fp16", "int8"):
        raise ConfigError(f"precision must be auto, fp32, bf16, fp16 or int8, got {precision!r}")
    cuda = device.type == "cuda"
    if precision == "int8":
        if cuda:
            raise ConfigError("precision int8 is implemented for the CPU (ONNX Runtime); use bf16 or fp16 on CUDA")
        if not cpu_has_vnni():
            raise ConfigError("precision int8 needs a CPU with AVX512-VNNI/AVX-VNNI (not found in /proc/cpuinfo); use fp32")
        return ComputePlan(device, None, channels_last=False, int8=True)
    if precision == "auto":
        if cuda:
            precision = "bf16" if torch.cuda.is_bf16_supported() else "fp16"
        else:
            precision = "bf16" if cpu_has_fast_bf16() else "fp32"
        logger.debug("precision auto -> %s on %s", precision, device)
    if precision == "fp32":
        # channels_last_3d helps oneDNN/cuDNN even in fp32 on most hardware
        return ComputePlan(device, None, channels_last=True)
    dtype = torch.bfloat16 if precision == "bf16" else torch.float16
    if cuda and dtype == torch.bfloat16 and not torch.cuda.is_bf16_supported():
        raise ConfigError(f"precision bf16 is not supported on {torch.cuda.get_device_name(device)}; use fp16 or fp32")
    if not cuda and dtype == torch.bfloat16 and not cpu_has_fast_bf16():
        logger.warning("bf16 on a CPU without AMX/AVX512-BF16 is emulated and slow; precision='fp32' is faster here")
    if not cuda and dtype == torch.float16:
        logger.warning("fp16 on CPU is slow on most processors; consider precision='fp32' or 'bf16'")
    return ComputePlan(device, dtype, channels_last=True)
