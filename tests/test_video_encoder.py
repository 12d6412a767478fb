"""VideoEncoder end to end on generated videos: features know their seconds; precision; config round trips."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from cmagrounding.errors import ConfigError, VideoDecodeError, VideoNotFoundError
from cmagrounding.video import synthetic
from cmagrounding.video.config import VideoConfig
from cmagrounding.video.encoder import VideoEncoder, iter_clips
from cmagrounding.video.features import VideoFeatures
from cmagrounding.video.precision import cpu_prefers_bf16, plan_for


pytestmark = pytest.mark.usefixtures("one_torch_thread")


def tiny_config(**changes) -> VideoConfig:
    """Random-weight I3D on 32 x 32 crops of 8-frame windows at 10 fps: cheap enough for tests."""
    base = dict(extractor="i3d", weights=None, fps=10.0, clip_len=8, stride=4, resize=32, crop=32, batch_size=4, precision="fp32")
    return VideoConfig(**{**base, **changes})


@pytest.fixture(scope="module")
def encoder():
    torch.manual_seed(0)
    return VideoEncoder(tiny_config(), device="cpu")


@pytest.fixture(scope="module")
def interval_video(tmp_path_factory):
    path = tmp_path_factory.mktemp("videos") / "interval.mp4"
    synthetic.coloured_interval_video(path, 4.0, 6.0, duration=10.0, fps=25.0, size=(48, 32))
    return path


def test_feature_rows_map_to_seconds(encoder, interval_video):
    """Rows whose time span lies inside [4, 6) s see only red frames and equal the feature of a
    red-only clip; rows entirely outside equal a blue-only clip; rows straddling differ from both."""
    feats = encoder.encode(interval_video)
    assert feats.features.shape == (24, 1024) and feats.times.shape == (24, 2)
    assert feats.duration == pytest.approx(10.0) and feats.config.extractor == "i3d"
    clips = list(iter_clips(encoder.config, interval_video))
    red_clip = next(c for c in clips if c.start >= 4.0 and c.end <= 6.0)
    blue_clip = clips[0]
    red, blue = encoder.encode_clips(np.stack([red_clip.frames, blue_clip.frames]))
    assert np.linalg.norm(red - blue) > 1e-3 * np.linalg.norm(red)
    for row, (start, end) in zip(feats.features, feats.times):
        scale = np.linalg.norm(row)
        if start >= 4.0 and end <= 6.0:
            assert np.linalg.norm(row - red) < 1e-4 * scale, (start, end)
        elif end <= 4.0 or start >= 6.0:
            assert np.linalg.norm(row - blue) < 1e-4 * scale, (start, end)
        else:
            assert min(np.linalg.norm(row - red), np.linalg.norm(row - blue)) > 1e-4 * scale, (start, end)
    inside = (feats.times[:, 0] >= 4.0) & (feats.times[:, 1] <= 6.0)
    assert feats.times[inside, 0].min() == pytest.approx(4.0) and feats.times[inside, 1].max() == pytest.approx(6.0)


def test_uniform_clips_scheme_gives_num_clips_rows(interval_video):
    torch.manual_seed(0)
    enc = VideoEncoder(tiny_config(scheme="uniform_clips", num_clips=6), device="cpu", prefetch=0)
    feats = enc.encode(interval_video)
    assert feats.features.shape == (6, 1024)
    assert np.all(np.diff(feats.times[:, 0]) > 0) and feats.times[-1, 1] <= 10.0


def test_prefetch_thread_gives_same_result(encoder, interval_video):
    a = encoder.encode(interval_video)
    encoder.prefetch, before = 0, encoder.prefetch
    try:
        b = encoder.encode(interval_video)
    finally:
        encoder.prefetch = before
    assert np.array_equal(a.features, b.features) and np.array_equal(a.times, b.times)


def test_errors_cross_the_decode_thread(encoder, tmp_path):
    with pytest.raises(VideoNotFoundError, match="missing.mp4"):
        encoder.encode(tmp_path / "missing.mp4")
    bad = tmp_path / "bad.mkv"
    synthetic.write_video(bad, lambda i, t: np.full((32, 48, 3), (i * 9) % 255, np.uint8), duration=4.0, fps=25)
    bad.write_bytes(bad.read_bytes()[: bad.stat().st_size // 2])
    with pytest.raises(VideoDecodeError, match="bad.mkv"):
        encoder.encode(bad)
    results = dict(encoder.encode_many([tmp_path / "missing.mp4", bad]))
    assert isinstance(results[str(tmp_path / "missing.mp4")], VideoNotFoundError)


def test_short_video_is_padded(encoder, tmp_path):
    path = tmp_path / "short.mp4"
    synthetic.coloured_interval_video(path, 0.0, 0.1, duration=0.32, fps=25.0, size=(32, 32))  # 8 frames
    feats = encoder.encode(path)  # 3 frames at 10 fps, one window of 8 padded with the last frame
    assert feats.features.shape == (1, 1024)
    assert feats.times[0].tolist() == pytest.approx([0.0, 0.32])


def test_fast_path_fidelity_vs_fp32():
    """Cosine of bf16 (+ channels_last) features against fp32 on real-ish clips, on the CPU."""
    torch.manual_seed(0)
    enc32 = VideoEncoder(tiny_config(precision="fp32"), device="cpu")
    enc16 = VideoEncoder(tiny_config(precision="bf16"), device="cpu", weights_path=None)
    enc16.model.load_state_dict(enc32.model.state_dict())
    rng = np.random.default_rng(0)
    clips = (rng.random((2, 8, 32, 32, 3)) * 255).astype(np.uint8)
    a, b = enc32.encode_clips(clips), enc16.encode_clips(clips)
    cos = (a * b).sum(1) / np.linalg.norm(a, axis=1) / np.linalg.norm(b, axis=1)
    assert np.all(cos > 0.99), cos


def test_precision_plans():
    cpu = torch.device("cpu")
    assert plan_for("fp32", cpu).autocast_dtype is None
    assert plan_for("bf16", cpu).autocast_dtype == torch.bfloat16
    assert plan_for("auto", cpu).name == ("bf16" if cpu_prefers_bf16() else "fp32")  # measured per machine
    with pytest.raises(ConfigError):
        plan_for("int4", cpu)


def test_preprocess_normalisation(encoder):
    clips = np.zeros((1, 2, 4, 4, 3), np.uint8)
    clips[..., 0] = 255
    x = encoder.preprocess(clips)
    assert x.shape == (1, 3, 2, 4, 4)
    assert torch.all(x[:, 0] == 1.0) and torch.all(x[:, 1:] == -1.0)  # I3D: [0, 255] -> [-1, 1]
    enc = VideoEncoder.__new__(VideoEncoder)  # the arithmetic alone, for a mean/std preset
    cfg = VideoConfig.for_extractor("tv_r3d_18", weights=None)
    lo, hi = cfg.value_range
    enc.config, enc.device, enc.plan = cfg, torch.device("cpu"), plan_for("fp32", torch.device("cpu"))
    mean, std = torch.tensor(cfg.mean), torch.tensor(cfg.std)
    enc._scale = ((hi - lo) / 255.0 / std).view(1, 3, 1, 1, 1)
    enc._shift = ((lo - mean) / std).view(1, 3, 1, 1, 1)
    y = enc.preprocess(clips)
    assert torch.allclose(y[0, :, 0, 0, 0], (torch.tensor([1.0, 0.0, 0.0]) - mean) / std)


def test_features_save_load_roundtrip(encoder, interval_video, tmp_path):
    feats = encoder.encode(interval_video)
    path = tmp_path / "f.safetensors"
    feats.save(path)
    back = VideoFeatures.load(path)
    assert np.array_equal(back.features, feats.features) and np.array_equal(back.times, feats.times)
    assert back.config == feats.config and back.duration == feats.duration and back.source == feats.source
    assert not list(tmp_path.glob(".*tmp"))  # the atomic write left nothing behind
