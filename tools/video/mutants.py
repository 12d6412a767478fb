"""Damage video files on purpose, and decode each damaged copy in a child process under a time limit.

Used by the damage tests and ``benchmarks/fuzz_decode.py`` to show that decoding never crashes,
hangs or raises anything but this library's errors on broken input (docs/video.md, "Decoding").

Mutant kinds (positions inside the media data, the mp4 ``mdat`` payload, so that it is the
pictures that break, not the index):
  * ``"flip"``: a few bytes with random bits flipped;
  * ``"zeros"``: a run of zero bytes written over the data (same length);
  * ``"insert"``: random bytes inserted (everything after them shifts);
  * ``"truncate"``: the file cut at a point inside the media data;
  * ``"header"``: a few bytes flipped outside the media data (the index, ``moov``, and the file
    header): damaged timestamps, sample tables, codec parameters, metadata.

The child (``python -m tools.video.mutants FILE...``) prints one JSON line per file; the
parent re-runs a file alone when its batch died, to tell a crash (killed by a signal) or a hang
(time limit) from the files around it.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import traceback
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import numpy as np

KINDS = ("flip", "zeros", "insert", "truncate", "header")
SAME_LENGTH = ("flip", "zeros")


def mp4_boxes(data: bytes) -> list[tuple[bytes, int, int]]:
    """Top-level ISO-BMFF boxes as (kind, offset, size); stops at the first box that does not fit."""
    boxes, pos = [], 0
    while pos + 8 <= len(data):
        size, kind = int.from_bytes(data[pos : pos + 4], "big"), data[pos + 4 : pos + 8]
        header = 8
        if size == 1 and pos + 16 <= len(data):
            size, header = int.from_bytes(data[pos + 8 : pos + 16], "big"), 16
        elif size == 0:
            size = len(data) - pos
        if size < header or pos + size > len(data):
            break
        boxes.append((kind, pos, size))
        pos += size
    return boxes


def media_span(data: bytes) -> tuple[int, int]:
    """(start, end) byte offsets of the media data: the largest ``mdat`` payload of an mp4, else
    everything after the first 1 KiB (a guess at where other containers keep their headers)."""
    mdats = [(off, size) for kind, off, size in mp4_boxes(data) if kind == b"mdat"]
    if mdats:
        off, size = max(mdats, key=lambda b: b[1])
        return off + 8, off + size
    start = min(1024, len(data) // 4)
    return start, len(data)


@dataclass(frozen=True)
class Mutation:
    """What ``mutate`` did: ``kind``, byte ``offset``, ``length`` of the damage, and the fraction
    of the media data it touched."""

    kind: str
    offset: int
    length: int
    media_fraction: float


def mutate(data: bytes, kind: str, rng: np.random.Generator, max_fraction: float = 0.1) -> tuple[bytes, Mutation]:
    """A damaged copy of ``data``: damage of ``kind`` touching at most ``max_fraction`` of the media data."""
    start, end = media_span(data)
    media = max(1, end - start)
    if kind == "flip":
        count = int(rng.integers(1, 17))
        positions = rng.integers(start, end, count)
        out = bytearray(data)
        for pos in positions:
            out[pos] ^= int(rng.integers(1, 256))
        return bytes(out), Mutation(kind, int(positions.min()), count, count / media)
    if kind == "zeros":
        length = int(rng.integers(16, max(17, int(max_fraction * media))))
        offset = int(rng.integers(start, max(start + 1, end - length)))
        out = bytearray(data)
        out[offset : offset + length] = bytes(min(length, len(data) - offset))
        return bytes(out), Mutation(kind, offset, length, length / media)
    if kind == "insert":
        length = int(rng.integers(1, max(2, min(4096, int(max_fraction * media)))))
        offset = int(rng.integers(start, end))
        extra = rng.integers(0, 256, length, dtype=np.uint8).tobytes()
        return data[:offset] + extra + data[offset:], Mutation(kind, offset, length, length / media)
    if kind == "header":
        outside = start + (len(data) - end)  # bytes before and after the media data
        if outside <= 0:
            return data, Mutation(kind, 0, 0, 0.0)
        count = int(rng.integers(1, 5))
        picks = rng.integers(0, outside, count)
        positions = np.where(picks < start, picks, picks - start + end)
        out = bytearray(data)
        for pos in positions:
            out[pos] ^= int(rng.integers(1, 256))
        return bytes(out), Mutation(kind, int(positions.min()), count, 0.0)
    if kind == "truncate":
        offset = int(rng.integers(start, end))
        return data[:offset], Mutation(kind, offset, len(data) - offset, (end - offset) / media)
    raise ValueError(f"unknown mutant kind {kind!r}; known: {KINDS}")


def decode_outcome(path: str | os.PathLike) -> dict:
    """Probe and decode every frame (RGB at native size) of one file; what happened, as a dict.

    ``outcome``: "decoded" (with ``frames`` output, ``lost``, ``monotonic`` times and whether the
    count equals the probed frame count), "refused" (a ``CMAGroundingError``: its class and message)
    or "foreign" (any other exception, with its traceback).
    """
    from cmagrounding.errors import CMAGroundingError
    from cmagrounding.video.decode import DecodeReport, iter_frames, probe

    try:
        info = probe(path)
        report = DecodeReport()
        times, lost = [], 0
        for frame in iter_frames(path, fps=None, info=info, report=report):
            times.append(frame.time)
            lost += frame.lost
        return {
            "outcome": "decoded",
            "frames": len(times),
            "expected": info.num_frames,
            "lost": lost,
            "reported_lost": report.frames_lost,
            "concealed": report.frames_concealed,
            "monotonic": all(b > a for a, b in zip(times, times[1:])),
            "warned": report.damaged,
        }
    except CMAGroundingError as exc:
        return {"outcome": "refused", "error": type(exc).__name__, "message": str(exc)[:300]}
    except Exception as exc:  # noqa: BLE001 - the point is to catch what should not happen
        return {"outcome": "foreign", "error": type(exc).__name__, "message": "".join(traceback.format_exception(exc))[-2000:]}


def _child(paths: Sequence[str]) -> None:
    import logging

    logging.disable(logging.WARNING)  # a warning per damaged mutant is expected; keep the pipe quiet
    for path in paths:
        result = decode_outcome(path)
        result["path"] = path
        print(json.dumps(result), flush=True)


def run_mutants(paths: Sequence[str | os.PathLike], timeout_per_file: float = 20.0, batch: int = 16) -> dict[str, dict]:
    """Decode each file in a child process; ``{path: outcome dict}``, where outcome is also
    "crashed" (the child died of a signal, ``signal`` set) or "hung" (past ``timeout_per_file``)."""
    results: dict[str, dict] = {}
    todo = [str(p) for p in paths]
    root = str(Path(__file__).resolve().parents[2])  # the repository root: the child imports tools.video.mutants
    env = {**os.environ, "OMP_NUM_THREADS": "1",
           "PYTHONPATH": os.pathsep.join([root, *filter(None, [os.environ.get("PYTHONPATH")])])}

    def run(chunk: list[str], timeout: float) -> tuple[int | None, str]:
        cmd = [sys.executable, "-m", "tools.video.mutants", *chunk]
        try:
            proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, env=env)
            return proc.returncode, proc.stdout
        except subprocess.TimeoutExpired as exc:
            out = exc.stdout.decode() if isinstance(exc.stdout, bytes) else exc.stdout or ""
            return None, out

    while todo:
        chunk = todo[:batch]
        rc, out = run(chunk, timeout_per_file * len(chunk) + 10.0)
        for line in out.splitlines():
            try:
                row = json.loads(line)
            except ValueError:
                continue
            if isinstance(row, dict) and row.get("path") in chunk:
                results[row.pop("path")] = row
        done = [p for p in chunk if p in results]
        todo = todo[len(chunk) :]
        missing = [p for p in chunk if p not in done]
        if not missing:
            continue
        # the batch died or stalled: the first file without a result is the culprit; judge it alone
        culprit, rest = missing[0], missing[1:]
        rc1, out1 = run([culprit], timeout_per_file + 10.0)
        row = next((json.loads(x) for x in out1.splitlines() if x.startswith("{")), None)
        if rc1 is None:
            results[culprit] = {"outcome": "hung", "timeout": timeout_per_file}
        elif rc1 < 0:
            results[culprit] = {"outcome": "crashed", "signal": -rc1}
        elif row is not None:
            row.pop("path", None)
            results[culprit] = row
        else:
            results[culprit] = {"outcome": "crashed", "returncode": rc1}
        todo = rest + todo
    return results


def write_mutants(source: str | os.PathLike, folder: str | os.PathLike, per_kind: int, seed: int = 0,
                  kinds: Sequence[str] = KINDS, max_fraction: float = 0.1) -> list[tuple[Path, Mutation]]:  # fmt: skip
    """Write ``per_kind`` seeded mutants of ``source`` for each kind into ``folder``."""
    data = Path(source).read_bytes()
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    out = []
    for k, kind in enumerate(kinds):
        for i in range(per_kind):
            rng = np.random.default_rng([seed, k, i])
            damaged, what = mutate(data, kind, rng, max_fraction)
            path = folder / f"{Path(source).stem}.{kind}{i:04d}{Path(source).suffix}"
            path.write_bytes(damaged)
            out.append((path, what))
    return out


if __name__ == "__main__":
    _child(sys.argv[1:])
