"""A packed feature store: every video's features in one memory-mapped file, with a JSON index.

Reading one ``.npy`` file per sample costs an open, a header parse and a close each time; a packed
store maps one file once and a sample is a slice of it (benchmarks/bench_training.py measures the
difference). Layout, in a folder (it may be the folder of ``.npy`` files it was built from)::

    packed-features.json                the index (below)
    packed-features-<sha12>.bin         the rows of every video, back to back: (rows, D), C order,
                                        little-endian float32 (or float16), no header

The index::

    {"format": "cmagrounding-packed-features", "version": 1,
     "data": "packed-features-<sha12>.bin", "dtype": "<f4", "dim": D, "rows": R,
     "data_bytes": R * D * itemsize, "data_sha256": "...",
     "videos": {"<id>": {"offset": first row, "length": n rows}, ...},
     "source": {"path": ..., "kind": "npy-folder" | "hdf5" | "store", "key": ...},
     "extraction": the source's extraction settings (an extract-features index.json's "settings") or null,
     "sources": {"<id>": {"duration": ..., "source": ...}} (from an extract-features index) or {}}

Building (:func:`cmagrounding.training.packing.pack_features`, ``cmagrounding pack-features``) reads every video through the
source's store (the same checks as training: (n >= 1, D), finite), writes the data file under a
temporary name and renames it, then replaces the index: the index is the commit point, so an
interrupted build leaves the previous store whole. A truncated or mismatched data file is refused
when the store opens, naming the file; :meth:`PackedStore.verify` also checks the checksum.
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path
from typing import Any

import numpy as np

from cmagrounding.errors import DatasetError

__all__ = ["INDEX_NAME", "FORMAT", "VERSION", "DTYPES", "PackedStore", "find_packed_index"]

INDEX_NAME = "packed-features.json"
FORMAT = "cmagrounding-packed-features"
VERSION = 1
DTYPES = {"float32": "<f4", "float16": "<f2"}


def find_packed_index(path: str | os.PathLike[str]) -> Path | None:
    """The index of the packed store at ``path`` (the index file, or a folder holding one), or None."""
    p = Path(path)
    if p.is_dir():
        p = p / INDEX_NAME
    elif p.suffix.lower() != ".json":
        return None
    return p if p.is_file() else None


class PackedStore:
    """Features of many videos in one memory-mapped file (see the module docstring for the layout).

    ``get`` returns a read-only (n, D) float32 view of the mapped file (float16 stores return a
    float32 copy). The file is mapped lazily, once per process, and never pickled.
    """

    def __init__(self, path: str | os.PathLike[str]):
        index_path = find_packed_index(path)
        if index_path is None:
            raise DatasetError(f"{path}: no packed feature store ({INDEX_NAME}) there")
        self.index_path = index_path
        from cmagrounding._strict_json import read

        index = read(index_path, DatasetError, "packed-store index")  # duplicate keys, huge numbers refused
        if not isinstance(index, dict) or index.get("format") != FORMAT:
            raise DatasetError(f"{index_path}: not a packed-store index (format {FORMAT!r} expected)")
        if index.get("version") != VERSION:
            raise DatasetError(f"{index_path}: packed-store version {index.get('version')!r}; this library reads {VERSION}")
        try:
            self.dtype = np.dtype(index["dtype"])
            self.dim, self.rows, self.data_bytes = int(index["dim"]), int(index["rows"]), int(index["data_bytes"])
            self.offsets = {str(v): (int(e["offset"]), int(e["length"])) for v, e in index["videos"].items()}
            self.data_path = index_path.parent / str(index["data"])
        except (KeyError, TypeError, ValueError) as e:
            raise DatasetError(f"{index_path}: malformed packed-store index ({type(e).__name__}: {e})") from None
        if Path(str(index["data"])).name != str(index["data"]):  # "../x", "/etc/x": not this store's file
            raise DatasetError(f"{index_path}: its data file {str(index['data'])!r} is not a file name in its folder")
        self.index = index
        self._check_layout()
        self._array: np.ndarray | None = None

    def _check_layout(self) -> None:
        """The index agrees with itself and with the data file's size (truncation, another file)."""
        where = self.index_path
        if self.rows * self.dim * self.dtype.itemsize != self.data_bytes:
            raise DatasetError(f"{where}: mismatched index: {self.rows} rows x {self.dim} x {self.dtype.itemsize} bytes "
                               f"!= data_bytes {self.data_bytes}")
        end = 0
        for video, (offset, length) in self.offsets.items():
            if offset < 0 or length < 1 or offset + length > self.rows:
                raise DatasetError(f"{where}: mismatched index: video {video!r} rows {offset}..{offset + length} "
                                   f"outside the {self.rows} rows of the data file")
            end = max(end, offset + length)
        if not self.data_path.is_file():
            raise DatasetError(f"{self.data_path}: the data file that {where.name} names is missing")
        size = self.data_path.stat().st_size
        if size < self.data_bytes:
            raise DatasetError(f"{self.data_path}: truncated packed feature data: {size} bytes, "
                               f"its index {where.name} expects {self.data_bytes}")
        if size > self.data_bytes:
            raise DatasetError(f"{self.data_path}: {size} bytes, but its index {where.name} expects {self.data_bytes}: "
                               "mismatched index (rebuild with cmagrounding pack-features)")

    def _data(self) -> np.ndarray:
        # A read-only file mapping stays valid in a forked child (DataLoader workers); a pickled copy
        # (spawn) arrives without one and maps the file again here.
        if self._array is None:
            self._array = np.memmap(self.data_path, dtype=self.dtype, mode="r", shape=(self.rows, self.dim))
        return self._array

    def get(self, video: str) -> np.ndarray:
        try:
            offset, length = self.offsets[video]
        except (KeyError, TypeError):
            raise DatasetError(f"{self.index_path}: no entry for video {video!r} ({len(self.offsets)} videos packed)") from None
        rows = np.asarray(self._data()[offset : offset + length])  # a view of the mapped file: no copy
        return rows if rows.dtype == np.float32 else rows.astype(np.float32)

    def __contains__(self, video: object) -> bool:
        return isinstance(video, str) and video in self.offsets

    def __len__(self) -> int:
        return len(self.offsets)

    def videos(self) -> list[str]:
        return sorted(self.offsets)

    @property
    def extraction(self) -> dict[str, Any] | None:
        """The extraction settings of the features (as the source recorded them), or None."""
        return self.index.get("extraction")

    def verify(self) -> None:
        """Check the data file's sha256 against the index (reads the whole file)."""
        h = hashlib.sha256()
        with open(self.data_path, "rb") as f:
            while block := f.read(1 << 22):
                h.update(block)
        if h.hexdigest() != self.index.get("data_sha256"):
            raise DatasetError(f"{self.data_path}: checksum {h.hexdigest()[:12]}... does not match its index "
                               f"{self.index_path.name} ({str(self.index.get('data_sha256'))[:12]}...)")

    def __getstate__(self) -> dict[str, Any]:  # a mapping is not pickled (it would copy the file)
        state = dict(self.__dict__)
        state["_array"] = None
        return state

    def __repr__(self) -> str:
        return f"PackedStore({str(self.index_path.parent)!r}, {len(self.offsets)} videos, {self.rows} x {self.dim} {self.dtype.name})"
