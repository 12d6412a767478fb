"""Video decoding with PyAV: probing, and a streaming iterator of RGB frames at a chosen rate and size.

Memory is bounded by one decoded frame at a time (plus FFmpeg's own small codec buffers): frames are
converted to RGB and resized by swscale inside the decode loop and handed on immediately, so a
one-hour video never sits decoded in memory.

Time origin: 0 s is the video stream's start (``stream.start_time``, else its first frame), so
sample times line up with annotation seconds measured by ordinary players.

Damaged files (a few corrupt bytes from a phone or an interrupted copy) decode as far as they can,
as players show them: packets are decoded one by one, a packet the decoder rejects is skipped, and
a frame that never comes out is shown as the last good frame, so the timeline stays right. What was
lost is counted in a ``DecodeReport`` and logged once per video; a video is refused only when less
than ``min_decoded_fraction`` of its announced duration decodes (docs/video.md, "Decoding").

This module holds the frames (``Frame``, RGB conversion, ``iter_frames``); opening and probing live
in ``container.py``, the packet loop in ``packets.py``, ``DecodeReport`` and the refusal checks in
``damage.py``. Their public names are re-exported here, the one import path callers use.
"""

from __future__ import annotations

import logging
import math
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterator

import numpy as np

from cmagrounding.errors import ConfigError, VideoDamagedError, VideoEmptyError
from cmagrounding.video.container import (  # re-exported: the public names stay importable from here
    VideoInfo,
    _open,
    _origin,
    _video_stream,
    check_video_path,
    num_output_frames,
    probe,
)
from cmagrounding.video.damage import (  # re-exported
    DEFAULT_MIN_DECODED_FRACTION,
    TRUNCATION_TOLERANCE,
    DecodeReport,
    _check_enough,
)
from cmagrounding.video.packets import _END, _decode_packets

__all__ = [
    "DEFAULT_MIN_DECODED_FRACTION",
    "TRUNCATION_TOLERANCE",
    "DecodeReport",
    "Frame",
    "VideoInfo",
    "check_video_path",
    "iter_frames",
    "num_output_frames",
    "output_size",
    "probe",
]

logger = logging.getLogger(__name__)


@dataclass
class Frame:
    """One output frame: ``index`` in the output sequence, ``time`` in seconds, ``image`` (H, W, 3)
    uint8 RGB, or None when the caller's ``wanted`` filter skipped the conversion. ``lost``: the
    video's own frame for this time did not decode, so ``image`` shows the last good frame."""

    index: int
    time: float
    image: np.ndarray | None
    lost: bool = False  # the frame due at this time did not decode: this repeats the last good one


def output_size(width: int, height: int, resize: int | None) -> tuple[int, int]:
    """Display size (w, h) after scaling the short side to ``resize`` (aspect kept, even rounding)."""
    if resize is None:
        return width, height
    scale = resize / min(width, height)
    return max(resize, int(round(width * scale))), max(resize, int(round(height * scale)))


def _convert(frame, size_wh: tuple[int, int] | None, rotation: int, crop: int | None, reformatter=None) -> np.ndarray:
    """RGB uint8 (H, W, 3): scale (swscale, in decode orientation), rotate for display, centre crop.

    ``reformatter``: one ``av.video.reformatter.VideoReformatter`` kept for the whole video, so
    swscale's context (filters, its worker threads) is set up once, not per frame as
    ``frame.to_ndarray(width=...)`` does: about 15-20 % less CPU per frame (docs/video.md).
    """
    w = h = None
    if size_wh is not None:
        w, h = size_wh
        if rotation in (90, 270):
            w, h = h, w
    if reformatter is None:
        from av.video.reformatter import VideoReformatter

        reformatter = VideoReformatter()
    image = reformatter.reformat(frame, width=w, height=h, format="rgb24", interpolation="BILINEAR").to_ndarray()
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
    min_decoded_fraction: float = DEFAULT_MIN_DECODED_FRACTION,
    report: DecodeReport | None = None,
) -> Iterator[Frame]:
    """Stream a video's frames as RGB, at ``fps`` (None = every frame of the video) and size.

    With ``fps``, output frame k shows the decoded frame on screen at ``k / fps`` seconds (the last
    frame whose timestamp is <= that time), so variable-frame-rate videos come out at a steady
    rate; frames repeat or drop as needed. Output stops at the video's duration.
    ``resize`` scales the short side (aspect kept); ``crop`` takes a centre square.
    ``wanted(index)`` False skips the RGB conversion of that frame (its ``image`` is None): cheap
    skipping for sparse sampling.

    Damage: a frame that does not decode keeps its place in the timeline, shown as the last good
    frame (``Frame.lost``; with ``fps=None`` the output still has one frame per frame of the file).
    ``report`` (a ``DecodeReport``) receives the counts; one warning per damaged video names the
    file, the frames lost and where.

    Raises the errors of ``probe``; VideoTruncatedError when the file ends well before its announced
    duration, VideoDamagedError when too much inside it fails to decode: either when less than
    ``min_decoded_fraction`` of the announced duration decodes (up to two frame periods missing at
    the end are rounding of the announced duration, never counted).
    """
    if not 0.0 <= min_decoded_fraction <= 1.0:
        raise ConfigError(f"min_decoded_fraction must be within [0, 1], got {min_decoded_fraction!r}")
    from av.video.reformatter import VideoReformatter

    p = Path(check_video_path(path))
    info = info or probe(p)
    container = _open(p)
    try:
        stream = _video_stream(container, p)
        if threads:
            stream.thread_type = "AUTO"
        rotation = info.rotation
        size = output_size(info.width, info.height, resize) if resize is not None else None
        native_dt = 1.0 / info.fps if info.fps else 0.04
        announced = info.duration
        # output never runs far past the announced end, whatever a damaged timestamp claims
        horizon = announced * 1.1 + 1.0 if announced > 0 else math.inf
        report = report if report is not None else DecodeReport()
        report.path, report.duration, report.frame_period = str(p), announced, native_dt
        origin: float | None = None
        emitted = 0  # next output index
        last_out = -math.inf  # time of the last output frame (fps=None)
        prev = None  # (frame, time, lost-before-from) waiting for its successor's timestamp
        last_time = -math.inf
        decoded = 0
        cache: list = [None, None]  # the source frame last converted, and its image
        reformatter = VideoReformatter()  # one swscale context for the whole video

        def image_of(frame) -> np.ndarray:
            if cache[0] is not frame:
                cache[0], cache[1] = frame, _convert(frame, size, rotation, crop, reformatter)
            return cache[1]

        def frame_time(frame, i: int) -> float:
            t = frame.time
            if t is None:
                return i * native_dt
            return float(t) - (origin or 0.0)

        def emit_native(frame, t: float, lost: bool) -> Iterator[Frame]:
            nonlocal emitted, last_out
            t = max(t, last_out + 1e-6, 0.0)  # keep output times increasing
            img = image_of(frame) if wanted is None or wanted(emitted) else None
            yield Frame(emitted, t, img, lost)
            emitted += 1
            last_out = t

        def emit_until(frame, t_next: float, lost_before: float, lost_from: float) -> Iterator[Frame]:
            """Output times < t_next show ``frame``; those in [lost_before, t_frame) or >= lost_from
            are due to frames that did not decode."""
            nonlocal emitted
            t_frame = prev[1]
            t_next = min(t_next, horizon)
            # tolerance: a target time equal to the next frame's timestamp belongs to the next frame
            while emitted / fps < t_next - 1e-6:
                t = emitted / fps
                lost = (lost_before - 1e-6 <= t < t_frame - 1e-6) or t >= lost_from - 1e-6
                img = image_of(frame) if wanted is None or wanted(emitted) else None
                yield Frame(emitted, t, img, lost)
                emitted += 1

        def relative(raw: list[float]) -> list[float]:
            return [max(0.0, x - (origin or 0.0)) for x in raw]

        end_lost: list[float] = []
        carried: list[float] = []  # lost before a dropped picture: they wait for the next good frame
        for frame, lost_raw in _decode_packets(container, stream, report):
            if frame is _END:
                end_lost = relative(carried + lost_raw)
                report.lost_times.extend(end_lost)
                break
            if frame is None:
                carried.extend(lost_raw)
                continue
            lost_raw, carried = carried + lost_raw, []
            if origin is None:
                origin = _origin(stream, float(frame.time) if frame.time is not None else None)
            t = frame_time(frame, decoded)
            decoded += 1
            if t <= last_time:  # out-of-order or duplicate timestamp: keep the sequence monotonic
                t = last_time + 1e-6
            last_time = t
            lost = relative(lost_raw)
            report.lost_times.extend(lost)
            if fps is None:
                if prev is not None:
                    yield from emit_native(prev[0], prev[1], False)
                for x in lost:  # between the previous good frame and this one (or before the first)
                    yield from emit_native(prev[0] if prev is not None else frame, x, True)
                prev = (frame, t, math.inf)
            else:
                if prev is not None:
                    yield from emit_until(prev[0], t, prev[2], min(lost, default=math.inf))
                    prev = (frame, t, math.inf)
                else:  # the first good frame also stands in for frames before it that did not decode
                    prev = (frame, t, min(lost, default=math.inf))
        if prev is None:
            if report.packets and (report.decode_errors or report.lost_times):
                raise VideoDamagedError(f"{p}: none of the {report.packets} video packets decodes ({report.describe()})")
            raise VideoEmptyError(f"{p}: the video stream has no decodable frames")
        end = prev[1] + native_dt
        report.decoded_until = end
        last_packet = max(0.0, report.packets_until - (origin or 0.0))
        report.packets_until = last_packet + native_dt
        # frames the index lists but the file no longer holds (cut tail): lost too, so that with
        # fps=None the output still has one frame per frame of the video (bounded by the duration)
        listed = int(stream.frames or 0)
        report.frames_listed = max(0, listed)
        if announced > 0 and listed > report.packets:
            # bounded twice: by the duration, and by the packets read (a damaged index may list billions)
            missing = min(listed - report.packets, int(announced / native_dt) + 2, 10 * report.packets + 100)
            tail = [last_packet + (k + 1) * native_dt for k in range(missing)]
            tail = [t for t in tail if t < announced + native_dt / 2]
            report.missing_at_end = len(tail)
            report.lost_times.extend(tail)
            end_lost = sorted(end_lost + tail)
        _check_enough(p, report, min_decoded_fraction)
        if report.damaged:
            logger.warning("%s: damaged video, decoded as far as possible: %s", p, report.describe())
        # the last frame lasts until the announced duration (or one frame period)
        if fps is None:
            yield from emit_native(prev[0], prev[1], False)
            for x in end_lost:
                yield from emit_native(prev[0], x, True)
        else:
            yield from emit_until(prev[0], max(end, announced), prev[2], min(end_lost, default=math.inf))
    finally:
        container.close()
