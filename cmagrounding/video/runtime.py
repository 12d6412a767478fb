"""How the I3D extractor is run: eager PyTorch, the fused eager copy, or ONNX Runtime (optional).

``make_runner(model, plan)`` returns an ``ExtractorRunner`` with ``features(x)`` -> (B, 1024) and
``logits(x)`` -> (B, classes), both float32, for input (B, 3, T, H, W) already normalised.

Runtimes (``runtime=`` or ``$CMAGROUNDING_I3D_RUNTIME``; "auto" picks the fastest verified one):
- "eager": the ``InceptionI3d`` module itself, under autocast (the reference).
- "fused": ``FastI3D`` (BN folded, weights pre-cast, merged 1x1x1 convs; fast_i3d.py), fp32 or bf16.
- "onnxruntime": the fused network exported once to ONNX, cached in the cache folder keyed by the
  weights' checksum, the input shape and the precision; fp32 (ONNX Runtime's CPU convolutions have
  no bf16 kernels) and int8 (static quantization calibrated on real frames, opt-in).
"auto" on CPU: bf16 -> fused; fp32 -> fused (see docs/performance.md for the measured choice);
int8 -> onnxruntime (the only int8 path); CUDA -> eager (cuDNN under autocast is already fast).
The network has no dynamic shapes in ONNX: a batch smaller than the exported one is zero-padded.
"""

from __future__ import annotations

import importlib.util
import logging
import os
import time
from pathlib import Path
from typing import Callable, Iterable

import numpy as np
import torch
from torch import nn

from cmagrounding.errors import ConfigError
from cmagrounding.video.precision import ComputePlan

logger = logging.getLogger(__name__)

RUNTIMES = ("auto", "eager", "fused", "onnxruntime")


def onnxruntime_available() -> bool:
    return importlib.util.find_spec("onnxruntime") is not None and importlib.util.find_spec("onnx") is not None


class ExtractorRunner:
    """Common interface; subclasses run the network one way. Inputs (B, 3, T, H, W) float32."""

    name = "eager"

    def features(self, x: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def logits(self, x: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError


class EagerRunner(ExtractorRunner):
    """The module as it is, under the plan's autocast (any backbone with ``features``/``forward``)."""

    name = "eager"

    def __init__(self, model: nn.Module, plan: ComputePlan) -> None:
        self.model = model
        self.plan = plan

    def _autocast(self):
        dtype = self.plan.autocast_dtype
        return torch.autocast(self.plan.device.type, dtype=dtype, enabled=dtype is not None)

    def features(self, x: torch.Tensor) -> torch.Tensor:
        with self._autocast():
            return self.model.features(x).float()

    def logits(self, x: torch.Tensor) -> torch.Tensor:
        with self._autocast():
            return self.model(x).float()


class FusedRunner(ExtractorRunner):
    """``FastI3D`` in the plan's dtype (no autocast: weights are already in that dtype)."""

    name = "fused"

    def __init__(self, model: nn.Module, plan: ComputePlan) -> None:
        from cmagrounding.video.fast_i3d import FastI3D

        dtype = plan.autocast_dtype or torch.float32
        self.fast = FastI3D(model, dtype).to(plan.device)

    def features(self, x: torch.Tensor) -> torch.Tensor:
        return self.fast.features(x)

    def logits(self, x: torch.Tensor) -> torch.Tensor:
        return self.fast(x)


class _Trunk(nn.Module):
    """What is exported to ONNX: input -> Mixed_5c (the pooling and head stay in PyTorch)."""

    def __init__(self, fast: nn.Module) -> None:
        super().__init__()
        self.fast = fast

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fast.mixed_5c(x)


def onnx_cache_path(weights_sha256: str, shape: tuple[int, ...], precision: str) -> Path:
    """``<cache>/i3d/onnx/<sha16>_<B>x<C>x<T>x<H>x<W>_<precision>.onnx``."""
    from cmagrounding.video.weights import cache_dir

    dims = "x".join(str(int(d)) for d in shape)
    return cache_dir() / "i3d" / "onnx" / f"{weights_sha256[:16]}_{dims}_{precision}.onnx"


def export_onnx(fast: nn.Module, shape: tuple[int, ...], path: Path) -> Path:
    """Export ``FastI3D`` (fp32) up to Mixed_5c at a fixed input ``shape`` to ``path`` (atomically)."""
    from cmagrounding._io import atomic_path

    fast = fast.float().eval()
    trunk = _Trunk(fast).eval()  # an exporter restores the wrapper's mode: keep it in eval
    x = torch.zeros(shape)
    path.parent.mkdir(parents=True, exist_ok=True)
    t = time.perf_counter()
    with atomic_path(path) as tmp, torch.inference_mode(False), torch.no_grad():
        torch.onnx.export(trunk, (x,), str(tmp), input_names=["x"], output_names=["mixed_5c"], dynamo=False, opset_version=17)
    logger.info("exported I3D to %s in %.1f s", path, time.perf_counter() - t)
    return path


def quantize_onnx(fp32_path: Path, out_path: Path, calibration: Iterable[np.ndarray]) -> Path:
    """Static int8 quantization (QDQ, per-channel signed weights, unsigned activations) of an exported
    trunk, with activation ranges calibrated on ``calibration`` batches (B, 3, T, H, W) float32."""
    from onnxruntime.quantization import CalibrationDataReader, QuantFormat, QuantType, quantize_static
    from onnxruntime.quantization.shape_inference import quant_pre_process

    from cmagrounding._io import atomic_path

    class Reader(CalibrationDataReader):
        def __init__(self) -> None:
            self.it = iter(calibration)

        def get_next(self):
            batch = next(self.it, None)
            return None if batch is None else {"x": np.ascontiguousarray(batch, dtype=np.float32)}

    t = time.perf_counter()
    pre = out_path.with_suffix(".pre.onnx")
    quant_pre_process(str(fp32_path), str(pre), skip_symbolic_shape=True)
    with atomic_path(out_path) as tmp:
        quantize_static(
            str(pre), str(tmp), Reader(), quant_format=QuantFormat.QDQ, per_channel=True,
            activation_type=QuantType.QUInt8, weight_type=QuantType.QInt8,
        )  # fmt: skip
    pre.unlink(missing_ok=True)
    logger.info("quantized I3D to int8 at %s in %.1f s", out_path, time.perf_counter() - t)
    return out_path


class OnnxRunner(ExtractorRunner):
    """ONNX Runtime on the CPU; one session per input shape, its model file cached on disk.

    ``calibration``: for int8, a callable returning an iterable of float32 batches of the session's
    input shape (real frames); needed only the first time a shape is quantized. Without it the first
    batch given (the user's own frames) calibrates the quantized model, which is then cached.
    """

    name = "onnxruntime"

    def __init__(
        self,
        model: nn.Module,
        plan: ComputePlan,
        weights_sha256: str | None = None,
        threads: int | None = None,
        calibration: Callable[[tuple[int, ...]], Iterable[np.ndarray]] | None = None,
    ) -> None:
        from cmagrounding.video.fast_i3d import FastI3D

        if not onnxruntime_available():
            raise ConfigError("runtime 'onnxruntime' needs the optional packages: pip install 'cmagrounding[onnx]'")
        if plan.device.type != "cpu":
            raise ConfigError(f"runtime 'onnxruntime' runs on the CPU here, not {plan.device}")
        self.precision = "int8" if plan.int8 else "fp32"
        self.fast = FastI3D(model, torch.float32)
        if weights_sha256 is None:
            from cmagrounding._io import state_dict_sha256

            weights_sha256 = state_dict_sha256(model.state_dict())
        self.sha = weights_sha256
        self.threads = threads or torch.get_num_threads()
        self.calibration = calibration
        self.sessions: dict[tuple[int, ...], object] = {}
        self.first_call_s: dict[tuple[int, ...], float] = {}

    def _session(self, shape: tuple[int, ...], first: torch.Tensor | None = None):
        if shape in self.sessions:
            return self.sessions[shape]
        import onnxruntime as ort

        t = time.perf_counter()
        fp32 = onnx_cache_path(self.sha, shape, "fp32")
        if not fp32.is_file():
            export_onnx(self.fast, shape, fp32)
        path = fp32
        if self.precision == "int8":
            path = onnx_cache_path(self.sha, shape, "int8")
            if not path.is_file():
                if self.calibration is not None:
                    batches = self.calibration(shape)
                elif first is not None:
                    logger.info("calibrating int8 I3D on the first batch of clips %s", shape)
                    batches = [first.detach().float().cpu().numpy()]
                else:
                    raise ConfigError("precision int8 needs calibration clips the first time (none given)")
                quantize_onnx(fp32, path, batches)
        so = ort.SessionOptions()
        so.intra_op_num_threads = self.threads
        so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        session = ort.InferenceSession(str(path), so, providers=["CPUExecutionProvider"])
        self.sessions[shape] = session
        self.first_call_s[shape] = time.perf_counter() - t
        logger.info("ONNX Runtime session for %s (%s) ready in %.1f s", shape, self.precision, self.first_call_s[shape])
        return session

    def mixed_5c(self, x: torch.Tensor) -> torch.Tensor:
        shape = tuple(x.shape)
        session = self._session(shape, x)
        arr = np.ascontiguousarray(x.detach().float().cpu().numpy())
        (out,) = session.run(None, {"x": arr})
        return torch.from_numpy(out)

    def features(self, x: torch.Tensor) -> torch.Tensor:
        return self.mixed_5c(x).mean(dim=(2, 3, 4))

    def logits(self, x: torch.Tensor) -> torch.Tensor:
        return self.fast.head(self.mixed_5c(x))


def choose_runtime(plan: ComputePlan, runtime: str | None = None) -> str:
    """Resolve ``runtime`` ("auto" by default, or ``$CMAGROUNDING_I3D_RUNTIME``) for ``plan``."""
    runtime = runtime or os.environ.get("CMAGROUNDING_I3D_RUNTIME", "auto")
    if runtime not in RUNTIMES:
        raise ConfigError(f"I3D runtime must be one of {RUNTIMES}, got {runtime!r}")
    if plan.int8:
        if runtime not in ("auto", "onnxruntime"):
            raise ConfigError(f"precision int8 runs only with runtime 'onnxruntime', not {runtime!r}")
        return "onnxruntime"
    if runtime != "auto":
        return runtime
    if plan.device.type != "cpu":
        return "eager"
    return "fused"


def make_runner(model: nn.Module, plan: ComputePlan, runtime: str | None = None, **onnx_options) -> ExtractorRunner:
    """The runner for ``model`` under ``plan``; non-I3D backbones always run eager."""
    from cmagrounding.video.i3d import InceptionI3d

    if not isinstance(model, InceptionI3d):
        if plan.int8:
            raise ConfigError(f"precision int8 is implemented for I3D only, not {type(model).__name__}")
        return EagerRunner(model, plan)
    name = choose_runtime(plan, runtime)
    logger.debug("I3D runtime %s (%s)", name, plan.name)
    if name == "fused":
        return FusedRunner(model, plan)
    if name == "onnxruntime":
        return OnnxRunner(model, plan, **onnx_options)
    return EagerRunner(model, plan)
