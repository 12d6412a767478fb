"""The fast I3D paths (fused eager copy, compiled package) against eager fp32, and the runtime choice.

Tiny inputs (1-2 clips of 16 x 64 x 64) and trained-like BatchNorm statistics, so folding is really
exercised; the compile test runs only on request (it compiles for minutes).
"""

from __future__ import annotations

import os

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from cmagrounding.errors import ConfigError
from cmagrounding.video.fast_i3d import FastI3D
from cmagrounding.video.i3d import InceptionI3d
from cmagrounding.video.precision import cpu_has_fast_bf16, plan_for
from cmagrounding.video.runtime import choose_runtime, make_runner

pytestmark = pytest.mark.usefixtures("one_torch_thread")
CPU = torch.device("cpu")


def trained_like_i3d(seed: int = 0) -> InceptionI3d:
    """Random I3D whose BatchNorm layers have non-trivial statistics and affine terms."""
    torch.manual_seed(seed)
    model = InceptionI3d().eval()
    for m in model.modules():
        if isinstance(m, torch.nn.BatchNorm3d):
            m.running_mean.uniform_(-0.2, 0.2)
            m.running_var.uniform_(0.3, 2.0)
            m.weight.data.uniform_(0.8, 1.6)
            m.bias.data.uniform_(0.0, 0.3)
    return model


def clip_input(batch: int = 1, size: int = 64, seed: int = 1) -> torch.Tensor:
    """Smooth moving patterns plus noise in [-1, 1], (B, 3, 16, size, size)."""
    g = torch.Generator().manual_seed(seed)
    t = torch.arange(16).view(1, 1, 16, 1, 1).float()
    yy = torch.arange(size).view(1, 1, 1, size, 1).float()
    xx = torch.arange(size).view(1, 1, 1, 1, size).float()
    phase = torch.rand(batch, 3, 1, 1, 1, generator=g) * 6.28
    x = torch.sin(0.2 * xx + 0.1 * yy + 0.3 * t + phase) * 0.7
    return (x + 0.3 * torch.rand(batch, 3, 16, size, size, generator=g) - 0.15).clamp(-1, 1)


def cos(a: torch.Tensor, b: torch.Tensor) -> np.ndarray:
    return F.cosine_similarity(a.double(), b.double(), dim=1).numpy()


@pytest.fixture(scope="module")
def model_and_reference():
    model = trained_like_i3d()
    x = clip_input(2)
    with torch.inference_mode():
        feats, logits = model.features_and_logits(x)
    return model, x, feats, logits


def test_fused_fp32_matches_eager(model_and_reference):
    model, x, feats, logits = model_and_reference
    keys_before = list(model.state_dict())
    with torch.inference_mode():
        f, lg = FastI3D(model, torch.float32).features_and_logits(x)
    assert np.all(cos(f, feats) >= 0.9999), cos(f, feats)
    assert np.all(cos(lg, logits) >= 0.9999)
    assert torch.allclose(f, feats, rtol=1e-3, atol=1e-4 * feats.abs().max().item())
    # the source model keeps the pytorch-i3d layout: same keys, same BatchNorm modules
    assert list(model.state_dict()) == keys_before
    assert "Mixed_4b.b1a.bn.running_var" in keys_before and "Conv3d_1a_7x7.conv3d.weight" in keys_before


@pytest.mark.skipif(not cpu_has_fast_bf16(), reason="no native bf16 on this CPU")
def test_fused_bf16_matches_eager_fp32(model_and_reference):
    model, x, feats, _ = model_and_reference
    with torch.inference_mode():
        f = FastI3D(model, torch.bfloat16).features(x)
    assert f.dtype == torch.float32
    assert np.all(cos(f, feats) >= 0.999), cos(f, feats)


def test_merged_1x1_weights_are_the_three_branches(model_and_reference):
    """The merged conv of Mixed_3b stacks b0, b1a, b2a (in that order) with their BN folded."""
    from cmagrounding.video.fast_i3d import fold_unit

    model = model_and_reference[0]
    fast = FastI3D(model)
    merged = fast.layers["Mixed_3b"].reduce.weight
    parts = [fold_unit(getattr(model.Mixed_3b, b))[0] for b in ("b0", "b1a", "b2a")]
    assert merged.shape[0] == sum(p.shape[0] for p in parts) == 64 + 96 + 16
    assert torch.equal(merged.contiguous(), torch.cat(parts))


def test_runner_choice():
    plan32 = plan_for("fp32", CPU)
    assert choose_runtime(plan32, "auto") == "fused"  # per input shape the cached package may replace it
    assert choose_runtime(plan32, "compiled") == "compiled"  # only on request: it compiles for minutes
    assert choose_runtime(plan32, "eager") == "eager"
    for removed in ("onnxruntime", "tensorrt"):
        with pytest.raises(ConfigError, match="runtime"):
            choose_runtime(plan32, removed)
    # other backbones stay eager
    assert make_runner(torch.nn.Conv3d(3, 4, 1), plan32).name == "eager"


def test_encoder_uses_fused_runner_with_same_features(model_and_reference):
    from cmagrounding.video.config import VideoConfig
    from cmagrounding.video.encoder import VideoEncoder

    model = model_and_reference[0]
    enc = VideoEncoder(VideoConfig(weights=None, precision="fp32", crop=64, resize=64), device="cpu")
    enc.model.load_state_dict(model.state_dict())
    clips = ((clip_input(1).permute(0, 2, 3, 4, 1) + 1) * 127.5).round().to(torch.uint8).numpy()
    got = enc.encode_clips(clips)
    assert enc.runner.name == "fused"
    with torch.inference_mode():
        ref = model.features(enc.preprocess(clips).contiguous())
    assert np.all(cos(torch.from_numpy(got), ref) >= 0.9999)


def test_int8_is_refused_by_name():
    from cmagrounding.video.config import VideoConfig

    with pytest.raises(ConfigError, match="int8"):
        plan_for("int8", CPU)
    with pytest.raises(ConfigError, match="int8.*no longer"):
        VideoConfig(precision="int8")


@pytest.mark.parametrize("kernel,stride,shape", [((3, 3, 3), (1, 1, 1), (2, 8, 4, 7, 7)), ((3, 3, 3), (1, 1, 1), (1, 4, 1, 2, 3)), ((2, 2, 2), (1, 1, 1), (1, 4, 5, 6, 7)), ((1, 3, 3), (1, 2, 2), (1, 4, 5, 7, 8))])
@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
def test_fast_pools_equal_tf_same_pools(kernel, stride, shape, dtype):
    from cmagrounding.video.fast_i3d import FastPool
    from cmagrounding.video.i3d import MaxPool3dSame

    pool = MaxPool3dSame(kernel, stride)
    x = torch.randn(*shape).to(dtype).contiguous(memory_format=torch.channels_last_3d)
    assert torch.equal(FastPool(pool)(x), pool(x))


@pytest.mark.parametrize("kernel,stride", [((1, 3, 3), (1, 2, 2)), ((3, 3, 3), (2, 2, 2)), ((2, 2, 2), (2, 2, 2)),
                                           ((3, 3, 3), (1, 1, 1)), ((1, 1, 1), (1, 2, 2))])
@pytest.mark.parametrize("shape", [(2, 8, 8, 28, 28), (1, 4, 7, 15, 13), (1, 3, 1, 2, 3), (1, 2, 2, 1, 5)])
@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
def test_strided_pools_after_relu_equal_tf_same_pools(kernel, stride, shape, dtype):
    """The pools of I3D's fused copy (inputs after a ReLU): strided views instead of a padded copy."""
    from cmagrounding.video.fast_i3d import FastPool
    from cmagrounding.video.i3d import MaxPool3dSame

    pool = MaxPool3dSame(kernel, stride)
    x = torch.relu(torch.randn(*shape)).to(dtype).contiguous(memory_format=torch.channels_last_3d)
    got = FastPool(pool, nonnegative=True)(x)
    assert got.shape == pool(x).shape and torch.equal(got, pool(x))
    assert got.is_contiguous(memory_format=torch.channels_last_3d)


@pytest.mark.slow
@pytest.mark.skipif(os.environ.get("CMAGROUNDING_TEST_COMPILE") != "1", reason="compiles for minutes; set CMAGROUNDING_TEST_COMPILE=1")
def test_compiled_runner_matches_eager_and_pads_small_batches(model_and_reference, tmp_path, monkeypatch):
    from cmagrounding.video.runtime import CompiledRunner

    monkeypatch.setenv("CMAGROUNDING_CACHE", str(tmp_path))
    model, x, feats, logits = model_and_reference
    precision = "bf16" if cpu_has_fast_bf16() else "fp32"  # bf16 compiles the pools' other form
    runner = CompiledRunner(model, plan_for(precision, CPU), weights_sha256="ef" * 32)
    with torch.inference_mode():
        f, lg = runner._run(x)
        f1 = runner.features(x[:1])  # smaller batch: zero-padded into the same package
    tol = 0.999 if precision == "bf16" else 0.9999
    assert np.all(cos(f, feats) >= tol) and np.all(cos(lg, logits) >= tol)
    assert f1.shape == (1, 1024) and cos(f1, feats[:1])[0] >= tol
    assert len(list((tmp_path / "i3d" / "compiled").glob("*.pt2"))) == 1
    from cmagrounding.video.runtime import read_figures  # the compile's seconds are recorded for "auto"

    assert read_figures("ef" * 32, tuple(x.shape), precision).compile_s > 0
    # "auto" finds the package cached without speeds: measures both paths on its batches, records them
    auto = make_runner(model, plan_for(precision, CPU), runtime="auto", weights_sha256="ef" * 32)
    with torch.inference_mode():
        outs = [auto.features(x) for _ in range(5)]
    fig = read_figures("ef" * 32, tuple(x.shape), precision)
    assert fig.compile_s > 0 and fig.compiled > 0 and fig.fused > 0
    assert auto.name == ("compiled" if fig.compiled > fig.fused else "fused")
    assert all(np.all(cos(f, feats) >= tol) for f in outs)


def test_the_encoder_announces_each_videos_clip_count():
    from cmagrounding.video.config import VideoConfig
    from cmagrounding.video.container import VideoInfo
    from cmagrounding.video.encoder import VideoEncoder

    enc = VideoEncoder(VideoConfig(weights=None, precision="fp32", fps=25.0, clip_len=16, stride=8), device="cpu")
    info = VideoInfo(path="v.mp4", duration=60.0, fps=25.0, num_frames=1500, width=64, height=48)
    assert enc.clips_in(info) == 1500 // 8
    uniform = VideoEncoder(VideoConfig(weights=None, precision="fp32", scheme="uniform_clips", num_clips=32), device="cpu")
    assert uniform.clips_in(info) == 32


def test_extraction_jobs_announce_their_clip_count(tmp_path):
    """extract_folder tells the runtime about how many clips its videos give (probed, not decoded)."""
    from cmagrounding.video.config import VideoConfig
    from cmagrounding.video.extract import estimate_clips
    from tools.video.synthetic import write_video

    videos = []
    for i, seconds in enumerate((4.0, 6.0, 8.0)):
        videos.append(tmp_path / f"v{i}.mp4")
        write_video(videos[-1], lambda k, t: np.full((48, 64, 3), k % 255, np.uint8), seconds, fps=25.0)
    rate = VideoConfig(scheme="fixed_rate", fps=25.0, clip_len=16, stride=16)
    assert estimate_clips(videos, rate) == pytest.approx(18 * 25 / 16, abs=1.5)  # 18 s at 25 fps, a clip per 16 frames
    assert estimate_clips(videos, VideoConfig(scheme="uniform_clips", num_clips=32)) == 3 * 32
    assert estimate_clips([tmp_path / "missing.mp4"], rate) == 0  # a hint only: unreadable videos never raise
