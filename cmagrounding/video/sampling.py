"""Which frames form which clip, for both sampling schemes, assembled while frames stream past.

* ``fixed_rate`` (the released features): windows of ``clip_len`` frames every ``stride`` frames
  over the whole decoded sequence; windows must fit inside the video (a tail shorter than
  ``stride`` frames is not covered, as in the field's extraction scripts). A video shorter than one
  window gives one window padded with its last frame.
* ``uniform_clips`` (the paper, Sec. 4): ``num_clips`` windows whose centres sit at
  ``(i + 0.5) * n / num_clips``, clamped inside the video; short videos get overlapping windows,
  long ones sparse windows (frames between them are decoded but never converted to RGB).

Each clip carries its time span in seconds: from its first frame's time to its last frame's time
plus one frame period, clamped to the video's duration.
"""

from __future__ import annotations

import bisect
from collections import deque
from dataclasses import dataclass
from typing import Iterable, Iterator

import numpy as np

from cmagrounding.video.decode import Frame


def uniform_clip_starts(num_frames: int, num_clips: int, clip_len: int) -> np.ndarray:
    """(num_clips,) start frame of each clip, centres spread uniformly (the paper's scheme)."""
    centres = (np.arange(num_clips) + 0.5) * num_frames / num_clips
    starts = np.round(centres - clip_len / 2.0).astype(np.int64)
    return np.clip(starts, 0, max(num_frames - clip_len, 0))


def fixed_rate_clip_starts(num_frames: int, clip_len: int, stride: int) -> np.ndarray:
    """Start frame of each full window (at least one, padded, for a video shorter than a window)."""
    return np.arange(0, max(num_frames - clip_len, 0) + 1, stride, dtype=np.int64)


@dataclass
class Clip:
    """One assembled clip: ``frames`` (clip_len, H, W, 3) uint8 and its span in seconds."""

    index: int
    frames: np.ndarray
    start: float
    end: float


class ClipAssembler:
    """Turn a stream of ``Frame``s into ``Clip``s, holding only frames that a pending clip needs.

    ``starts`` fixes the clips in advance (uniform_clips); ``starts=None`` slides windows by
    ``stride`` for as long as frames come (fixed_rate). ``frame_period`` and ``duration`` set the
    end time of each clip.
    """

    def __init__(
        self,
        clip_len: int,
        *,
        starts: np.ndarray | None = None,
        stride: int | None = None,
        frame_period: float,
        duration: float | None = None,
    ) -> None:
        if starts is None and not stride:
            raise ValueError("ClipAssembler needs either fixed starts or a stride")
        self.clip_len = clip_len
        self.starts = None if starts is None else [int(s) for s in np.sort(np.asarray(starts))]
        self.stride = stride
        self.frame_period = frame_period
        self.duration = duration
        self._next_clip = 0  # index of the next clip to complete
        self._buffer: deque[Frame] = deque()  # consecutive frames from the oldest still needed
        self._last: Frame | None = None

    def _start(self, clip: int) -> int | None:
        if self.starts is None:
            return clip * int(self.stride)  # type: ignore[arg-type]
        return self.starts[clip] if clip < len(self.starts) else None

    def wanted(self, index: int) -> bool:
        """Whether frame ``index`` belongs to some clip (frames outside every clip skip RGB conversion)."""
        if self.starts is None:
            return True  # windows of a fixed stride <= clip_len cover every frame
        i = bisect.bisect_right(self.starts, index) - 1
        return i >= 0 and index < self.starts[i] + self.clip_len

    def _make(self, clip: int, start: int) -> Clip:
        frames = [f for f in self._buffer if start <= f.index < start + self.clip_len]
        while len(frames) < self.clip_len:  # past the end: repeat the last frame
            frames.append(frames[-1] if frames else self._last)  # type: ignore[arg-type]
        t0 = frames[0].time
        t1 = max(f.time for f in frames) + self.frame_period
        if self.duration:
            t1 = min(t1, self.duration)
        stack = np.stack([f.image for f in frames])  # (clip_len, H, W, 3)
        return Clip(clip, stack, float(t0), float(max(t1, t0)))

    def _trim(self) -> None:
        start = self._start(self._next_clip)
        keep_from = start if start is not None else float("inf")
        while self._buffer and self._buffer[0].index < keep_from:
            self._buffer.popleft()

    def push(self, frame: Frame) -> Iterator[Clip]:
        """Add the next frame (indices must increase by one); yield every clip it completes."""
        if frame.image is not None:
            self._buffer.append(frame)
            self._last = frame
        while True:
            start = self._start(self._next_clip)
            if start is None or frame.index < start + self.clip_len - 1:
                break
            yield self._make(self._next_clip, start)
            self._next_clip += 1
        self._trim()

    def finish(self) -> Iterator[Clip]:
        """Yield the clips left when the stream ends (padded with the last frame)."""
        if self._last is None:
            return
        if self.starts is None:
            if self._next_clip == 0:  # video shorter than one window
                yield self._make(0, 0)
                self._next_clip = 1
            return
        while self._next_clip < len(self.starts):
            start = self.starts[self._next_clip]
            if not any(f.index >= start for f in self._buffer):
                # the probed length overestimated the video: this clip begins after the last frame
                self._buffer.append(self._last)
            yield self._make(self._next_clip, min(start, self._last.index))
            self._next_clip += 1


def assemble(frames: Iterable[Frame], assembler: ClipAssembler) -> Iterator[Clip]:
    """Convenience: run ``frames`` through ``assembler``."""
    for frame in frames:
        yield from assembler.push(frame)
    yield from assembler.finish()
