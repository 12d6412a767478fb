"""How the I3D extractor is run: eager PyTorch, a fused eager copy, or an ahead-of-time compiled
package (torch's inductor).

``make_runner(model, plan)`` returns an ``ExtractorRunner`` with ``features(x)`` -> (B, 1024) and
``logits(x)`` -> (B, classes), both float32, for input (B, 3, T, H, W) already normalised.

Runtimes (``runtime=`` or ``$CMAGROUNDING_I3D_RUNTIME``; "auto" picks among them), each kept for
a figure in docs/performance.md:
- "eager": the ``InceptionI3d`` module itself, under autocast (the reference; CUDA runs it, cuDNN).
- "fused": ``FastI3D`` (BN folded, weights pre-cast, merged 1x1x1 convs; fast_i3d.py), fp32 or bf16:
  the CPU default, 0.76-0.86 of the fp32 product rate on an AVX512-BF16 Xeon.
- "compiled": ``FastI3D`` exported with ``torch.export`` and compiled by AOTInductor with freezing
  into a ``.pt2`` package (oneDNN convolutions with fused ReLU, prepacked weights); needs a C++
  compiler. Fastest where it was measured on an AVX512-BF16 EPYC (bf16, 0.70 against the fused
  path's 0.51) and an AVX-512 Xeon without bf16 (fp32, 0.81 against 0.69). Compiling takes minutes
  once per weights/input shape/precision/torch version; the package is cached and later
  processes load it in well under a second.
"auto" on CPU: the "compiled" package where one is already cached for these weights, input shape
and precision, or where the job is large enough for a compile to pay off (``runner.expect(clips)``,
said by ``extract-features`` for its videos and by the encoder for each video: at least
``AUTO_COMPILE_CLIPS`` real-size clips, a few times the break-even of a one-minute compile at the
measured speed-up, so only a dataset or a single video of about 20 minutes or more compiles;
``CMAGROUNDING_I3D_RUNTIME=compiled`` builds it on first use); otherwise "fused".
CUDA runs "eager" (cuDNN under autocast). A runtime that fails to build falls back to "fused"
with a warning. The compiled package has static shapes: a batch smaller than the first one is
zero-padded. ONNX Runtime was removed: in fp32 never the fastest path of a run; int8 was once, but
its features fell below cosine 0.9999 to fp32 (docs/performance.md).
"""

from __future__ import annotations

import logging
import os
import time
from pathlib import Path

import numpy as np
import torch
from torch import nn

from cmagrounding.errors import ConfigError
from cmagrounding.video.precision import ComputePlan

logger = logging.getLogger(__name__)

RUNTIMES = ("auto", "eager", "fused", "compiled")
MIN_COMPILED_VOXELS = 16 * 112 * 112  # per clip: below this a compile does not pay off
REFERENCE_VOXELS = 16 * 224 * 224  # a real-size clip
# A job of at least this many real-size clips compiles first under "auto". Measured on a 2-core
# AVX512-BF16 EPYC (docs/performance.md): the compile takes 38-96 s and saves about 0.15 s per
# clip (fused 1.78 vs compiled 2.45 clips/s at batch 8), a break-even of 250-640 clips; 2,000 keeps
# a margin for CPUs where the gain is smaller.
AUTO_COMPILE_CLIPS = 2000


class ExtractorRunner:
    """Common interface; subclasses run the network one way. Inputs (B, 3, T, H, W) float32."""

    name = "eager"

    def expect(self, clips: int) -> None:
        """A job of about ``clips`` clips follows (under "auto" a compile may then pay off); a hint."""

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


def have_cxx_compiler() -> bool:
    import shutil

    return any(shutil.which(c) for c in (os.environ.get("CXX", "g++"), "g++", "c++", "clang++"))


class _StaticShape:
    """Runs a fixed-shape model: batches smaller than the first are zero-padded, then sliced."""

    def _padded(self, x: torch.Tensor) -> tuple[torch.Tensor, int]:
        b = x.shape[0]
        if not hasattr(self, "shape") or tuple(self.shape[1:]) != tuple(x.shape[1:]) or b > self.shape[0]:
            self.shape = tuple(x.shape)
        if b < self.shape[0]:
            pad = x.new_zeros((self.shape[0] - b, *x.shape[1:]))
            x = torch.cat([x, pad])
        return x, b


class CompiledRunner(ExtractorRunner, _StaticShape):
    """``FastI3D`` compiled ahead of time by AOTInductor (freezing on), one cached package per shape."""

    name = "compiled"

    def __init__(self, model: nn.Module, plan: ComputePlan, weights_sha256: str | None = None, **_: object) -> None:
        self.dtype = plan.autocast_dtype or torch.float32
        self.precision = plan.name
        self.model = model  # the fused copy is built only when a package must be compiled
        self._sha = weights_sha256  # computed on first need when not given
        self.packages: dict[tuple[int, ...], object] = {}
        self.first_call_s: dict[tuple[int, ...], float] = {}

    @property
    def sha(self) -> str:
        if self._sha is None:
            from cmagrounding._io import state_dict_sha256

            self._sha = state_dict_sha256(self.model.state_dict())
        return self._sha

    def package_path(self, shape: tuple[int, ...]) -> Path:
        from cmagrounding.video.weights import cache_dir

        dims = "x".join(str(int(d)) for d in shape)
        tv = torch.__version__.replace("+", "_")
        return cache_dir() / "i3d" / "compiled" / f"{self.sha[:16]}_{dims}_{self.precision}_torch{tv}.pt2"

    def _package(self, shape: tuple[int, ...]):
        if shape in self.packages:
            return self.packages[shape]
        from cmagrounding._io import atomic_path
        from cmagrounding.video import cache_trust

        t = time.perf_counter()
        path = self.package_path(shape)
        if not cache_trust.trusted(path):  # native code: only a package this user compiled (docs/security.md)
            cache_trust.private_dir(path.parent)
            logger.warning(
                "compiling the I3D extractor for input %s (%s) once; this takes minutes on a small CPU and is cached "
                "in %s (set CMAGROUNDING_I3D_RUNTIME=fused to skip)", shape, self.precision, path.parent,
            )  # fmt: skip
            from cmagrounding.video.fast_i3d import FastI3D

            trunk = _Both(FastI3D(self.model, self.dtype)).eval()
            x = torch.zeros(shape, dtype=torch.float32).contiguous(memory_format=torch.channels_last_3d)
            with torch.inference_mode(False), torch.no_grad():
                exported = torch.export.export(trunk, (x,))
                with atomic_path(path) as tmp:
                    torch._inductor.aoti_compile_and_package(exported, package_path=str(tmp), inductor_configs={"freezing": True})
            cache_trust.record(path)
        package = torch._inductor.aoti_load_package(str(path))
        self.packages[shape] = package
        self.first_call_s[shape] = time.perf_counter() - t
        logger.info("compiled I3D for %s ready in %.1f s", shape, self.first_call_s[shape])
        return package

    def _run(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        x, b = self._padded(x.float().contiguous(memory_format=torch.channels_last_3d))
        feats, logits = self._package(tuple(x.shape))(x)
        return feats[:b].float(), logits[:b].float()

    def features(self, x: torch.Tensor) -> torch.Tensor:
        return self._run(x)[0]

    def logits(self, x: torch.Tensor) -> torch.Tensor:
        return self._run(x)[1]


class _Both(nn.Module):
    """What is compiled: input -> (features, logits)."""

    def __init__(self, fast: nn.Module) -> None:
        super().__init__()
        self.fast = fast

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return self.fast.features_and_logits(x)


def choose_runtime(plan: ComputePlan, runtime: str | None = None) -> str:
    """Resolve ``runtime`` ("auto" by default, or ``$CMAGROUNDING_I3D_RUNTIME``) for ``plan``."""
    runtime = runtime or os.environ.get("CMAGROUNDING_I3D_RUNTIME", "auto")
    if runtime not in RUNTIMES:
        raise ConfigError(f"I3D runtime must be one of {RUNTIMES}, got {runtime!r}")
    if runtime != "auto":
        return runtime
    if plan.device.type != "cpu" or plan.autocast_dtype == torch.float16:
        return "eager"  # cuDNN under autocast; fp16 on a CPU stays on the reference path
    return "fused"  # or the compiled package, per input shape (_CachedCompiledOr)


def make_runner(model: nn.Module, plan: ComputePlan, runtime: str | None = None, **options) -> ExtractorRunner:
    """The runner for ``model`` under ``plan``; non-I3D backbones always run eager. ``options`` go
    to the compiled runner (``weights_sha256``)."""
    from cmagrounding.video.heap import keep_freed_memory
    from cmagrounding.video.i3d import InceptionI3d

    if plan.device.type == "cpu":
        keep_freed_memory()  # large activations reused, not page-faulted anew per layer (heap.py)
    if not isinstance(model, InceptionI3d):
        return EagerRunner(model, plan)
    name = choose_runtime(plan, runtime)
    logger.debug("I3D runtime %s (%s)", name, plan.name)
    auto = (runtime or os.environ.get("CMAGROUNDING_I3D_RUNTIME", "auto")) == "auto"
    if auto and name == "fused":
        return _CachedCompiledOr(CompiledRunner(model, plan, **options), FusedRunner(model, plan), model, plan)
    if name == "fused":
        return FusedRunner(model, plan)
    if name == "compiled":
        return _Fallback(CompiledRunner(model, plan, **options), model, plan)
    return EagerRunner(model, plan)


class _Fallback(ExtractorRunner):
    """Use ``runner``; if it fails to build or run (no compiler, exporter error), warn once and run
    the fused eager copy from then on."""

    def __init__(self, runner: ExtractorRunner, model: nn.Module, plan: ComputePlan) -> None:
        self.runner = runner
        self.model = model
        self.plan = plan
        self.name = runner.name

    def _call(self, method: str, x: torch.Tensor) -> torch.Tensor:
        try:
            return getattr(self.runner, method)(x)
        except Exception as exc:  # noqa: BLE001 - any build failure: the fused path gives the same features
            if isinstance(self.runner, FusedRunner):
                raise
            logger.warning("I3D runtime %s failed (%s: %s); using the fused eager path", self.name, type(exc).__name__, exc)
            self.runner = FusedRunner(self.model, self.plan)
            self.name = self.runner.name
            return getattr(self.runner, method)(x)

    def features(self, x: torch.Tensor) -> torch.Tensor:
        return self._call("features", x)

    def logits(self, x: torch.Tensor) -> torch.Tensor:
        return self._call("logits", x)


def compile_pays_off(clips: int, clip_voxels: int) -> bool:
    """Whether "auto" compiles before a job of ``clips`` clips of ``clip_voxels`` = T * H * W each."""
    if clip_voxels < MIN_COMPILED_VOXELS:
        return False
    return clips * clip_voxels / REFERENCE_VOXELS >= AUTO_COMPILE_CLIPS


class _CachedCompiledOr(ExtractorRunner):
    """Per input shape: the compiled package if it is already cached or the expected job pays for
    compiling it (:func:`compile_pays_off`, a C++ compiler present), else ``other``."""

    def __init__(self, compiled: CompiledRunner, other: ExtractorRunner, model: nn.Module, plan: ComputePlan) -> None:
        self.compiled = _Fallback(compiled, model, plan)
        self._compiled = compiled
        self.other = other
        self.chosen: dict[tuple[int, ...], ExtractorRunner] = {}
        self.name = other.name
        self.expected = 0

    def expect(self, clips: int) -> None:
        if int(clips) <= self.expected:  # the job announced before (e.g. a whole folder) is the larger one
            return
        self.expected = int(clips)
        self.chosen = {s: r for s, r in self.chosen.items() if r is self.compiled}  # decide again

    def _pick(self, x: torch.Tensor) -> ExtractorRunner:
        shape = tuple(x.shape)
        if shape not in self.chosen:
            from cmagrounding.video.cache_trust import trusted

            ready = trusted(self._compiled.package_path(shape))
            voxels = int(np.prod(shape[2:]))
            if not ready and compile_pays_off(self.expected, voxels) and have_cxx_compiler():
                logger.info("a job of about %d clips of %s: compiling the extractor first pays off", self.expected, shape[1:])
                ready = True
            self.chosen[shape] = self.compiled if ready else self.other
            self.name = self.chosen[shape].name
        return self.chosen[shape]

    def features(self, x: torch.Tensor) -> torch.Tensor:
        return self._pick(x).features(x)

    def logits(self, x: torch.Tensor) -> torch.Tensor:
        return self._pick(x).logits(x)
