"""Video decoding with PyAV: probing, and a streaming iterator of RGB frames at a chosen rate and size.

Memory is bounded by one decoded frame at a time (plus FFmpeg's own small codec buffers): frames are
converted to RGB and resized by swscale inside the decode loop and handed on immediately, so a
one-hour video never sits decoded in memory.

Time origin: 0 s is the video stream's start (``stream.start_time``, else its first frame), so
sample times line up with annotation seconds measured by ordinary players.
"""

from __future__ import annotations

import logging
import math
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterator

import numpy as np

from cmagrounding.errors import (
    VideoDecodeError,
    VideoEmptyError,
    VideoError,
    VideoIsFolderError,
    VideoNoStreamError,
    VideoNotFoundError,
    VideoTruncatedError,
)

logger = logging.getLogger(__name__)


def check_video_path(path: str | os.PathLike) -> str:
    """The one check of a video path before anything opens it: ``VideoNotFoundError`` when it does
    not exist, ``VideoIsFolderError`` for a folder, ``VideoError`` for anything else that is not a file."""
    p = Path(path)
    if not p.exists():
        raise VideoNotFoundError(f"video file not found: {str(p)!r}")
    if p.is_dir():
        raise VideoIsFolderError(f"{str(p)!r} is a folder, not a video file")
    if not p.is_file():
        raise VideoError(f"{str(p)!r} is not a regular file (a device or a pipe?); give a video file")
    return os.fspath(p)

# A decode that stops before this fraction of the announced duration (and more than 2 frames short)
# is a truncated file, not rounding: raise instead of silently returning half a video.
TRUNCATION_TOLERANCE = 0.9


@dataclass(frozen=True)
class VideoInfo:
    """What ``probe`` learns about a video file.

    width / height are the coded size after rotation (sample aspect ratio ignored, as the field's
    extractors do).
    rotation is the display matrix's counter-clockwise angle in degrees (0, 90, 180, 270).
    duration_source says where ``duration`` came from: "stream", "container" or "frames".
    """

    path: str
    duration: float
    fps: float
    num_frames: int
    width: int
    height: int
    rotation: int = 0
    has_audio: bool = False
    codec: str = ""
    duration_source: str = "stream"
    container_duration: float | None = None
    variable_frame_rate: bool = False


@dataclass
class Frame:
    """One output frame: ``index`` in the output sequence, ``time`` in seconds, ``image`` (H, W, 3)
    uint8 RGB, or None when the caller's ``wanted`` filter skipped the conversion."""

    index: int
    time: float
    image: np.ndarray | None




def _mp4_truncation(p: Path) -> str | None:
    """For an ISO-BMFF file (mp4/mov/m4a): why it looks cut short, or None if it does not.

    The index (``moov`` box) of a normal mp4 is written last, so an interrupted download or
    recording leaves a file FFmpeg only calls "invalid data"; walking the top-level boxes tells
    the user what actually happened.
    """
    size = p.stat().st_size
    try:
        with open(p, "rb") as f:
            head = f.read(8)
            if len(head) < 8 or head[4:8] != b"ftyp":
                return None
            pos, seen = 0, []
            while pos + 8 <= size:
                f.seek(pos)
                hdr = f.read(16)
                box_size, kind = int.from_bytes(hdr[:4], "big"), hdr[4:8]
                if box_size == 1 and len(hdr) >= 16:
                    box_size = int.from_bytes(hdr[8:16], "big")
                elif box_size == 0:
                    box_size = size - pos
                if box_size < 8:
                    return None
                seen.append(kind)
                if pos + box_size > size:
                    return f"the {kind.decode(errors='replace')!r} box needs {pos + box_size} bytes but the file has {size}"
                pos += box_size
            if b"moov" not in seen:
                return "no 'moov' index box (an interrupted download or recording?)"
    except OSError:
        return None
    return None


def _open(p: Path):
    import av

    try:
        return av.open(str(p), mode="r")
    except av.error.FFmpegError as exc:
        why = _mp4_truncation(p)
        if why is not None:
            raise VideoTruncatedError(f"{p}: truncated file: {why}") from exc
        raise VideoDecodeError(f"{p}: not a readable video file ({exc.strerror or exc})") from exc


def _video_stream(container, p: Path):
    import av

    streams = [
        s for s in container.streams.video if not (int(s.disposition) & int(av.stream.Disposition.attached_pic))
    ]
    if not streams:
        kinds = sorted({s.type for s in container.streams})
        if not kinds:  # e.g. an mp4 whose only track has zero samples: FFmpeg drops the track
            raise VideoEmptyError(f"{p}: the file holds no streams with data (a video with zero frames?)")
        raise VideoNoStreamError(f"{p}: no video stream (streams found: {', '.join(kinds)})")
    return streams[0]


def _rate(stream) -> float:
    for rate in (stream.average_rate, stream.guessed_rate, stream.base_rate):
        if rate and float(rate) > 0:
            return float(rate)
    return 0.0


def _origin(stream, first_time: float | None) -> float:
    if stream.start_time is not None and stream.time_base is not None:
        return float(stream.start_time * stream.time_base)
    return first_time or 0.0


def probe(path: str | os.PathLike) -> VideoInfo:
    """Duration, frame rate, size, rotation and audio presence of a video file.

    Duration: the video stream's own duration when the container records it (an audio track
    running longer than the picture does not count), else the container's, else frames / fps.
    Decodes the first frame to read rotation and to prove the stream decodes at all.

    Raises VideoNotFoundError, VideoDecodeError (not a media file), VideoNoStreamError (audio only),
    VideoEmptyError (no frame decodes).
    """
    p = Path(check_video_path(path))
    container = _open(p)
    try:
        stream = _video_stream(container, p)
        fps = _rate(stream)
        tb = stream.time_base
        stream_dur = float(stream.duration * tb) if stream.duration and tb else None
        container_dur = container.duration / 1_000_000 if container.duration else None
        first = None
        try:
            for first in container.decode(stream):
                break
        except Exception as exc:  # noqa: BLE001  (FFmpeg raises many types for broken data)
            raise VideoDecodeError(f"{p}: the video stream does not decode ({exc})") from exc
        if first is None:
            raise VideoEmptyError(f"{p}: the video stream has no decodable frames")
        rotation = int(round((first.rotation or 0) / 90.0)) % 4 * 90
        if stream.frames and fps:
            frames_dur = stream.frames / fps
        else:
            frames_dur = None
        if stream_dur:
            duration, source = stream_dur, "stream"
        elif container_dur:
            duration, source = container_dur, "container"
        elif frames_dur:
            duration, source = frames_dur, "frames"
        else:
            duration, source = 0.0, "unknown"
        num_frames = int(stream.frames) if stream.frames else int(round(duration * fps)) if fps else 0
        # coded size, rotated; sample aspect ratio is ignored like the field's extractors (cv2, ffmpeg scale)
        w, h = first.width, first.height
        if rotation in (90, 270):
            w, h = h, w
        base = float(stream.base_rate) if stream.base_rate else 0.0
        vfr = bool(fps and base and abs(base - fps) > 1e-3 * fps)
        return VideoInfo(
            path=str(p),
            duration=float(duration),
            fps=fps,
            num_frames=num_frames,
            width=w,
            height=h,
            rotation=rotation,
            has_audio=bool(container.streams.audio),
            codec=stream.codec_context.name,
            duration_source=source,
            container_duration=container_dur,
            variable_frame_rate=vfr,
        )
    finally:
        container.close()


def output_size(width: int, height: int, resize: int | None) -> tuple[int, int]:
    """Display size (w, h) after scaling the short side to ``resize`` (aspect kept, even rounding)."""
    if resize is None:
        return width, height
    scale = resize / min(width, height)
    return max(resize, int(round(width * scale))), max(resize, int(round(height * scale)))


def _convert(frame, size_wh: tuple[int, int] | None, rotation: int, crop: int | None) -> np.ndarray:
    """RGB uint8 (H, W, 3): scale (swscale, in decode orientation), rotate for display, centre crop."""
    kwargs = {"format": "rgb24"}
    if size_wh is not None:
        w, h = size_wh
        if rotation in (90, 270):
            w, h = h, w
        kwargs.update(width=w, height=h, interpolation="BILINEAR")
    image = frame.to_ndarray(**kwargs)
    if rotation:
        image = np.rot90(image, k=rotation // 90)  # display = stored image rotated counter-clockwise
    if crop is not None:
        h, w = image.shape[:2]
        top, left = max(0, (h - crop) // 2), max(0, (w - crop) // 2)
        image = image[top : top + crop, left : left + crop]
    return np.ascontiguousarray(image)


def iter_frames(
    path: str | os.PathLike,
    fps: float | None = None,
    resize: int | None = None,
    crop: int | None = None,
    *,
    info: VideoInfo | None = None,
    wanted: Callable[[int], bool] | None = None,
    threads: bool = True,
) -> Iterator[Frame]:
    """Stream a video's frames as RGB, at ``fps`` (None = every decoded frame) and size.

    With ``fps``, output frame k shows the decoded frame on screen at ``k / fps`` seconds (the last
    frame whose timestamp is <= that time), so variable-frame-rate videos come out at a steady
    rate; frames repeat or drop as needed. Output stops at the video's duration.
    ``resize`` scales the short side (aspect kept); ``crop`` takes a centre square.
    ``wanted(index)`` False skips the RGB conversion of that frame (its ``image`` is None): cheap
    skipping for sparse sampling.

    Raises the errors of ``probe``, and VideoTruncatedError when decoding stops well before the
    announced duration.
    """
    p = Path(check_video_path(path))
    info = info or probe(p)
    container = _open(p)
    try:
        stream = _video_stream(container, p)
        if threads:
            stream.thread_type = "AUTO"
        rotation = info.rotation
        size = None
        if resize is not None:
            disp = output_size(info.width, info.height, resize)
            size = disp
        native_dt = 1.0 / info.fps if info.fps else 0.04
        origin: float | None = None
        emitted = 0  # next output index
        prev = None  # (frame, time) waiting for its successor's timestamp
        last_time = -math.inf
        decoded = 0

        def frame_time(frame, i: int) -> float:
            t = frame.time
            if t is None:
                return i * native_dt
            return float(t) - (origin or 0.0)

        def emit_until(frame, t_frame: float, t_next: float) -> Iterator[Frame]:
            nonlocal emitted
            if fps is None:
                img = _convert(frame, size, rotation, crop) if wanted is None or wanted(emitted) else None
                yield Frame(emitted, max(t_frame, 0.0), img)
                emitted += 1
                return
            img = None
            # tolerance: a target time equal to the next frame's timestamp belongs to the next frame
            while emitted / fps < t_next - 1e-6:
                if wanted is None or wanted(emitted):
                    if img is None:
                        img = _convert(frame, size, rotation, crop)
                    yield Frame(emitted, emitted / fps, img)
                else:
                    yield Frame(emitted, emitted / fps, None)
                emitted += 1

        try:
            for frame in container.decode(stream):
                if origin is None:
                    origin = _origin(stream, float(frame.time) if frame.time is not None else None)
                t = frame_time(frame, decoded)
                decoded += 1
                if t <= last_time:  # out-of-order or duplicate timestamp: keep the sequence monotonic
                    t = last_time + 1e-6
                last_time = t
                if prev is not None:
                    yield from emit_until(prev[0], prev[1], t)
                prev = (frame, t)
        except VideoDecodeError:
            raise
        except Exception as exc:  # noqa: BLE001
            import av

            if not isinstance(exc, av.error.FFmpegError):
                raise
            raise VideoTruncatedError(
                f"{p}: decoding failed after {decoded} frames "
                f"({max(last_time, 0.0):.2f} s of {info.duration:.2f} s): {exc}"
            ) from exc
        if prev is None:
            raise VideoEmptyError(f"{p}: the video stream has no decodable frames")
        end = prev[1] + native_dt
        announced = info.duration
        if announced > 0 and end < TRUNCATION_TOLERANCE * announced and announced - end > 2 * native_dt:
            raise VideoTruncatedError(
                f"{p}: truncated: frames decode only up to {end:.2f} s of the announced {announced:.2f} s"
            )
        # the last frame lasts until the announced duration (or one frame period)
        yield from emit_until(prev[0], prev[1], max(end, announced) if fps is not None else end)
    finally:
        container.close()


def num_output_frames(info: VideoInfo, fps: float | None) -> int:
    """How many frames ``iter_frames`` is expected to yield (from the probed duration)."""
    if fps is None:
        return max(1, info.num_frames)
    return max(1, int(math.ceil(info.duration * fps - 1e-6)))

