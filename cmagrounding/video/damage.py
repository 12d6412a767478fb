"""What decoding a damaged video lost, and when that is too much: ``DecodeReport`` and the refusal checks.

A video is refused only when less than ``min_decoded_fraction`` of its announced duration decodes
(docs/video.md, "Decoding"): ``VideoTruncatedError`` when the shortfall is mostly a missing tail,
``VideoDamagedError`` when it is damage inside.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path

from cmagrounding.errors import VideoDamagedError, VideoTruncatedError

# A video of which less than this fraction of the announced duration decodes (and more than 2 frames
# short) is refused: truncated or too damaged, not rounding. Callers may pass their own.
DEFAULT_MIN_DECODED_FRACTION = 0.9
TRUNCATION_TOLERANCE = DEFAULT_MIN_DECODED_FRACTION  # the old name

# How many lost-frame ranges a warning or an error message spells out before "and N more".
_RANGES_SHOWN = 6


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
