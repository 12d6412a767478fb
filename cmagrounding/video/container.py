"""Opening a video container with PyAV and probing it: the path check, ``VideoInfo``, ``probe``.

Time origin: 0 s is the video stream's start (``stream.start_time``, else its first frame), so
sample times line up with annotation seconds measured by ordinary players.
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass
from pathlib import Path

from cmagrounding.errors import (
    VideoDecodeError,
    VideoEmptyError,
    VideoError,
    VideoIsFolderError,
    VideoNoStreamError,
    VideoNotFoundError,
    VideoTruncatedError,
)
from cmagrounding.video.damage import DecodeReport
from cmagrounding.video.packets import _END, _decode_packets


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
                    if not all(48 <= c <= 57 or 65 <= c <= 90 or 97 <= c <= 122 or c == 32 for c in kind):
                        # not a box name: bytes inserted or overwritten before this point shifted the structure
                        return f"the box structure is broken at byte {pos} (unreadable box {bytes(kind)!r}; data inserted or damaged)"
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
        # damaged metadata (titles, handler names) must not stop the pictures from decoding
        return av.open(str(p), mode="r", metadata_errors="replace")
    except av.error.FFmpegError as exc:
        why = _mp4_truncation(p)
        if why is not None:
            raise VideoTruncatedError(f"{p}: truncated or damaged file: {why}") from exc
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
    if streams[0].codec_context is None:  # decoding such a stream crashes FFmpeg 8.1 (PyAV issue 2344)
        raise VideoDecodeError(f"{p}: no decoder can be set up for the video stream (damaged header or unknown codec)")
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
        first, damage = None, DecodeReport()
        for first, _ in _decode_packets(container, stream, damage):  # skips packets that do not decode
            if first is not None:
                break
        if first is _END:
            first = None
        if first is None:
            if damage.decode_errors:
                raise VideoDecodeError(f"{p}: the video stream does not decode ({damage.decode_errors} packets rejected)")
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


def num_output_frames(info: VideoInfo, fps: float | None) -> int:
    """How many frames ``iter_frames`` is expected to yield (from the probed duration)."""
    if fps is None:
        return max(1, info.num_frames)
    return max(1, int(math.ceil(info.duration * fps - 1e-6)))
