"""Keeping freed activation memory inside the process while the extractor runs on the CPU.

glibc's malloc serves every block over 32 MB with a fresh ``mmap`` and unmaps it on free, so each
of I3D's large activations (the stem's output alone is 205 MB at batch 8 in fp32) is page-faulted
and zeroed by the kernel anew on every layer of every batch: 1.7 of 5.4 CPU-seconds per batch of 8
in the fused fp32 network were system time on a 2-core AVX512-BF16 Xeon (docs/performance.md).
Raising the mmap and trim thresholds lets freed blocks be reused instead (system time 0.05 s).
The cost: the process keeps its peak heap (about 1-2 GB at batch 8) until it exits.
Process-wide and glibc-only; ``CMAGROUNDING_KEEP_HEAP=0`` turns it off.
"""

from __future__ import annotations

import ctypes
import functools
import logging
import os
import sys

logger = logging.getLogger(__name__)

_M_TRIM_THRESHOLD = -1  # glibc's mallopt parameters (malloc.h)
_M_MMAP_THRESHOLD = -3
_MMAP_THRESHOLD = 1 << 30  # blocks over 1 GB (batch 32 and more) still get their own mapping
_TRIM_THRESHOLD = (1 << 31) - 1  # an int: never give the heap's top back while running


@functools.lru_cache(maxsize=1)
def keep_freed_memory() -> bool:
    """Tell glibc's malloc to keep freed large blocks for reuse (once per process); True if done."""
    if os.environ.get("CMAGROUNDING_KEEP_HEAP", "1") == "0" or not sys.platform.startswith("linux"):
        return False
    try:
        libc = ctypes.CDLL(None)
        libc.gnu_get_libc_version  # glibc only (musl has no mallopt)
        mallopt = libc.mallopt
    except (OSError, AttributeError):
        return False
    done = bool(mallopt(_M_MMAP_THRESHOLD, _MMAP_THRESHOLD)) and bool(mallopt(_M_TRIM_THRESHOLD, _TRIM_THRESHOLD))
    logger.debug("malloc keeps freed blocks: %s", done)
    return done
