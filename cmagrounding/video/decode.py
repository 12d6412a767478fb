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
"""

from __future__ import annotations

import logging
import heapq
import math
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterator

import numpy as np

from cmagrounding.errors import (
    ConfigError,
    VideoDamagedError,
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


# A video of which less than this fraction of the announced duration decodes (and more than 2 frames
# short) is refused: truncated or too damaged, not rounding. Callers may pass their own.
DEFAULT_MIN_DECODED_FRACTION = 0.9
TRUNCATION_TOLERANCE = DEFAULT_MIN_DECODED_FRACTION  # the old name

# How many lost-frame ranges a warning or an error message spells out before "and N more".
_RANGES_SHOWN = 6


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
    uint8 RGB, or None when the caller's ``wanted`` filter skipped the conversion. ``lost``: the
    video's own frame for this time did not decode, so ``image`` shows the last good frame."""

    index: int
    time: float
    image: np.ndarray | None
    lost: bool = False  # the frame due at this time did not decode: this repeats the last good one


def _seconds(t: float) -> str:
    return f"{t:.2f}"


@dataclass
class DecodeReport:
    """What decoding one video lost; ``iter_frames(report=...)`` fills it as frames stream past.

    frames_lost:      frames that never came out of the decoder (their packet was rejected or their
                      data was too broken to place); each output slot shows the last good frame.
    lost_times:       those frames' timestamps, seconds from the video's start, increasing.
    frames_concealed: frames the decoder did output but flagged as damaged: it filled the broken
                      parts from neighbouring pictures (FFmpeg's error concealment, as in players).
    decode_errors:    packets the decoder rejected with an error.
    packets_discarded: packets the container marks to be dropped (outside its edit list); a few
                      at the start are normal (encoder delay), many mean a damaged index.
    frames_unplaced:  pictures the decoder output at a time no packet was due (damaged timing, a
                      duplicate); dropped, so that the timeline keeps one frame per packet.
    stopped_early:    why reading the file stopped before its end (a read error), else None.
    missing_at_end:   frames the index lists that were never read (a cut file); they are among
                      ``lost_times``, one frame period apart after the last packet.
    decoded_until:    end of the last good frame, seconds.
    packets_until:    end of the last packet read from the file, seconds (short of the announced
                      duration when the file is cut).
    """

    path: str = ""
    duration: float = 0.0  # announced (probed)
    frame_period: float = 0.04
    packets: int = 0
    frames_decoded: int = 0
    frames_concealed: int = 0
    decode_errors: int = 0
    frames_unplaced: int = 0
    packets_discarded: int = 0
    lost_times: list[float] = field(default_factory=list)
    stopped_early: str | None = None
    missing_at_end: int = 0
    frames_listed: int = 0  # frames the container's index lists (0: it does not say)
    decoded_until: float = 0.0
    packets_until: float = 0.0

    @property
    def frames_lost(self) -> int:
        return len(self.lost_times)

    @property
    def damaged(self) -> bool:
        """Whether anything was lost, concealed or rejected (a clean video reports False)."""
        if self.lost_times or self.frames_concealed or self.decode_errors or self.frames_unplaced or self.stopped_early:
            return True
        if self._many_discarded() or self.frames_listed > self.packets + 2:
            return True
        return self._ends_early()  # e.g. a cut file without a frame count in its index

    def _many_discarded(self) -> bool:
        return self.packets_discarded > max(4, 0.02 * self.packets)

    def _ends_early(self) -> bool:
        return self.duration > 0 and 0 < self.decoded_until < self.duration - 2 * self.frame_period

    def lost_ranges(self) -> list[tuple[float, float]]:
        """Lost frames merged into (start, end) seconds; frames at most 1.5 periods apart join."""
        ranges: list[list[float]] = []
        for t in sorted(self.lost_times):
            if ranges and t - ranges[-1][1] <= 1.5 * self.frame_period + 1e-9:
                ranges[-1][1] = t
            else:
                ranges.append([t, t])
        cap = self.duration if self.duration > 0 else math.inf
        return [(a, max(a, min(b + self.frame_period, cap))) for a, b in ranges]

    def lost_seconds(self) -> float:
        """Seconds of picture lost inside the decoded part (before ``decoded_until``)."""
        return self.frame_period * sum(1 for t in self.lost_times if t < self.decoded_until)

    def decoded_seconds(self) -> float:
        """Seconds of the announced duration that show the video's own frames."""
        end = min(self.decoded_until, self.duration) if self.duration > 0 else self.decoded_until
        return max(0.0, end - self.lost_seconds())

    def decoded_fraction(self) -> float:
        """``decoded_seconds`` over the announced duration (1.0 when no duration is announced), and
        no more than the share of the index's frames that were read and decoded (a damaged index
        can make the seconds meaningless)."""
        fraction = 1.0 if self.duration <= 0 else min(1.0, self.decoded_seconds() / self.duration)
        if self.frames_listed > self.packets + 2:
            inside = self.frames_lost - self.missing_at_end
            fraction = min(fraction, max(0, self.packets - inside) / self.frames_listed)
        return fraction

    def where(self) -> str:
        """The lost ranges as text, e.g. ``"9.07-9.12 s, 12.00-12.48 s"``."""
        ranges = self.lost_ranges()
        text = ", ".join(f"{_seconds(a)}-{_seconds(b)} s" for a, b in ranges[:_RANGES_SHOWN])
        if len(ranges) > _RANGES_SHOWN:
            text += f" and {len(ranges) - _RANGES_SHOWN} more ranges"
        return text

    def describe(self) -> str:
        """One sentence: how much was lost, where, and how much decoded."""
        parts = []
        if self.lost_times:
            parts.append(f"{self.frames_lost} frame{'s' if self.frames_lost != 1 else ''} lost at {self.where()} "
                         "(shown as the previous good frame)")  # fmt: skip
        if self.frames_concealed:
            parts.append(f"{self.frames_concealed} decoded with concealed damage")
        if self.decode_errors:
            parts.append(f"{self.decode_errors} packet{'s' if self.decode_errors != 1 else ''} rejected by the decoder")
        if self._many_discarded():
            parts.append(f"{self.packets_discarded} of {self.packets} packets lie outside the file's edit list (a damaged index?)")
        if self.frames_unplaced:
            parts.append(f"{self.frames_unplaced} decoded at a time no frame was due (dropped)")
        if self.stopped_early:
            parts.append(f"reading stopped at {_seconds(self.packets_until)} s ({self.stopped_early})")
        if self.frames_listed > self.packets + 2 and self.missing_at_end < self.frames_listed - self.packets:
            parts.append(f"the index lists {self.frames_listed} frames, the file holds {self.packets}")
        if self.missing_at_end:
            parts.append(f"the file ends after {_seconds(self.packets_until)} s: its last {self.missing_at_end} frames are missing")
        elif self._ends_early() and not any(t >= self.decoded_until for t in self.lost_times):
            parts.append(f"frames end at {_seconds(self.decoded_until)} s")
        parts.append(f"{self.decoded_fraction():.1%} of the announced {_seconds(self.duration)} s decoded")
        return "; ".join(parts)

    def to_dict(self) -> dict:
        """JSON-ready summary (what feature files and extraction sidecars record)."""
        return {
            "frames_lost": self.frames_lost,
            "lost_ranges": [[round(a, 3), round(b, 3)] for a, b in self.lost_ranges()],
            "frames_concealed": self.frames_concealed,
            "decode_errors": self.decode_errors,
            "frames_unplaced": self.frames_unplaced,
            "packets_discarded": self.packets_discarded,
            "decoded_fraction": round(self.decoded_fraction(), 4),
            "stopped_early": self.stopped_early,
            "missing_at_end": self.missing_at_end,
        }




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


_END = object()


def _decode_packets(container, stream, report: DecodeReport) -> Iterator[tuple[object | None, list[float]]]:
    """Decode ``stream`` packet by packet, going on past damage.

    Yields ``(frame, lost)`` per decoded frame (``frame`` None for a picture with no packet due at
    its time), then ``(_END, lost)`` once at the end. ``lost``:
    raw timestamps (seconds, not yet relative to the origin) of packets due before that frame (at
    the end: all left) whose picture never came out. Fills ``report``'s packet and error counts.
    A packet the decoder rejects is skipped (FFmpeg keeps its reference pictures and conceals what
    depended on it); a read error ends the stream as the ffmpeg command line does.
    """
    import av

    tb = float(stream.time_base) if stream.time_base else None
    half_tick = 0.5 * tb if tb else 1e-9
    pending: list[float] = []  # min-heap of packet times still owed a picture

    timed = False  # whether packets carry timestamps to match frames by

    def settle(frame) -> tuple[list[float], bool]:
        """The packets due before ``frame`` that gave no picture, and whether ``frame`` had a packet."""
        lost: list[float] = []
        if frame.pts is None or tb is None or not timed:
            if pending:  # no timestamp to match by: assume decode order
                heapq.heappop(pending)
            return lost, True
        t = frame.pts * tb
        while pending and pending[0] < t - half_tick:
            lost.append(heapq.heappop(pending))
        if pending and pending[0] <= t + half_tick:  # one packet per picture: a duplicate waits for its own
            heapq.heappop(pending)
            return lost, True
        return lost, False

    def placed(frames) -> Iterator[tuple[object, list[float]]]:
        for frame in frames:
            report.frames_decoded += 1
            report.frames_concealed += bool(frame.is_corrupt)
            lost, matched = settle(frame)
            if not matched:
                report.frames_unplaced += 1
                # its packets before it are still lost; the picture itself has no slot
                frame = None
            yield frame, lost

    def decoded(packet) -> list:
        try:
            return packet.decode() if packet is not None else stream.codec_context.decode(None)
        except av.error.FFmpegError:
            report.decode_errors += 1
            return []

    demux = container.demux(stream)
    flushed = False
    while True:
        try:
            packet = next(demux)
        except StopIteration:
            break
        except av.error.FFmpegError as exc:  # a read error inside the file: what was read still counts
            report.stopped_early = exc.strerror or str(exc)
            break
        if packet.size == 0:
            flushed = True  # demux's closing empty packet drains the decoder
        else:
            report.packets += 1
            if packet.is_discard:  # outside the edit list: its picture is dropped on purpose
                report.packets_discarded += 1
            elif packet.pts is not None and tb is not None:
                timed = True
                heapq.heappush(pending, packet.pts * tb)
                report.packets_until = max(report.packets_until, packet.pts * tb)
        yield from placed(decoded(packet))
    if not flushed:  # the demuxer stopped on an error before its flush packet
        yield from placed(decoded(None))
    yield _END, sorted(pending)


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


def _check_enough(p: Path, report: DecodeReport, min_fraction: float) -> None:
    """Refuse a video of which too little decodes: VideoTruncatedError when most of the shortfall
    is a missing tail, VideoDamagedError when it is damage inside."""
    _check_seconds(p, report, min_fraction)
    if report.frames_listed > report.packets + 2 and report.decoded_fraction() < min_fraction:
        raise VideoTruncatedError(  # by frame count: the index and the file disagree (damaged timing)
            f"{p}: truncated: the index lists {report.frames_listed} frames but the file holds {report.packets} "
            f"({report.decoded_fraction():.1%} decoded, min_decoded_fraction={min_fraction:g})"
        )


def _check_seconds(p: Path, report: DecodeReport, min_fraction: float) -> None:
    announced = report.duration
    if announced <= 0:
        return
    short = announced - report.decoded_seconds()
    # up to two frame periods missing at the end are rounding of the announced duration, not loss
    forgiven = min(max(0.0, announced - report.decoded_until), 2 * report.frame_period)
    if short - forgiven <= 1e-9 or (announced - short + forgiven) / announced >= min_fraction - 1e-12:
        return
    tail = announced - min(report.packets_until, announced)
    setting = f"min_decoded_fraction={min_fraction:g}"
    if tail > short / 2:
        why = f"; reading stopped: {report.stopped_early}" if report.stopped_early else ""
        lost = f"; {report.frames_lost} frames inside lost" if report.lost_seconds() > 0 else ""
        raise VideoTruncatedError(
            f"{p}: truncated: frames decode only up to {min(report.decoded_until, announced):.2f} s of the announced "
            f"{announced:.2f} s ({report.decoded_fraction():.1%} decoded, {setting}){lost}{why}"
        )
    raise VideoDamagedError(f"{p}: too damaged to use: {report.describe()}; below {setting}")


def num_output_frames(info: VideoInfo, fps: float | None) -> int:
    """How many frames ``iter_frames`` is expected to yield (from the probed duration)."""
    if fps is None:
        return max(1, info.num_frames)
    return max(1, int(math.ceil(info.duration * fps - 1e-6)))

