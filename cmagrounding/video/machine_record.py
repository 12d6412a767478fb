"""Figures measured on this machine, kept in ``<cache>/machine/`` for later processes: the
precision probe's convolution rates (precision.py) and the I3D runtimes' compile seconds and
clips/s (runtime.py). Written atomically; read strictly: a file that is not exactly what this
module writes (any other key, a value of another type, a non-finite or non-positive number) is
ignored with a :class:`~cmagrounding.errors.MachineRecordWarning` naming it, and measured again.
"""

from __future__ import annotations

import functools
import hashlib
import logging
import math
import os
import platform
import stat
import warnings
from pathlib import Path

import torch

from cmagrounding.errors import MachineRecordWarning

logger = logging.getLogger(__name__)

MAX_BYTES = 1 << 16  # a record is a few hundred bytes


@functools.lru_cache(maxsize=1)
def _cpuinfo() -> tuple[str, frozenset[str]]:
    """(model name, feature flags) from /proc/cpuinfo; elsewhere (macOS) the platform's name, no flags."""
    model = flags = None
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if model is None and line.startswith("model name"):
                    model = line.split(":", 1)[1].strip()
                elif flags is None and line.startswith("flags"):
                    flags = frozenset(line.split(":", 1)[1].split())
    except OSError:
        pass
    return model or platform.processor() or platform.machine(), flags or frozenset()


def cpu_model() -> str:
    return _cpuinfo()[0]


def cpu_flags() -> frozenset[str]:
    return _cpuinfo()[1]


def path_for(name: str) -> Path:
    """``<cache>/machine/<name>_<key>.json``, the key naming this CPU (model, flags) and torch version."""
    from cmagrounding.video.weights import cache_dir

    key = hashlib.sha256(f"{cpu_model()}|{' '.join(sorted(cpu_flags()))}|{torch.__version__}".encode()).hexdigest()[:16]
    return cache_dir() / "machine" / f"{name}_{key}.json"


def _valid(value: object, kind: type) -> bool:
    if kind is float:  # a measured figure: positive and finite (an int is written as such too)
        return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value) and value > 0
    return isinstance(value, kind) and not isinstance(value, bool)


def _check(path: Path, fields: dict[str, type], optional: frozenset[str], same: dict) -> tuple[dict | None, str | None]:
    """(the record, None) or (None, what is wrong with the file at ``path``)."""
    from cmagrounding._strict_json import loads

    if not stat.S_ISREG(os.stat(path).st_mode):  # a FIFO would block the read
        return None, "not a regular file"
    with open(path, "rb") as f:
        raw = f.read(MAX_BYTES + 1)
    if len(raw) > MAX_BYTES:
        return None, f"over {MAX_BYTES} bytes"
    try:
        data = loads(raw, str(path), ValueError)
    except ValueError as exc:
        return None, str(exc)
    if not isinstance(data, dict) or set(data) != set(fields):
        return None, f"its keys are not {sorted(fields)}"
    bad = [k for k, kind in fields.items() if not (data[k] is None and k in optional or _valid(data[k], kind))]
    bad += [k for k, v in same.items() if k not in bad and data[k] != v]
    return (None, f"wrong value for {', '.join(bad)}") if bad else (data, None)


def read(path: Path, fields: dict[str, type], optional: frozenset[str] = frozenset(), same: dict | None = None) -> dict | None:
    """The record at ``path`` if it holds exactly ``fields`` (name -> float or str; those in
    ``optional`` may be null) with the values ``same`` gives for some of them, else None: silently
    when absent, with a warning naming the file when present but not such a record."""
    try:
        data, problem = _check(path, fields, optional, same or {})
    except FileNotFoundError:
        return None
    except OSError as exc:
        data, problem = None, f"unreadable ({exc.strerror})"
    if problem is not None:
        warnings.warn(f"ignoring the machine record {str(path)!r}: {problem}; measured again", MachineRecordWarning, stacklevel=3)
    return data


def write(path: Path, record: dict) -> None:
    """Write ``record`` to ``path`` atomically; a cache that cannot be written only loses the record."""
    from cmagrounding._io import write_json_atomic

    try:
        write_json_atomic(path, record, indent=1)
    except OSError as exc:
        logger.debug("could not record %s: %s", path, exc)
