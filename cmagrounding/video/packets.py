"""The damage-tolerant packet loop: decode a video stream packet by packet, going on past damage.

A packet the decoder rejects is skipped and a picture that never comes out is reported as lost
(its time), so callers keep the timeline right (docs/video.md, "Decoding").
"""

from __future__ import annotations

import heapq
from typing import Iterator

from cmagrounding.video.damage import DecodeReport

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
