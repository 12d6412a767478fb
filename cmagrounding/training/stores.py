"""Where the clip features of each video come from during training and evaluation.

A feature store maps a video id to its feature sequence ``(n, D)`` float32 (one row per clip, the
rows covering the video evenly from start to end, as in the released Charades-STA / ActivityNet
features). Three kinds:

* :class:`NpyFolderStore`: a folder with one ``<video_id>.npy`` per video.
* :class:`HDF5Store`: one HDF5 file, either ``<video_id>`` datasets at the top level or groups
  ``<video_id>/<key>`` such as the official ActivityNet C3D file (``v_xxx/c3d_features``).
  ``h5py`` is imported only when such a store is opened.
* :class:`EncoderStore`: extracts features from the video files on the fly with the library's
  :class:`~cmagrounding.video.encoder.VideoEncoder` (optionally caching them as ``.npy``).
* :class:`~cmagrounding.training.packed.PackedStore`: every video in one memory-mapped file with
  a JSON index (``cmagrounding pack-features``), the fastest to read; :func:`open_feature_store`
  uses it wherever a folder holds one that covers its ``.npy`` files.

:class:`MemoryStore` holds arrays in memory (the synthetic dataset, tests).
"""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Any, Iterable, Mapping, Protocol, runtime_checkable

import numpy as np

from cmagrounding._io import save_npy_atomic
from cmagrounding.errors import DatasetError

_logger = logging.getLogger(__name__)

__all__ = ["FeatureStore", "MemoryStore", "ChainStore", "NpyFolderStore", "NpzFolderStore", "JoinedStore", "HDF5Store",
           "EncoderStore", "open_feature_store", "open_one_store", "feature_sources", "store_videos", "recorded_durations",
           "l2_normalize_rows", "id_candidates", "align_to_store", "store_files"]


@runtime_checkable
class FeatureStore(Protocol):
    """Anything that returns the features ``(n, D)`` float32 of a video id."""

    def get(self, video: str) -> np.ndarray: ...

    def __contains__(self, video: object) -> bool: ...


def store_videos(store: Any) -> list[str]:
    """The sorted video ids of a store that can list them (``store.videos()``); others raise."""
    videos = getattr(store, "videos", None)
    if videos is None:
        raise DatasetError(f"{store!r} cannot list its videos; pass the video ids")
    return sorted(videos())


def recorded_durations(store: Any) -> dict[str, float]:
    """Video id -> duration (s) as ``cmagrounding extract-features`` measured it, for the videos of
    ``store`` that have one: a packed store's ``sources``, or the ``index.json`` of a folder of
    ``.npy`` files; ``{}`` for other stores (features made elsewhere record no durations)."""
    from cmagrounding._strict_json import read

    index = getattr(store, "index", None)  # PackedStore
    if isinstance(index, dict):
        entries = index.get("sources") or {}
    elif isinstance(store, NpyFolderStore) and (store.folder / "index.json").is_file():
        path = store.folder / "index.json"
        data = read(path, DatasetError, "extract-features index")
        entries = data.get("videos") if isinstance(data, dict) else None
        if not isinstance(entries, dict):
            raise DatasetError(f"{path}: not a readable extract-features index: no object of \"videos\"")
    else:
        return {}
    return {v: float(e["duration"]) for v, e in entries.items() if isinstance(e, dict) and e.get("duration")}


def store_files(store: Any, videos: Iterable[str]) -> list[Path]:
    """The files that reading ``videos`` from ``store`` opens (an evaluation's feature inputs, which
    its outputs must not replace): each video's ``.npy``/``.npz`` file and a folder's
    extract-features ``index.json``, a packed store's index and data file, an HDF5 file, an
    encoder's video files and cached features; none for a :class:`MemoryStore`. Files a folder
    holds besides these (an earlier run's output) are not inputs."""
    from cmagrounding.training.packed import INDEX_NAME, PackedStore

    videos = list(videos)
    if isinstance(store, (JoinedStore, ChainStore)):
        return [f for s in store.stores for f in store_files(s, videos)]
    if isinstance(store, PackedStore):
        return [store.index_path, store.data_path]
    if isinstance(store, HDF5Store):
        return [store.path]
    if isinstance(store, NpyFolderStore):  # NpzFolderStore too
        found = [store._path(v) for v in videos]  # and the stale packed index read to choose the files
        return [p for p in (*found, store.folder / "index.json", store.folder / INDEX_NAME) if p.is_file()]
    if isinstance(store, EncoderStore):
        found = [store._find(v) for v in videos] + [store._cache_path(v) for v in videos]
        return [p for p in found if p is not None and p.is_file()]
    return []


def _check(video: str, feats: Any, where: str) -> np.ndarray:
    arr = np.asarray(feats, dtype=np.float32)
    if arr.ndim > 2 and all(d == 1 for d in arr.shape[1:-1]):
        arr = arr.reshape(arr.shape[0], arr.shape[-1])  # e.g. LGI's Charades I3D files: (n, 1, 1, 1024)
    if arr.ndim != 2 or arr.shape[0] == 0:
        raise DatasetError(f"{where}: features of {video!r} must be (n >= 1, D), got shape {arr.shape}")
    if not np.isfinite(arr).all():
        raise DatasetError(f"{where}: features of {video!r} contain NaN or infinite values")
    return arr


class MemoryStore:
    """Features held in a dict ``video -> (n, D)``."""

    def __init__(self, features: Mapping[str, np.ndarray]):
        self.features = dict(features)

    def get(self, video: str) -> np.ndarray:
        try:
            return _check(video, self.features[video], "memory store")
        except KeyError:
            raise DatasetError(f"memory store: no features for video {video!r}") from None

    def __contains__(self, video: object) -> bool:
        return video in self.features

    def videos(self) -> list[str]:
        return sorted(self.features)

    def __repr__(self) -> str:
        return f"MemoryStore({len(self.features)} videos)"


class ChainStore:
    """Several stores as one: a video's features come from the first store that has it
    (e.g. the short and the long training videos, in two folders)."""

    def __init__(self, *stores: Any):
        if not stores:
            raise DatasetError("ChainStore needs at least one store")
        self.stores = stores

    def get(self, video: str) -> np.ndarray:
        for store in self.stores:
            if video in store:
                return store.get(video)
        raise DatasetError(f"no features for video {video!r} in any of {list(self.stores)!r}")

    def __contains__(self, video: object) -> bool:
        return any(video in store for store in self.stores)

    def videos(self) -> list[str]:
        return sorted({v for store in self.stores for v in store_videos(store)})

    def __repr__(self) -> str:
        return f"ChainStore({', '.join(repr(s) for s in self.stores)})"


class NpyFolderStore:
    """A folder of ``<video_id>.npy`` files, each ``(n, D)`` (or ``(D, n)`` with ``transpose=True``)."""

    suffix = ".npy"  # the file kind read; NpzFolderStore changes it and how a file is read

    def __init__(self, folder: str | Path, transpose: bool = False):
        self.folder = Path(folder)
        if not self.folder.is_dir():
            raise DatasetError(f"{self.folder}: feature folder not found")
        self.transpose = transpose

    def _path(self, video: str) -> Path:
        return self.folder / f"{video}{self.suffix}"

    def get(self, video: str) -> np.ndarray:
        path = self._path(video)
        try:
            arr = np.load(path, allow_pickle=False)
        except FileNotFoundError:
            raise DatasetError(f"{path}: no feature file for video {video!r}") from None
        except ValueError as e:
            raise DatasetError(f"{path}: not a readable .npy array ({e})") from None
        return _check(video, arr.T if self.transpose else arr, str(path))

    def __contains__(self, video: object) -> bool:
        return isinstance(video, str) and self._path(video).is_file()

    def videos(self) -> list[str]:
        """Ids of the feature files, sorted; temporary files of an interrupted write are left out."""
        return sorted(p.stem for p in self.folder.glob(f"*{self.suffix}")
                      if not p.name.startswith(".") and ".tmp" not in p.name)

    def __repr__(self) -> str:
        return f"NpyFolderStore({str(self.folder)!r})"


class NpzFolderStore(NpyFolderStore):
    """A folder of ``<video_id>.npz`` files, the features under ``key`` (``"features"``: every
    HERO-extracted release, e.g. QVHighlights' SlowFast and CLIP, Lighthouse's)."""

    suffix = ".npz"

    def __init__(self, folder: str | Path, key: str | None = None, transpose: bool = False):
        super().__init__(folder, transpose)
        self.key = key or "features"

    def get(self, video: str) -> np.ndarray:
        import zipfile
        import zlib

        path = self._path(video)
        try:
            data = np.load(path, allow_pickle=False)
        except FileNotFoundError:
            raise DatasetError(f"{path}: no feature file for video {video!r}") from None
        except (ValueError, OSError, EOFError, zipfile.BadZipFile) as e:
            raise DatasetError(f"{path}: not a readable .npz archive ({e})") from None
        if not isinstance(data, np.lib.npyio.NpzFile):
            raise DatasetError(f"{path}: an .npy array under an .npz name, not an archive of named arrays")
        with data:
            if self.key not in data.files:
                raise DatasetError(f"{path}: holds {sorted(data.files)}, not {self.key!r} (name the array with --npz-key)")
            try:
                arr = data[self.key]
            except (ValueError, OSError, EOFError, zipfile.BadZipFile, zlib.error) as e:
                raise DatasetError(f"{path}: array {self.key!r} is unreadable ({e})") from None
        return _check(video, arr.T if self.transpose else arr, str(path))

    def __repr__(self) -> str:
        return f"NpzFolderStore({str(self.folder)!r}, key={self.key!r})"


class JoinedStore:
    """Several feature sources of the same videos joined along the feature dimension, as Moment-DETR
    joins SlowFast and CLIP: rows cut to the shorter source (their extractors may count one clip
    more or less), each source optionally L2-normalized per row first (``l2_normalize``, as
    Moment-DETR and 2D-TAN do). ``get`` -> (min n_i, sum D_i)."""

    def __init__(self, stores: Iterable[Any], l2_normalize: bool = False, names: Iterable[str] | None = None):
        self.stores = list(stores)
        if not self.stores:
            raise DatasetError("JoinedStore needs at least one feature source")
        self.l2_normalize = bool(l2_normalize)
        self.names = list(names) if names is not None else [repr(s) for s in self.stores]

    def get(self, video: str) -> np.ndarray:
        parts = [s.get(video) for s in self.stores]
        if self.l2_normalize:
            parts = [l2_normalize_rows(p) for p in parts]
        n = min(len(p) for p in parts)
        return np.concatenate([p[:n] for p in parts], axis=1)

    def __contains__(self, video: object) -> bool:
        return all(video in s for s in self.stores)

    def videos(self) -> list[str]:
        common = set(store_videos(self.stores[0]))
        for s in self.stores[1:]:
            common &= set(store_videos(s))
        return sorted(common)

    def describe(self) -> dict[str, Any]:
        """What a model trained on these features records, so that inference joins the same way."""
        return {"sources": self.names, "l2_normalize": self.l2_normalize}

    def __repr__(self) -> str:
        return f"JoinedStore({', '.join(self.names)}, l2_normalize={self.l2_normalize})"


def l2_normalize_rows(features: np.ndarray, eps: float = 1e-5) -> np.ndarray:
    """Each row (n, D) divided by its L2 norm (Moment-DETR's ``l2_normalize_np_array``, eps 1e-5)."""
    return (features / (np.linalg.norm(features, axis=-1, keepdims=True) + eps)).astype(np.float32)


#: video suffixes that some releases keep in their ids and others drop (TACoS: s22-d55.avi / s22-d55)
_ID_SUFFIXES = (".avi", ".mp4", ".mkv", ".webm")


def id_candidates(video: str) -> list[str]:
    """``video`` and its other spellings: without a video suffix, and with ``.avi`` added."""
    out = [video]
    low = video.lower()
    for suffix in _ID_SUFFIXES:
        if low.endswith(suffix):
            out.append(video[: -len(suffix)])
            break
    else:
        out.append(video + ".avi")
    return out


def align_to_store(annotations: Any, store: Any, what: str = "features") -> Any:
    """Check that ``store`` covers every annotated video before training or scoring, matching ids
    with or without a video suffix (:func:`id_candidates`); return the annotations renamed to the
    store's ids. Raises :class:`~cmagrounding.errors.FeaturesMissingError` listing the first missing
    ids and their count (one message, instead of a failure at the first batch)."""
    from cmagrounding.errors import FeaturesMissingError
    from cmagrounding.training.annotations import AnnotationSet

    rename: dict[str, str] = {}
    missing: list[str] = []
    videos = list(dict.fromkeys(a.video for a in annotations))
    for video in videos:
        found = next((c for c in id_candidates(video) if c in store), None)
        if found is None:
            missing.append(video)
        elif found != video:
            rename[video] = found
    if missing:
        from cmagrounding.errors import shorten_list

        name = f"{getattr(annotations, 'name', '')}/{getattr(annotations, 'split', '')}".strip("/") or "the annotations"
        raise FeaturesMissingError(
            f"{store!r}: no {what} for {len(missing)} of the {len(videos)} videos of {name}: "
            f"{shorten_list([repr(m) for m in missing], 5)}")
    if not rename:
        return annotations
    import dataclasses

    rows = [dataclasses.replace(a, video=rename.get(a.video, a.video)) for a in annotations]
    if isinstance(annotations, AnnotationSet):
        return AnnotationSet(annotations.name, annotations.split, rows, annotations.quirks, annotations.sources)
    return rows


class HDF5Store:
    """One HDF5 file of features.

    ``key`` names the dataset inside each video's group (``"c3d_features"`` for the official
    ActivityNet file); with ``key=None`` a top-level dataset is used directly, and a group with a
    single dataset uses that one. The file is opened lazily, once per process (DataLoader workers
    and DDP ranks each open their own handle).
    """

    def __init__(self, path: str | Path, key: str | None = None):
        self.path = Path(path)
        if not self.path.is_file():
            raise DatasetError(f"{self.path}: HDF5 feature file not found")
        self.key = key
        self._file: Any = None
        self._pid: int | None = None

    def _handle(self) -> Any:
        if self._file is None or self._pid != os.getpid():
            try:
                import h5py
            except ImportError:
                raise DatasetError(
                    f"{self.path}: reading HDF5 features needs h5py: pip install 'cmagrounding[training]'"
                ) from None
            try:
                self._file = h5py.File(self.path, "r")
            except OSError as e:
                raise DatasetError(f"{self.path}: not a readable HDF5 file ({e})") from None
            self._pid = os.getpid()
        return self._file

    def get(self, video: str) -> np.ndarray:
        f = self._handle()
        if video not in f:
            raise DatasetError(f"{self.path}: no entry for video {video!r}")
        node = f[video]
        if hasattr(node, "keys"):  # a group: <video>/<key>
            keys = list(node.keys())
            key = self.key if self.key is not None else (keys[0] if len(keys) == 1 else None)
            if key is None or key not in node:
                raise DatasetError(
                    f"{self.path}: group {video!r} holds {keys}; pass key= to choose one"
                    + (f" (asked for {self.key!r})" if self.key else "")
                )
            node = node[key]
        return _check(video, node[()], f"{self.path}[{video!r}]")

    def __contains__(self, video: object) -> bool:
        return isinstance(video, str) and video in self._handle()

    def videos(self) -> list[str]:
        return sorted(self._handle().keys())

    def __getstate__(self) -> dict:  # h5py handles do not pickle (DataLoader workers, spawn)
        state = dict(self.__dict__)
        state["_file"], state["_pid"] = None, None
        return state

    def __repr__(self) -> str:
        return f"HDF5Store({str(self.path)!r}, key={self.key!r})"


class EncoderStore:
    """Extracts features from video files with a :class:`~cmagrounding.video.encoder.VideoEncoder`.

    A video id is looked up as a path (absolute, or relative to ``video_root``), then as
    ``<video_root>/<id><ext>`` for each of ``extensions``. With ``cache`` set, features are saved as
    ``<cache>/<id>.npy`` and reused.
    """

    def __init__(self, encoder: Any, video_root: str | Path | None = None, cache: str | Path | None = None,
                 extensions: Iterable[str] = (".mp4", ".webm", ".mkv", ".avi", ".mov")):
        self.encoder = encoder
        self.video_root = Path(video_root) if video_root is not None else None
        self.cache = Path(cache) if cache is not None else None
        if self.cache is not None:
            self.cache.mkdir(parents=True, exist_ok=True)
        self.extensions = tuple(extensions)

    def _find(self, video: str) -> Path | None:
        candidates = [Path(video)]
        if self.video_root is not None:
            candidates.append(self.video_root / video)
            candidates += [self.video_root / f"{video}{ext}" for ext in self.extensions]
        return next((p for p in candidates if p.is_file()), None)

    def _cache_path(self, video: str) -> Path | None:
        if self.cache is None:
            return None
        return self.cache / (Path(video).name.replace(os.sep, "_") + ".npy")

    def get(self, video: str) -> np.ndarray:
        cached = self._cache_path(video)
        if cached is not None and cached.is_file():
            return _check(video, np.load(cached, allow_pickle=False), str(cached))
        path = self._find(video)
        if path is None:
            raise DatasetError(f"no video file for {video!r} (root {self.video_root}, extensions {self.extensions})")
        feats = _check(video, self.encoder.encode(path).features, str(path))
        if cached is not None:
            save_npy_atomic(cached, feats)
        return feats

    def __contains__(self, video: object) -> bool:
        return isinstance(video, str) and (
            (self._cache_path(video) is not None and self._cache_path(video).is_file())  # type: ignore[union-attr]
            or self._find(video) is not None
        )


def open_feature_store(spec: str | Path, key: str | None = None, *, npz_key: str | None = None,
                       l2_normalize: bool = False) -> FeatureStore:
    """:func:`open_one_store`, or with ``spec`` a comma-separated list of sources (e.g. QVHighlights'
    ``slowfast_features,clip_features``) a :class:`JoinedStore` of them; ``l2_normalize`` normalizes
    each source's rows first (a single source too). ``npz_key`` names the array in ``.npz`` files."""
    parts = feature_sources(spec)
    stores = [open_one_store(p, key, npz_key=npz_key) for p in parts]
    if len(stores) == 1 and not l2_normalize:
        return stores[0]
    return JoinedStore(stores, l2_normalize, names=[Path(p).name for p in parts])


def feature_sources(spec: str | Path) -> list[str]:
    """The sources of a ``--features`` value: comma-separated paths (a path that exists as given,
    commas and all, is one source)."""
    text = str(spec)
    return [p for p in text.split(",") if p] if "," in text and not Path(text).exists() else [text]


def open_one_store(spec: str | Path, key: str | None = None, *, npz_key: str | None = None) -> FeatureStore:
    """A store from a path: a packed store (its folder or index), a folder of ``.npy`` files (or of
    ``.npz`` files: :class:`NpzFolderStore`), or an ``.h5`` / ``.hdf5`` file.

    A folder that holds a packed store (``packed-features.json``) is read through it, unless one of
    the folder's ``.npy`` files is missing from it or newer than it (then the ``.npy`` files are
    read, with a warning to pack again). ``key`` is the per-video dataset name inside an HDF5 file
    (e.g. ``"c3d_features"``).
    """
    from cmagrounding.training.packed import PackedStore, find_packed_index

    path = Path(spec)
    packed = find_packed_index(path)
    if packed is not None:
        stale = _packed_is_stale(path, packed) if path.is_dir() else None
        if stale is None:
            return PackedStore(packed)
        _logger.warning("%s: the packed store there is out of date (%s); reading the .npy files "
                        "(cmagrounding pack-features %s to pack them again)", path, stale, path)
    if path.is_dir():
        if npz_key is not None or (not any(path.glob("*.npy")) and any(path.glob("*.npz"))):
            return NpzFolderStore(path, npz_key)
        return NpyFolderStore(path)
    if path.suffix.lower() in (".h5", ".hdf5", ".hdf"):
        return HDF5Store(path, key=key)
    if not path.exists():
        raise DatasetError(f"{path}: feature folder or HDF5 file not found")
    raise DatasetError(f"{path}: expected a folder of .npy or .npz files or an .h5/.hdf5 file")


def _packed_is_stale(folder: Path, index_path: Path) -> str | None:
    """Why the packed store in a folder of ``.npy`` files no longer covers them, or None.

    Stale: a ``.npy`` file there is not in the index, or was written after it.
    """
    from cmagrounding._strict_json import read

    try:
        packed = set(read(index_path, DatasetError, "packed-store index").get("videos", {}))
    except (DatasetError, AttributeError, TypeError):
        return f"{index_path.name} is unreadable"
    stamp = index_path.stat().st_mtime
    for video in NpyFolderStore(folder).videos():
        if video not in packed:
            return f"{video}.npy is not in {index_path.name}"
        if (folder / f"{video}.npy").stat().st_mtime > stamp:
            return f"{video}.npy is newer than {index_path.name}"
    return None
