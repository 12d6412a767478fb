"""Extracted clip features of one video, with each row's time span and the settings that made them."""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from cmagrounding._io import atomic_path
from cmagrounding.errors import DatasetError
from cmagrounding.video.config import VideoConfig

FORMAT_VERSION = 1
_META_KEY = "cmagrounding.video_features"


@dataclass
class VideoFeatures:
    """Features of one video.

    features: (n, D) float32, one row per extracted clip, in time order.
    times:    (n, 2) float64, each row's (start, end) in seconds from the video's start.
    duration: the video's duration in seconds (probed, see ``cmagrounding.video.decode.probe``).
    config:   the ``VideoConfig`` that produced them.
    source:   the video path, when known.
    damage:   what decoding lost, when the video was damaged (``DecodeReport.to_dict()``: frames_lost,
              lost_ranges in seconds, frames_concealed, decode_errors, decoded_fraction, ...);
              None for a video that decoded cleanly.
    """

    features: np.ndarray
    times: np.ndarray
    duration: float
    config: VideoConfig
    source: str | None = None
    damage: dict | None = None

    def __post_init__(self) -> None:
        self.features = np.ascontiguousarray(self.features, dtype=np.float32)
        self.times = np.ascontiguousarray(self.times, dtype=np.float64).reshape(-1, 2)
        self.duration = float(self.duration)
        if self.features.ndim != 2:
            raise DatasetError(f"features must be (n, D), got shape {self.features.shape}")
        if self.times.shape[0] != self.features.shape[0]:
            raise DatasetError(f"times has {self.times.shape[0]} rows but features has {self.features.shape[0]}")

    def __len__(self) -> int:
        return int(self.features.shape[0])

    @property
    def frames_lost(self) -> int:
        """Frames of the video that did not decode (0 for a clean video)."""
        return int(self.damage.get("frames_lost", 0)) if self.damage else 0

    @property
    def centers(self) -> np.ndarray:
        """(n,) centre of each row's span, seconds."""
        return self.times.mean(axis=1)

    def metadata(self) -> dict:
        return {
            "format_version": FORMAT_VERSION,
            "duration": self.duration,
            "source": self.source,
            "config": self.config.to_dict(),
            "damage": self.damage,
        }

    def save(self, path: str | os.PathLike) -> None:
        """Write a ``.safetensors`` file (tensors ``features``, ``times``; JSON metadata). Atomic:
        the file appears complete or not at all."""
        from safetensors.numpy import save_file

        with atomic_path(path) as tmp:
            save_file(
                {"features": self.features, "times": self.times},
                str(tmp),
                metadata={_META_KEY: json.dumps(self.metadata())},
            )

    @classmethod
    def load(cls, path: str | os.PathLike) -> VideoFeatures:
        from safetensors import safe_open

        path = Path(path)
        if not path.is_file():
            raise DatasetError(f"feature file not found: {path}")
        try:
            with safe_open(str(path), framework="numpy") as f:
                meta_text = (f.metadata() or {}).get(_META_KEY)
                features = f.get_tensor("features")
                times = f.get_tensor("times")
        except Exception as exc:  # safetensors raises several types for corrupt files
            raise DatasetError(f"{path}: not a readable cmagrounding feature file ({exc})") from exc
        if meta_text is None:
            raise DatasetError(f"{path}: no {_META_KEY!r} metadata; not written by VideoFeatures.save")
        from cmagrounding._strict_json import loads
        from cmagrounding.errors import CMAGroundingError

        # surrogates allowed: the source path of a video whose name is not UTF-8 is stored escaped
        meta = loads(meta_text, f"{path}: metadata {_META_KEY!r}", DatasetError, surrogates=True)
        if not isinstance(meta, dict):
            raise DatasetError(f"{path}: metadata {_META_KEY!r} must be a JSON object, found {type(meta).__name__}")
        if meta.get("format_version") != FORMAT_VERSION:
            raise DatasetError(f"{path}: feature format version {meta.get('format_version')}, expected {FORMAT_VERSION}")
        missing = [k for k in ("duration", "config") if k not in meta]
        if missing:
            raise DatasetError(f"{path}: metadata lacks {', '.join(missing)}")
        duration = meta["duration"]
        if isinstance(duration, bool) or not isinstance(duration, (int, float)) or not 0 < duration < 1e7:
            raise DatasetError(f"{path}: metadata duration must be a positive number of seconds, got {duration!r}")
        if features.ndim != 2 or times.ndim != 2 or times.shape[1:] != (2,) or len(times) != len(features):
            raise DatasetError(f"{path}: features must be (n, D) and times (n, 2), found {tuple(features.shape)} "
                               f"and {tuple(times.shape)}")
        if len(features) == 0:
            raise DatasetError(f"{path}: holds no feature rows")
        for name, arr in (("features", features), ("times", times)):
            if not np.issubdtype(arr.dtype, np.floating):
                raise DatasetError(f"{path}: {name} are {arr.dtype}, expected floating point")
            if not np.isfinite(arr).all():
                raise DatasetError(f"{path}: {name} hold NaN or infinite values ({int((~np.isfinite(arr)).sum())} of "
                                   f"{arr.size}); refusing them rather than answering 'nan s'")
        if (times[:, 1] < times[:, 0]).any() or times.min() < 0:
            raise DatasetError(f"{path}: times must be (start, end) pairs with 0 <= start <= end")
        source, damage = meta.get("source"), meta.get("damage")  # damage: absent in files written before it was recorded
        if source is not None and not isinstance(source, str) or damage is not None and not isinstance(damage, dict):
            raise DatasetError(f"{path}: metadata source must be a string and damage an object")
        try:
            config = VideoConfig.from_dict(meta["config"])
        except CMAGroundingError as e:
            raise DatasetError(f"{path}: metadata config is not a valid VideoConfig: {e}") from e
        return cls(features=features, times=times, duration=duration, config=config, source=source, damage=damage)
