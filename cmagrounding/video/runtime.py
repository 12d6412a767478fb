"""How the I3D extractor is run: eager PyTorch, a fused eager copy, or an ahead-of-time compiled
package (torch's inductor). Each is kept for a figure in docs/performance.md.

``make_runner(model, plan)`` returns an ``ExtractorRunner`` with ``features(x)`` -> (B, 1024) and
``logits(x)`` -> (B, classes), both float32, for input (B, 3, T, H, W) already normalised.
Runtimes (``runtime=`` or ``$CMAGROUNDING_I3D_RUNTIME``):
- "eager": the ``InceptionI3d`` module under autocast: the reference, and CUDA's path (cuDNN).
- "fused": ``FastI3D`` (fast_i3d.py) in fp32 or bf16, the CPU default.
- "compiled": ``FastI3D`` exported and compiled by AOTInductor (freezing on) into a ``.pt2``
  package, cached per weights / input shape / precision / torch version; needs a C++ compiler and
  minutes to compile; static shapes (a smaller batch is zero-padded). Loaded only from this
  user's private cache (cache_trust.py).
- "auto" (default): on CUDA "eager"; on a CPU "fused" or "compiled" per input shape, by figures
  measured on this machine and kept in ``<cache>/machine/i3d_runtime_*.json`` (machine_record.py):
  the compile seconds and both paths' clips/s, measured on the batches jobs run (wall clock, the
  best batch after a warm-up one of each path). A cached package runs only where it was measured
  faster; a compile happens only where the time it saves on the clips still expected
  (``runner.expect(clips)``, said by ``extract-features`` and by the encoder per video) exceeds
  its compile time (:func:`use_compiled`; conservative defaults where nothing is recorded).
A runtime that fails to build falls back to "fused" with a warning.
"""

from __future__ import annotations

import logging
import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import torch
from torch import nn

from cmagrounding.errors import ConfigError
from cmagrounding.video import machine_record
from cmagrounding.video.precision import ComputePlan

logger = logging.getLogger(__name__)

RUNTIMES = ("auto", "eager", "fused", "compiled")
# Assumed where this machine has no figure yet for a weights / shape / precision: the slowest compile
# measured on the 2-core machines of docs/performance.md (187-290 s) and the smallest gain of the
# package where it gained at all (AVX-512 Xeon, fp32: 4.99 vs 4.25 clips/s, 1.17x). At 2.5 clips/s
# fused a job must then have 5,750 clips (about 30 minutes of video) to compile without a record.
DEFAULT_COMPILE_S = 300.0
DEFAULT_SPEEDUP = 1.15
_now = time.perf_counter  # the clock of the measured batches (wall time: what a user waits for)


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


@dataclass(frozen=True)
class Figures:
    """Measured on this machine for one weights / input shape / precision (None: not measured):
    seconds to compile the package, clips/s of the compiled package and of the fused path."""

    compile_s: float | None = None
    compiled: float | None = None
    fused: float | None = None


_RECORD = {"cpu": str, "torch": str, "weights": str, "shape": str, "precision": str,
           "compile_s": float, "compiled_clips_per_s": float, "fused_clips_per_s": float}  # fmt: skip


def _record_key(sha: str, shape: tuple[int, ...], precision: str) -> tuple[Path, dict]:
    dims = "x".join(str(int(d)) for d in shape)
    ident = {"weights": sha[:16], "shape": dims, "precision": precision}
    return machine_record.path_for(f"i3d_runtime_{sha[:16]}_{dims}_{precision}"), ident


def read_figures(sha: str, shape: tuple[int, ...], precision: str) -> Figures:
    """This machine's recorded figures (a malformed record warns, naming the file, and counts as none)."""
    path, ident = _record_key(sha, shape, precision)
    optional = frozenset(("compile_s", "compiled_clips_per_s", "fused_clips_per_s"))
    rec = machine_record.read(path, _RECORD, optional, same={"torch": torch.__version__, **ident})
    if rec is None:
        return Figures()
    return Figures(rec["compile_s"], rec["compiled_clips_per_s"], rec["fused_clips_per_s"])


def write_figures(sha: str, shape: tuple[int, ...], precision: str, fig: Figures) -> None:
    path, ident = _record_key(sha, shape, precision)
    machine_record.write(path, {"cpu": machine_record.cpu_model(), "torch": torch.__version__, **ident, "compile_s": fig.compile_s,
                                "compiled_clips_per_s": fig.compiled, "fused_clips_per_s": fig.fused})  # fmt: skip


def use_compiled(clips: int, fig: Figures, cached: bool) -> bool:
    """Whether "auto" runs the compiled package for ``clips`` more clips of one shape, on ``fig``.

    A ``cached`` (trusted) package: only where it was measured faster than the fused path. Else a
    compile: only where the time saved on ``clips``, ``clips * (1 / fused - 1 / compiled)``, exceeds
    the compile time, with ``DEFAULT_COMPILE_S`` / ``fused * DEFAULT_SPEEDUP`` for what is not
    recorded; never before the fused rate is known (measured on the job's first batches)."""
    if cached:
        return fig.compiled is not None and fig.fused is not None and fig.compiled > fig.fused
    if fig.fused is None:
        return False
    compiled = fig.compiled if fig.compiled is not None else fig.fused * DEFAULT_SPEEDUP
    compile_s = fig.compile_s if fig.compile_s is not None else DEFAULT_COMPILE_S
    return compiled > fig.fused and clips * (1.0 / fig.fused - 1.0 / compiled) > compile_s


class CompiledRunner(ExtractorRunner):
    """``FastI3D`` compiled ahead of time by AOTInductor (freezing on), one cached package per shape.
    Static shapes: a batch smaller than the first one is zero-padded, then sliced."""

    name = "compiled"

    def __init__(self, model: nn.Module, plan: ComputePlan, weights_sha256: str | None = None, **_: object) -> None:
        self.dtype = plan.autocast_dtype or torch.float32
        self.precision = plan.name
        self.model = model  # the fused copy is built only when a package must be compiled
        self._sha = weights_sha256  # computed on first need when not given
        self.packages: dict[tuple[int, ...], object] = {}
        self._trusted: dict[tuple[int, ...], bool] = {}
        self.shape: tuple[int, ...] | None = None

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

    def cached(self, shape: tuple[int, ...]) -> bool:
        """Whether a trusted package for ``shape`` is cached: native code, so only one this user
        compiled (cache_trust.py, docs/security.md); its file is hashed once per shape."""
        if shape not in self._trusted:
            from cmagrounding.video import cache_trust

            self._trusted[shape] = cache_trust.trusted(self.package_path(shape))
        return self._trusted[shape]

    def _package(self, shape: tuple[int, ...]):
        if shape not in self.packages:
            path = self.package_path(shape)
            if not self.cached(shape):
                self._compile(shape, path)
            self.packages[shape] = torch._inductor.aoti_load_package(str(path))
        return self.packages[shape]

    def _compile(self, shape: tuple[int, ...], path: Path) -> None:
        from cmagrounding._io import atomic_path
        from cmagrounding.video import cache_trust
        from cmagrounding.video.fast_i3d import FastI3D

        cache_trust.private_dir(path.parent)
        logger.warning(
            "compiling the I3D extractor for input %s (%s) once; this takes minutes on a small CPU and is cached "
            "in %s (set CMAGROUNDING_I3D_RUNTIME=fused to skip)", shape, self.precision, path.parent,
        )  # fmt: skip
        t = time.perf_counter()
        trunk = _Both(FastI3D(self.model, self.dtype)).eval()
        x = torch.zeros(shape, dtype=torch.float32).contiguous(memory_format=torch.channels_last_3d)
        with torch.inference_mode(False), torch.no_grad():
            exported = torch.export.export(trunk, (x,))
            with atomic_path(path) as tmp:
                torch._inductor.aoti_compile_and_package(exported, package_path=str(tmp), inductor_configs={"freezing": True})
        cache_trust.record(path)
        self._trusted[shape] = True
        seconds = time.perf_counter() - t
        logger.info("compiled I3D for %s in %.1f s", shape, seconds)
        old = read_figures(self.sha, shape, self.precision)
        write_figures(self.sha, shape, self.precision, Figures(seconds, old.compiled, old.fused))

    def _run(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        x = x.float().contiguous(memory_format=torch.channels_last_3d)
        b = x.shape[0]
        if self.shape is None or self.shape[1:] != tuple(x.shape[1:]) or b > self.shape[0]:
            self.shape = tuple(x.shape)
        if b < self.shape[0]:
            x = torch.cat([x, x.new_zeros((self.shape[0] - b, *x.shape[1:]))])
        feats, logits = self._package(self.shape)(x)
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
    return "fused"  # or the compiled package, per input shape (_Auto)


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
        return _Auto(CompiledRunner(model, plan, **options), FusedRunner(model, plan))
    if name == "fused":
        return FusedRunner(model, plan)
    if name == "compiled":
        return _Fallback(CompiledRunner(model, plan, **options), lambda: FusedRunner(model, plan))
    return EagerRunner(model, plan)


class _Fallback(ExtractorRunner):
    """Use ``runner``; if it fails to build or run (no compiler, exporter error), warn once and run
    the fused eager copy from then on."""

    def __init__(self, runner: ExtractorRunner, fused: Callable[[], ExtractorRunner]) -> None:
        self.runner = runner
        self.fused = fused  # makes (or returns) the fused runner, when needed
        self.name = runner.name

    def _call(self, method: str, x: torch.Tensor) -> torch.Tensor:
        try:
            return getattr(self.runner, method)(x)
        except Exception as exc:  # noqa: BLE001 - any build failure: the fused path gives the same features
            if isinstance(self.runner, FusedRunner):
                raise
            logger.warning("I3D runtime %s failed (%s: %s); using the fused eager path", self.name, type(exc).__name__, exc)
            self.runner = self.fused()
            self.name = self.runner.name
            return getattr(self.runner, method)(x)

    def features(self, x: torch.Tensor) -> torch.Tensor:
        return self._call("features", x)

    def logits(self, x: torch.Tensor) -> torch.Tensor:
        return self._call("logits", x)


class _Auto(ExtractorRunner):
    """"auto" on a CPU, per input shape: the compiled package or the fused path, as :func:`use_compiled`
    decides on this machine's figures; the batches it runs measure what is not recorded yet."""

    def __init__(self, compiled: CompiledRunner, fused: FusedRunner) -> None:
        self.compiled = _Fallback(compiled, lambda: fused)
        self._compiled = compiled
        self.fused = fused
        self.name = fused.name
        self.expected = self.done = 0
        self.chosen: dict[tuple[int, ...], ExtractorRunner] = {}  # decided for the job
        self.calls: dict[tuple[tuple[int, ...], str], int] = {}  # (shape, "compiled" | "fused") -> calls run
        self.measured: dict[tuple[int, ...], dict[str, float]] = {}  # shape -> path -> best clips/s here

    def expect(self, clips: int) -> None:
        if int(clips) <= self.expected - self.done:  # the job announced before (e.g. a folder) is larger
            return
        self.expected, self.done = int(clips), 0
        self.chosen = {s: r for s, r in self.chosen.items() if r is self.compiled}  # decide again

    def _decide(self, shape: tuple[int, ...]) -> tuple[ExtractorRunner, bool]:
        """(the runner for the next batch of ``shape``, whether that is decided for the job)."""
        c = self._compiled
        if self.compiled.runner is not c:  # the package failed to build or run: fused from now on
            return self.fused, True
        rec = read_figures(c.sha, shape, c.precision)
        mine = self.measured.get(shape, {})
        fig = Figures(rec.compile_s, mine.get("compiled", rec.compiled), mine.get("fused", rec.fused))
        remaining = max(self.expected - self.done, 0)
        if c.cached(shape):
            if rec.compiled is None or rec.fused is None:  # measure both here, on the job's own batches
                if "compiled" not in mine or "fused" not in mine:
                    return (self.compiled if "compiled" not in mine else self.fused), False
                write_figures(c.sha, shape, c.precision, fig)
            return (self.compiled if use_compiled(remaining, fig, cached=True) else self.fused), True
        if fig.fused is None:
            return self.fused, False  # its rate is measured on the first batches (recorded once a package exists)
        if use_compiled(remaining, fig, cached=False) and have_cxx_compiler():
            logger.info("about %d more clips of %s: compiling the extractor pays off on this machine's figures", remaining, shape[1:])
            return self.compiled, False  # compiles on this call, then both are measured
        return self.fused, True

    def _call(self, method: str, x: torch.Tensor) -> torch.Tensor:
        shape = tuple(x.shape)
        runner = self.chosen.get(shape)
        if runner is None:
            runner, final = self._decide(shape)
            if final:
                self.chosen[shape] = runner
        self.name = runner.name
        path = "compiled" if runner is self.compiled else "fused"
        t = _now()
        out = getattr(runner, method)(x)
        seconds = _now() - t
        self.done += shape[0]
        calls = self.calls[shape, path] = self.calls.get((shape, path), 0) + 1
        if runner is self.compiled and self.compiled.runner is not self._compiled:  # it fell back: fused from now on
            self.chosen[shape] = self.compiled
        elif calls > 1 and shape not in self.chosen:  # the first call of each path builds or loads it
            best = self.measured.setdefault(shape, {})
            best[path] = max(best.get(path, 0.0), shape[0] / max(seconds, 1e-9))
        return out

    def features(self, x: torch.Tensor) -> torch.Tensor:
        return self._call("features", x)

    def logits(self, x: torch.Tensor) -> torch.Tensor:
        return self._call("logits", x)
