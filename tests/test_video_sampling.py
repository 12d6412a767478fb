"""Clip sampling: both schemes, streaming assembly, and the mapping from clips to seconds."""

from __future__ import annotations

import numpy as np
import pytest

from tools.video import synthetic
from cmagrounding.video.config import VideoConfig
from cmagrounding.video.decode import Frame, probe
from cmagrounding.video.encoder import iter_clips
from cmagrounding.video.sampling import ClipAssembler, assemble, fixed_rate_clip_starts, uniform_clip_starts


def frames(n: int, fps: float = 10.0):
    for i in range(n):
        yield Frame(i, i / fps, np.full((2, 2, 3), i, np.uint8))


def test_uniform_starts_spread_and_clamped():
    s = uniform_clip_starts(1000, 4, 16)
    assert s.tolist() == [117, 367, 617, 867]  # centres at 125, 375, 625, 875
    short = uniform_clip_starts(20, 8, 16)
    assert short.min() == 0 and short.max() == 4 and np.all(np.diff(short) >= 0)
    assert uniform_clip_starts(5, 3, 16).tolist() == [0, 0, 0]


def test_fixed_rate_starts():
    assert fixed_rate_clip_starts(40, 16, 8).tolist() == [0, 8, 16, 24]
    assert fixed_rate_clip_starts(10, 16, 8).tolist() == [0]


def test_fixed_rate_assembly_streams_windows():
    asm = ClipAssembler(4, stride=2, frame_period=0.1, duration=1.0)
    clips = list(assemble(frames(10), asm))
    assert [c.frames[:, 0, 0, 0].tolist() for c in clips] == [[0, 1, 2, 3], [2, 3, 4, 5], [4, 5, 6, 7], [6, 7, 8, 9]]
    assert np.allclose([(c.start, c.end) for c in clips], [(0.0, 0.4), (0.2, 0.6), (0.4, 0.8), (0.6, 1.0)])
    assert len(asm._buffer) <= 4  # bounded: only frames a pending window needs


def test_short_video_gives_one_padded_window():
    clips = list(assemble(frames(3), ClipAssembler(4, stride=2, frame_period=0.1, duration=0.3)))
    assert len(clips) == 1
    assert clips[0].frames[:, 0, 0, 0].tolist() == [0, 1, 2, 2]
    assert (clips[0].start, clips[0].end) == pytest.approx((0.0, 0.3))


def test_uniform_assembly_skips_unneeded_frames_and_pads_overestimates():
    starts = uniform_clip_starts(100, 3, 4)
    asm = ClipAssembler(4, starts=starts, frame_period=0.1)
    wanted = [i for i in range(100) if asm.wanted(i)]
    assert len(wanted) == 12  # 3 clips x 4 frames; the other 88 are never converted to RGB
    clips = list(assemble((f if asm.wanted(f.index) else Frame(f.index, f.time, None) for f in frames(100)), asm))
    assert [c.frames[0, 0, 0, 0] for c in clips] == starts.tolist()
    # the probed length said 100 frames, but only 60 decode: late clips reuse the last frame
    asm = ClipAssembler(4, starts=uniform_clip_starts(100, 3, 4), frame_period=0.1)
    clips = list(assemble(frames(60), asm))
    assert len(clips) == 3 and clips[-1].frames[:, 0, 0, 0].tolist() == [59, 59, 59, 59]


@pytest.mark.parametrize("scheme", ["fixed_rate", "uniform_clips"])
def test_clip_times_match_their_content(tmp_path, scheme):
    """Frames of a generated video are red exactly in [4, 6) s: each clip's red share must equal the
    overlap of its (start, end) span with that interval."""
    path = tmp_path / "interval.mp4"
    synthetic.coloured_interval_video(path, 4.0, 6.0, duration=10.0, fps=25.0, size=(48, 32))
    config = VideoConfig(extractor="i3d", weights=None, fps=10.0, clip_len=8, stride=4, num_clips=12,
                         resize=32, crop=32, scheme=scheme)  # fmt: skip
    clips = list(iter_clips(config, path))
    assert len(clips) == (12 if scheme == "uniform_clips" else 24)  # fixed: windows at 0, 4, ..., 92 of 100 frames
    covered = np.zeros(100, bool)
    for c in clips:
        red = (c.frames[..., 0].mean(axis=(1, 2)) > c.frames[..., 2].mean(axis=(1, 2))).mean()
        overlap = max(0.0, min(c.end, 6.0) - max(c.start, 4.0)) / (c.end - c.start)
        assert red == pytest.approx(overlap, abs=1e-9), (c.start, c.end)
        assert c.end - c.start == pytest.approx(0.8)
        covered[int(round(c.start * 10)) : int(round(c.end * 10))] = True
    if scheme == "fixed_rate":
        assert covered.all()  # windows tile the whole video
    else:
        centres = [(c.start + c.end) / 2 for c in clips]
        assert np.allclose(np.diff(centres), 10.0 / 12, atol=0.1)  # spread uniformly


def test_native_rate_uses_timestamps(tmp_path):
    path = tmp_path / "v.mp4"
    synthetic.coloured_interval_video(path, 1.0, 2.0, duration=3.0, fps=30.0, size=(32, 32))
    config = VideoConfig(extractor="i3d", weights=None, fps=None, clip_len=6, stride=6, resize=32, crop=32)
    clips = list(iter_clips(config, path, probe(path)))
    assert len(clips) == 15
    assert clips[1].start == pytest.approx(0.2) and clips[-1].end == pytest.approx(3.0)
