"""Write small videos with known content, for tests, benchmarks and examples.

``write_video(path, frames_fn, duration, fps, size)`` encodes frame ``i`` = ``frames_fn(i, t)`` with
PyAV; ``coloured_interval_video`` makes the simplest proof of the features-to-seconds mapping: one
colour before ``start`` and after ``end`` seconds, another between.
"""

from __future__ import annotations

import math
import os
from fractions import Fraction
from typing import Callable

import numpy as np


def write_video(
    path: str | os.PathLike,
    frame_fn: Callable[[int, float], np.ndarray],
    duration: float,
    fps: float = 25.0,
    size: tuple[int, int] = (64, 48),
    codec: str = "libx264",
    rotation: int = 0,
    audio_seconds: float | None = None,
    crf: int = 18,
) -> int:
    """Encode ``ceil(duration * fps)`` frames of ``frame_fn(index, seconds) -> (H, W, 3) uint8``.

    ``size`` is (width, height) as stored; ``rotation`` sets the display matrix (counter-clockwise
    degrees); ``audio_seconds`` adds a silent AAC track of that length. Returns the frame count.
    """
    import av

    width, height = size
    n = int(math.ceil(duration * fps - 1e-9))
    rate = Fraction(fps).limit_denominator(1001)
    with av.open(str(path), mode="w") as container:
        stream = container.add_stream(codec, rate=rate)
        stream.width, stream.height = width, height
        stream.pix_fmt = "yuv420p"
        if codec == "libx264":
            stream.options = {"crf": str(crf), "preset": "ultrafast", "tune": "zerolatency"}
        if rotation:
            stream.set_display_rotation(rotation)
        audio = None
        if audio_seconds:
            audio = container.add_stream("aac", rate=16000)
            audio.layout = "mono"
        for i in range(n):
            image = np.ascontiguousarray(frame_fn(i, i / fps), dtype=np.uint8)
            frame = av.VideoFrame.from_ndarray(image, format="rgb24")
            for packet in stream.encode(frame):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
        if audio is not None:
            samples = int(audio_seconds * 16000)
            step = 1024
            for start in range(0, samples, step):
                chunk = np.zeros((1, min(step, samples - start)), dtype=np.float32)
                aframe = av.AudioFrame.from_ndarray(chunk, format="fltp", layout="mono")
                aframe.sample_rate = 16000
                aframe.pts = start
                for packet in audio.encode(aframe):
                    container.mux(packet)
            for packet in audio.encode():
                container.mux(packet)
    return n


def coloured_interval_video(
    path: str | os.PathLike,
    start: float,
    end: float,
    duration: float,
    fps: float = 25.0,
    size: tuple[int, int] = (64, 48),
    inside: tuple[int, int, int] = (230, 30, 30),
    outside: tuple[int, int, int] = (30, 30, 230),
    **kwargs,
) -> int:
    """A video that shows ``inside`` colour for ``start <= t < end`` seconds, ``outside`` elsewhere."""
    width, height = size
    a = np.empty((height, width, 3), np.uint8)
    a[:] = inside
    b = np.empty((height, width, 3), np.uint8)
    b[:] = outside
    return write_video(path, lambda i, t: a if start <= t < end else b, duration, fps, size, **kwargs)


def write_audio_only(path: str | os.PathLike, seconds: float = 1.0) -> None:
    """An .m4a file with a silent AAC track and no video stream."""
    import av

    with av.open(str(path), mode="w", format="mp4") as container:
        audio = container.add_stream("aac", rate=16000)
        audio.layout = "mono"
        samples = int(seconds * 16000)
        for start in range(0, samples, 1024):
            chunk = np.zeros((1, min(1024, samples - start)), dtype=np.float32)
            frame = av.AudioFrame.from_ndarray(chunk, format="fltp", layout="mono")
            frame.sample_rate = 16000
            frame.pts = start
            for packet in audio.encode(frame):
                container.mux(packet)
        for packet in audio.encode():
            container.mux(packet)


def write_zero_frame_video(path: str | os.PathLike, size: tuple[int, int] = (64, 48)) -> None:
    """An mp4 with a video stream header and no frames at all."""
    import av

    with av.open(str(path), mode="w") as container:
        stream = container.add_stream("libx264", rate=25)
        stream.width, stream.height = size
        stream.pix_fmt = "yuv420p"
