"""runtime="auto" on a CPU: compiled package or fused path by this machine's recorded figures
(compile seconds, both paths' clips/s), never a fixed guess; records read strictly (issue 24).

The paths are fakes on a fake clock where a decision depends on measured speed (no timed test);
the short-job test runs the real fused path on tiny clips."""

from __future__ import annotations

import json
import os

import pytest
import torch

from cmagrounding.errors import MachineRecordWarning
from cmagrounding.video import cache_trust
from cmagrounding.video import runtime as rt
from cmagrounding.video.i3d import InceptionI3d
from cmagrounding.video.precision import plan_for
from cmagrounding.video.runtime import Figures, use_compiled

pytestmark = pytest.mark.usefixtures("one_torch_thread")
CPU = torch.device("cpu")
SHA = "0" * 64
SHAPE = (1, 3, 8, 32, 32)


@pytest.mark.parametrize(
    "clips,fig,cached,expected",
    [
        # a cached package: only where measured faster here, whatever the job's size
        (1, Figures(200.0, 2.45, 1.78), True, True),  # AVX512-BF16 EPYC, bf16 (docs/performance.md)
        (10**6, Figures(196.5, 2.48, 2.52), True, False),  # this session's Xeon, fp32: slower
        (10**6, Figures(196.5, None, 2.52), True, False),  # not measured: not used
        # a compile: only where the time saved exceeds the compile time (EPYC: 0.1536 s per clip)
        (1000, Figures(200.0, 2.45, 1.78), False, False),  # saves 154 s < 200 s
        (1400, Figures(200.0, 2.45, 1.78), False, True),  # saves 215 s
        (10**6, Figures(40.0, 2.48, 2.52), False, False),  # measured slower: never
        (10**6, Figures(None, None, None), False, False),  # the fused rate is measured first
        # nothing recorded but the fused rate: 300 s and a 1.15x gain assumed, 5,750 clips at 2.5 clips/s
        (5700, Figures(None, None, 2.5), False, False),
        (5800, Figures(None, None, 2.5), False, True),
    ],
)
def test_the_decision_rule(clips, fig, cached, expected):
    assert use_compiled(clips, fig, cached) is expected


@pytest.fixture
def cache(tmp_path, monkeypatch):
    monkeypatch.setenv("CMAGROUNDING_CACHE", str(tmp_path))
    monkeypatch.delenv("CMAGROUNDING_I3D_RUNTIME", raising=False)
    return tmp_path


def _record_path(precision="fp32", shape=SHAPE):
    return rt._record_key(SHA, shape, precision)[0]


def test_figures_round_trip(cache):
    assert rt.read_figures(SHA, SHAPE, "fp32") == Figures()  # absent: nothing recorded, no warning
    rt.write_figures(SHA, SHAPE, "fp32", Figures(12.5, 3.0, None))
    assert rt.read_figures(SHA, SHAPE, "fp32") == Figures(12.5, 3.0, None)
    assert rt.read_figures(SHA, SHAPE, "bf16") == Figures()  # another precision, another record


@pytest.mark.parametrize(
    "edit",
    [
        lambda d: "{not json",
        lambda d: json.dumps(d).replace('"compile_s": 12.5', '"compile_s": NaN'),
        lambda d: json.dumps({**d, "fused_clips_per_s": -1.0}),
        lambda d: json.dumps({**d, "fused_clips_per_s": "fast"}),
        lambda d: json.dumps({**d, "compiled_clips_per_s": True}),
        lambda d: json.dumps({**d, "extra": 1}),
        lambda d: json.dumps({k: v for k, v in d.items() if k != "torch"}),
        lambda d: json.dumps({**d, "shape": "8x3x16x224x224"}),  # another shape's record under this name
        lambda d: json.dumps([d]),
        lambda d: "null",
        lambda d: " " * 70_000,
    ],
)
def test_a_malformed_record_is_ignored_and_named(cache, edit):
    rt.write_figures(SHA, SHAPE, "fp32", Figures(12.5, 3.0, 2.0))
    path = _record_path()
    path.write_text(edit(json.loads(path.read_text())))
    with pytest.warns(MachineRecordWarning, match=path.name):
        assert rt.read_figures(SHA, SHAPE, "fp32") == Figures()


class _Fakes:
    """Fake compiled and fused paths on a fake clock: ``seconds`` per clip of each."""

    def __init__(self, monkeypatch, compiled_s: float, fused_s: float, cached: bool) -> None:
        self.t = 0.0
        self.log: list[str] = []
        self.hashed = 0
        monkeypatch.setattr(rt, "_now", lambda: self.t)
        monkeypatch.setattr(rt, "have_cxx_compiler", lambda: True)

        def trusted(path):
            self.hashed += 1
            return cached

        monkeypatch.setattr(cache_trust, "trusted", trusted)

        def compiled(runner, x):
            shape = tuple(x.shape)
            if not runner.cached(shape):
                self.log.append("compile")
                runner._trusted[shape] = True
            return self._run("compiled", compiled_s, x)

        monkeypatch.setattr(rt.CompiledRunner, "features", compiled)
        monkeypatch.setattr(rt.FusedRunner, "features", lambda runner, x: self._run("fused", fused_s, x))

    def _run(self, name, seconds, x):
        self.log.append(name)
        self.t += seconds * x.shape[0]
        return x.new_zeros(x.shape[0], 1024)


def _auto(clips: int):
    runner = rt.make_runner(InceptionI3d(), plan_for("fp32", CPU), weights_sha256=SHA)
    runner.expect(clips)
    return runner


def _run(runner, n):
    for _ in range(n):
        runner.features(torch.zeros(SHAPE))


@pytest.mark.parametrize("recorded", [None, Figures(40.0, 10.0, 1.0)])
def test_no_compile_for_a_short_job(cache, monkeypatch, recorded):
    """The real fused path on tiny clips; a compile would fail the test. Even where the record says
    the package runs 10x faster, 20 clips do not pay for a 40-s compile."""
    if recorded is not None:
        rt.write_figures(SHA, SHAPE, "fp32", recorded)
    monkeypatch.setattr(rt, "have_cxx_compiler", lambda: True)
    monkeypatch.setattr(rt.CompiledRunner, "_compile", lambda *a: pytest.fail("compiled for a short job"))
    runner = _auto(20)
    for _ in range(4):
        feats = runner.features(torch.zeros(SHAPE))
        assert runner.name == "fused" and feats.shape == (1, 1024)
    assert rt.read_figures(SHA, SHAPE, "fp32") == (recorded or Figures())  # nothing written without a package


def test_a_long_job_compiles_then_keeps_the_path_measured_faster(cache, monkeypatch):
    """Nothing recorded: the fused rate is measured first (1 clip/s), 10,000 clips pay for the
    assumed 300-s compile; after it both paths are measured on the job's batches and recorded."""
    fakes = _Fakes(monkeypatch, compiled_s=0.5, fused_s=1.0, cached=False)
    runner = _auto(10_000)
    _run(runner, 6)
    assert fakes.log == ["fused", "fused", "compile", "compiled", "compiled", "compiled", "compiled"]
    assert runner.name == "compiled"
    assert rt.read_figures(SHA, SHAPE, "fp32") == Figures(None, 2.0, 1.0)
    assert fakes.hashed == 1  # the package's file is hashed once per shape


def test_a_compile_measured_slower_is_not_used(cache, monkeypatch):
    fakes = _Fakes(monkeypatch, compiled_s=1.1, fused_s=1.0, cached=False)
    runner = _auto(10_000)
    _run(runner, 7)
    assert fakes.log == ["fused", "fused", "compile", "compiled", "compiled", "fused", "fused", "fused"]
    assert runner.name == "fused"


@pytest.mark.parametrize("compiled_rate,expected", [(2.45, "compiled"), (2.48, "fused")])
def test_a_cached_package_is_used_only_where_measured_faster(cache, monkeypatch, compiled_rate, expected):
    rt.write_figures(SHA, SHAPE, "fp32", Figures(196.5, compiled_rate, 2.0 if expected == "compiled" else 2.52))
    fakes = _Fakes(monkeypatch, compiled_s=0.1, fused_s=1.0, cached=True)
    runner = _auto(5)
    _run(runner, 3)
    assert fakes.log == [expected] * 3 and fakes.hashed == 1


def test_a_cached_package_without_figures_is_measured_on_the_job(cache, monkeypatch):
    fakes = _Fakes(monkeypatch, compiled_s=0.25, fused_s=1.0, cached=True)  # exact on the fake clock
    runner = _auto(50)
    _run(runner, 6)
    assert fakes.log == ["compiled", "compiled", "fused", "fused", "compiled", "compiled"]
    assert rt.read_figures(SHA, SHAPE, "fp32") == Figures(None, 4.0, 1.0)
    assert fakes.hashed == 1


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="POSIX FIFOs")
@pytest.mark.parametrize("kind", ["fifo", "folder"])
def test_a_record_that_is_not_a_file_is_ignored_without_blocking(cache, kind):
    path = _record_path()
    path.parent.mkdir(parents=True)
    if kind == "fifo":
        os.mkfifo(path)  # reading it would wait for a writer forever
    else:
        path.mkdir()
    with pytest.warns(MachineRecordWarning, match=rf"{path.name}.*not a regular file"):
        assert rt.read_figures(SHA, SHAPE, "fp32") == Figures()
