"""Choosing the compute precision and memory layout of an extractor on the hardware at hand.

bf16 pays off on CPUs only with native bf16 matrix instructions (AMX or AVX512-BF16); elsewhere
(AVX2-only CPUs) bf16 convolutions are emulated and far slower than fp32. Native bf16 is not
enough either: an Intel Xeon guest with AVX512-BF16 but no AMX (family 6 model 207) runs bf16
convolutions at 0.6x its fp32 rate, an AMD EPYC with AVX512-BF16 at 2x. So "auto" on a CPU with
native bf16 measures a 3x3x3 convolution in both precisions once per machine (about 0.2 s, the
figures recorded in the cache folder) and takes bf16 only where it is clearly faster
(docs/performance.md). On CUDA "auto" is bf16 where supported, else fp16.
"""

from __future__ import annotations

import functools
import logging
import time
from dataclasses import dataclass

import torch

from cmagrounding.errors import ConfigError
from cmagrounding.video import machine_record
from cmagrounding.video.machine_record import cpu_flags, cpu_model

logger = logging.getLogger(__name__)


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


BF16_MARGIN = 1.2  # bf16 must beat fp32 by this much: it costs a little accuracy (cosine 0.9999)


def _conv_rate(dtype: torch.dtype, reps: int = 3) -> float:
    """GFLOP per CPU-second of one thread on a 3x3x3 conv of I3D's (128 -> 192 channels, 8 x 28 x 28,
    channels-last): CPU time, so other processes on a shared machine do not skew the comparison."""
    import torch.nn.functional as F

    x = torch.randn(1, 128, 8, 28, 28).to(dtype).contiguous(memory_format=torch.channels_last_3d)
    w = torch.randn(192, 128, 3, 3, 3).to(dtype).contiguous(memory_format=torch.channels_last_3d)
    flops = 2.0 * 8 * 28 * 28 * 192 * 128 * 27
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        with torch.inference_mode():
            F.conv3d(x, w, padding=1)  # oneDNN builds its kernel on the first call
            best = float("inf")
            for _ in range(reps):
                t = time.process_time()
                F.conv3d(x, w, padding=1)
                best = min(best, time.process_time() - t)
    finally:
        torch.set_num_threads(threads)
    return flops / max(best, 1e-6) / 1e9


@functools.lru_cache(maxsize=1)
def cpu_conv_rates() -> dict[str, float]:
    """{"fp32": GFLOP/s, "bf16": GFLOP/s} of one core on a 3x3x3 convolution: read from
    ``<cache>/machine/conv_gflops_<cpu and torch key>.json`` when recorded there, else measured and recorded."""
    path = machine_record.path_for("conv_gflops")
    record = machine_record.read(path, {"cpu": str, "torch": str, "fp32": float, "bf16": float})
    if record is not None:
        return {"fp32": float(record["fp32"]), "bf16": float(record["bf16"])}
    rates = {"fp32": _conv_rate(torch.float32), "bf16": _conv_rate(torch.bfloat16)}
    logger.info("3x3x3 conv on this CPU (%s): fp32 %.1f, bf16 %.1f GFLOP/s per core", cpu_model(), rates["fp32"], rates["bf16"])
    machine_record.write(path, {"cpu": cpu_model(), "torch": torch.__version__, **rates})
    return rates


def cpu_prefers_bf16() -> bool:
    """True where bf16 is native and measured at least ``BF16_MARGIN`` times the fp32 rate."""
    if not cpu_has_fast_bf16():
        return False
    rates = cpu_conv_rates()
    return rates["bf16"] >= BF16_MARGIN * rates["fp32"]


@dataclass(frozen=True)
class ComputePlan:
    """How to run a model: autocast dtype (None = fp32) and channels_last_3d."""

    device: torch.device
    autocast_dtype: torch.dtype | None
    channels_last: bool

    @property
    def name(self) -> str:
        return {None: "fp32", torch.bfloat16: "bf16", torch.float16: "fp16"}[self.autocast_dtype]


def plan_for(precision: str, device: torch.device) -> ComputePlan:
    """Resolve ``precision`` ("auto" | "fp32" | "bf16" | "fp16") on ``device``."""
    if precision not in ("auto", "fp32", "bf16", "fp16"):
        raise ConfigError(f"precision must be auto, fp32, bf16 or fp16, got {precision!r}")
    cuda = device.type == "cuda"
    if precision == "auto":
        if cuda:
            precision = "bf16" if torch.cuda.is_bf16_supported() else "fp16"
        else:
            precision = "bf16" if cpu_prefers_bf16() else "fp32"
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
