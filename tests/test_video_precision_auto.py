"""precision="auto" on the CPU follows a per-machine measurement (bf16 only where it is clearly
faster than fp32), recorded once in the cache folder; glibc malloc keeps freed activations;
fp32 1x1x1 convolutions run as one GEMM with the conv's numbers."""

from __future__ import annotations

import json
import sys

import pytest
import torch
import torch.nn.functional as F

from cmagrounding.errors import MachineRecordWarning
from cmagrounding.video import precision

pytestmark = pytest.mark.usefixtures("one_torch_thread")
CPU = torch.device("cpu")


@pytest.fixture
def fresh_rates(monkeypatch, tmp_path):
    """An empty cache folder and no in-process memory of the rates (before and after the test)."""
    monkeypatch.setenv("CMAGROUNDING_CACHE", str(tmp_path))
    precision.cpu_conv_rates.cache_clear()
    yield tmp_path
    precision.cpu_conv_rates.cache_clear()


def _record(folder, rates):
    """Overwrite the one recorded measurement in ``folder`` with ``rates``."""
    (path,) = (folder / "machine").glob("conv_gflops_*.json")
    data = json.loads(path.read_text())
    data.update(rates)
    path.write_text(json.dumps(data))
    precision.cpu_conv_rates.cache_clear()


def test_rates_are_measured_once_and_recorded(fresh_rates, monkeypatch):
    rates = precision.cpu_conv_rates()
    assert set(rates) == {"fp32", "bf16"} and all(v > 0 for v in rates.values())
    (path,) = (fresh_rates / "machine").glob("conv_gflops_*.json")
    recorded = json.loads(path.read_text())
    assert {k: recorded[k] for k in rates} == rates and recorded["torch"] == torch.__version__
    # a later process reads the record instead of measuring again
    precision.cpu_conv_rates.cache_clear()

    def no_measuring(dtype):
        raise AssertionError("measured again although recorded")

    monkeypatch.setattr(precision, "_conv_rate", no_measuring)
    assert precision.cpu_conv_rates() == rates


def test_an_unreadable_record_is_measured_again(fresh_rates, monkeypatch):
    precision.cpu_conv_rates()
    (path,) = (fresh_rates / "machine").glob("conv_gflops_*.json")
    monkeypatch.setattr(precision, "_conv_rate", lambda dtype: {torch.float32: 100.0, torch.bfloat16: 50.0}[dtype])
    for text in ("{not json", '{"cpu": "x", "torch": "2", "fp32": 1e999, "bf16": 1}', '{"fp32": 100.0, "bf16": 0}'):
        path.write_text(text)
        precision.cpu_conv_rates.cache_clear()
        with pytest.warns(MachineRecordWarning, match=path.name):
            assert precision.cpu_conv_rates() == {"fp32": 100.0, "bf16": 50.0}
        recorded = json.loads(path.read_text())
        assert (recorded["fp32"], recorded["bf16"]) == (100.0, 50.0)


@pytest.mark.parametrize(
    "native,fp32,bf16,expected",
    [
        (True, 180.0, 112.0, "fp32"),  # AVX512-BF16 Xeon guest without AMX (docs/performance.md)
        (True, 92.8, 198.4, "bf16"),  # AVX512-BF16 EPYC
        (True, 100.0, 110.0, "fp32"),  # within the margin: not worth the accuracy
        (False, 100.0, 900.0, "fp32"),  # emulated bf16 is never chosen, whatever a record says
    ],
)
def test_auto_takes_bf16_only_where_measured_faster(fresh_rates, monkeypatch, native, fp32, bf16, expected):
    monkeypatch.setattr(precision, "_conv_rate", lambda dtype: 1.0)
    precision.cpu_conv_rates()  # writes a record ...
    _record(fresh_rates, {"fp32": fp32, "bf16": bf16})  # ... which now says these rates
    monkeypatch.setattr(precision, "cpu_has_fast_bf16", lambda: native)
    assert precision.plan_for("auto", CPU).name == expected
    assert precision.plan_for("bf16", CPU).name == "bf16"  # an explicit choice is kept


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc malloc")
def test_keep_freed_memory_switch(monkeypatch):
    from cmagrounding.video.heap import keep_freed_memory

    monkeypatch.setenv("CMAGROUNDING_KEEP_HEAP", "0")
    assert keep_freed_memory.__wrapped__() is False
    monkeypatch.delenv("CMAGROUNDING_KEEP_HEAP")
    import ctypes

    glibc = hasattr(ctypes.CDLL(None), "gnu_get_libc_version")
    assert keep_freed_memory.__wrapped__() is glibc


@pytest.mark.parametrize("relu", [True, False])
def test_fp32_1x1x1_gemm_equals_the_convolution(relu):
    from cmagrounding.video.fast_i3d import CL, FusedConv

    torch.manual_seed(0)
    w, b = torch.randn(24, 16, 1, 1, 1), torch.randn(24)
    conv = FusedConv(w, b, (1, 1, 1), (1, 1, 1), relu=relu, dtype=torch.float32)
    assert conv.gemm
    x = torch.randn(2, 16, 3, 5, 7).contiguous(memory_format=CL)
    ref = F.conv3d(x, w, b)
    ref = F.relu(ref) if relu else ref
    with torch.inference_mode():
        y = conv(x)
        y_default_layout = conv(x.contiguous())  # not channels-last: the conv itself
    assert y.is_contiguous(memory_format=CL)
    assert torch.allclose(y, ref, atol=1e-5) and torch.allclose(y_default_layout, ref, atol=1e-5)
    assert not FusedConv(w, b, (1, 1, 1), (1, 1, 1), relu=relu, dtype=torch.bfloat16).gemm
