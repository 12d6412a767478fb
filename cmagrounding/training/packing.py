"""Building a packed feature store (:mod:`cmagrounding.training.packed` has the layout and the reader)
from a folder of ``.npy`` files, an HDF5 file or any store that lists its videos.
"""

from __future__ import annotations

import hashlib
import logging
import os
from pathlib import Path
from typing import Any, Iterable

import numpy as np

from cmagrounding._io import atomic_path, write_json_atomic
from cmagrounding.errors import DatasetError
from cmagrounding.training.packed import DTYPES, FORMAT, INDEX_NAME, VERSION, PackedStore
from cmagrounding.training.stores import HDF5Store, NpyFolderStore, NpzFolderStore, store_videos

_logger = logging.getLogger(__name__)

__all__ = ["pack_features", "recorded_extraction"]


def _extraction_of(folder: Path) -> tuple[dict[str, Any] | None, dict[str, Any]]:
    """Extraction settings and per-video facts recorded beside a folder of features, if any."""
    index = folder / "index.json"  # cmagrounding extract-features
    if index.is_file():
        from cmagrounding._strict_json import read

        data = read(index, DatasetError, "extract-features index")
        try:
            videos = {v: {k: e[k] for k in ("duration", "source") if k in e} for v, e in data.get("videos", {}).items()}
            return data.get("settings"), videos
        except (AttributeError, TypeError) as e:
            raise DatasetError(f"{index}: not a readable extract-features index ({e})") from None
    return None, {}


def recorded_extraction(store: Any) -> dict[str, Any] | None:
    """The extraction settings recorded with ``store``'s features, wherever ``extract-features``
    left them: a packed store's index, or the ``index.json`` of a folder of ``.npy`` files (so that
    skipping ``pack-features`` loses nothing); None for features made elsewhere. Wrappers with a
    ``store`` attribute (standardized, cropped) are looked through."""
    while store is not None:
        if isinstance(store, NpyFolderStore):
            return _extraction_of(store.folder)[0]
        extraction = getattr(store, "extraction", None)
        if extraction:
            return extraction
        store = getattr(store, "store", None)
    return None


def _open_source(source: Any, key: str | None) -> tuple[Any, dict[str, Any], dict[str, Any] | None, dict[str, Any]]:
    if not isinstance(source, (str, os.PathLike)):
        return source, {"path": None, "kind": "store", "key": None, "repr": repr(source)}, None, {}
    path = Path(source)
    if path.is_dir() and not any(path.glob("*.npy")) and any(path.glob("*.npz")):  # HERO releases; key: the array
        return NpzFolderStore(path, key), {"path": str(path.resolve()), "kind": "npz-folder", "key": key or "features"}, None, {}
    if path.is_dir():
        extraction, facts = _extraction_of(path)
        return NpyFolderStore(path), {"path": str(path.resolve()), "kind": "npy-folder", "key": None}, extraction, facts
    if path.suffix.lower() in (".h5", ".hdf5", ".hdf"):
        return HDF5Store(path, key=key), {"path": str(path.resolve()), "kind": "hdf5", "key": key}, None, {}
    if not path.exists():
        raise DatasetError(f"{path}: feature folder or HDF5 file not found")
    raise DatasetError(f"{path}: expected a folder of .npy files or an .h5/.hdf5 file to pack")


def pack_features(source: Any, out: str | os.PathLike[str], *, dtype: str = "float32", key: str | None = None,
                  videos: Iterable[str] | None = None) -> PackedStore:
    """Pack the features of ``source`` into a packed store in the folder ``out``; returns it opened.

    ``source``: a folder of ``.npy`` files (its extract-features ``index.json`` is recorded as
    the extraction settings), an HDF5 file (``key``: the
    dataset inside each video's group), or any store with ``videos()``. ``videos`` limits the ids
    (default: all). ``dtype`` ``"float16"`` halves the file (values rounded to float16).
    """
    if dtype not in DTYPES:
        raise DatasetError(f"packed dtype must be one of {sorted(DTYPES)}, got {dtype!r}")
    store, source_info, extraction, facts = _open_source(source, key)
    ids = sorted(set(videos)) if videos is not None else store_videos(store)
    if not ids:
        raise DatasetError(f"{source}: no videos to pack")
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    target = np.dtype(DTYPES[dtype])
    entries: dict[str, dict[str, int]] = {}
    h = hashlib.sha256()
    rows, dim = 0, None
    building = out / ".packed-features.building.bin"  # a dot-name: folder scans skip it
    with atomic_path(building) as tmp:
        with open(tmp, "wb") as f:
            for i, video in enumerate(ids):
                feats = store.get(video)  # (n, D) float32, checked by the source's store
                if dim is None:
                    dim = int(feats.shape[1])
                elif feats.shape[1] != dim:
                    raise DatasetError(f"{source}: video {video!r} has {feats.shape[1]}-d features, the others {dim}-d; "
                                       "a packed store holds one width")
                raw = np.ascontiguousarray(feats, dtype=target).tobytes()
                f.write(raw)
                h.update(raw)
                entries[video] = {"offset": rows, "length": int(feats.shape[0])}
                rows += int(feats.shape[0])
                if (i + 1) % 1000 == 0:
                    _logger.info("pack-features: %d / %d videos", i + 1, len(ids))
            f.flush()
            os.fsync(f.fileno())
    digest = h.hexdigest()
    data_name = f"packed-features-{digest[:12]}.bin"
    os.replace(building, out / data_name)  # named by content: the previous data file stays until the index moves
    index_path = out / INDEX_NAME
    previous = None
    if index_path.is_file():
        from cmagrounding._strict_json import read

        try:
            previous = read(index_path, DatasetError, "packed-store index").get("data")
        except (DatasetError, AttributeError):
            previous = None  # not ours to trust: no previous data file is removed
    index = {
        "format": FORMAT, "version": VERSION, "data": data_name, "dtype": target.str, "dim": int(dim or 0),
        "rows": rows, "data_bytes": rows * int(dim or 0) * target.itemsize, "data_sha256": digest,
        "videos": entries, "source": source_info, "extraction": extraction,
        "sources": {v: facts[v] for v in ids if v in facts},
    }
    write_json_atomic(index_path, index, indent=1)  # the commit point
    # only a data file of ours, in this folder: the index is a file anyone may have edited ("../x")
    ours = isinstance(previous, str) and Path(previous).name == previous and previous.startswith("packed-features-") \
        and previous.endswith(".bin")
    if ours and previous != data_name and (out / previous).is_file():
        (out / previous).unlink()
    _logger.info("packed %d videos (%d rows x %d, %s) into %s", len(ids), rows, dim, target.name, out / data_name)
    return PackedStore(out)
