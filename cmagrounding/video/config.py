"""Every setting that decides which features a video turns into.

A checkpoint saves its ``VideoConfig`` in ``config.json``; features extracted with another
``compatibility_key()`` are refused, because a model trained on one extractor, frame rate or window
silently degrades on another (the most common inference mistake in video grounding).

The defaults are the default extractor's preset (I3D, ``cmagrounding.video.i3d_preset``, which the
I3D registration reads too); every other extractor's comes from the registry
(``cmagrounding.video.registry`` fills the table ``cmagrounding.video.presets`` that
:meth:`VideoConfig.for_extractor` reads): the registry and the families import this file, not the reverse.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass, field
from typing import Any

from cmagrounding._config import check_int, dataclass_from_dict
from cmagrounding.errors import ConfigError, ExtractorMismatchError
from cmagrounding.video.i3d_preset import DEFAULT_EXTRACTOR, DEFAULT_PRESET
from cmagrounding.video.presets import preset

SCHEMES = ("fixed_rate", "uniform_clips")
PRECISIONS = ("auto", "fp32", "bf16", "fp16")
POOLINGS = ("mean",)
CHANNEL_ORDERS = ("rgb", "bgr")
_DEFAULT = DEFAULT_PRESET  # the released I3D features' settings
#: accepted ranges of the sizes a config may ask for (docs/security.md): a config file is data, and
#: fps=1e9 once decoded a 4-s video for minutes. 240 fps is the fastest common capture rate (fps=None
#: decodes at any native rate); the extractors use 8-64 frame clips of 112-256 pixels.
VIDEO_BOUNDS: dict[str, tuple[int, int]] = {
    "clip_len": (1, 512), "stride": (1, 100_000), "num_clips": (1, 4096), "resize": (1, 2048), "crop": (1, 2048),
    "batch_size": (1, 4096), "feature_dim": (1, 65536),
}
MAX_FPS = 240.0


@dataclass
class VideoConfig:
    """Decoding, sampling, preprocessing and extractor settings.

    Sampling schemes:
      * ``"fixed_rate"`` (the released features): decode at ``fps``; slide a window of ``clip_len``
        frames by ``stride`` frames over the whole video; one feature per window (for I3D: one per
        8 frames). The grounding model later resamples the sequence to ``num_clips`` (LGI's rule,
        ``cmagrounding.video.resample``).
      * ``"uniform_clips"`` (the paper, Sec. 4): ``num_clips`` windows of ``clip_len`` frames whose
        centres are spread uniformly over the video, whatever its length.

    Preprocessing: decoded RGB frames are resized so the short side is ``resize`` (aspect kept),
    centre-cropped to ``crop`` x ``crop``, mapped linearly from [0, 255] to ``value_range``, then
    normalised ``(x - mean) / std`` per channel in ``channel_order``.
    """

    extractor: str = DEFAULT_EXTRACTOR  # registry name (cmagrounding.video.registry); "precomputed" = features from elsewhere
    scheme: str = "fixed_rate"
    fps: float | None = _DEFAULT["fps"]  # None = the video's native frame rate
    clip_len: int = _DEFAULT["clip_len"]
    stride: int = _DEFAULT["stride"]
    num_clips: int = 128
    resize: int = _DEFAULT["resize"]  # short side, pixels
    crop: int = _DEFAULT["crop"]  # centre crop, pixels
    value_range: tuple[float, float] = _DEFAULT["value_range"]
    mean: tuple[float, float, float] = _DEFAULT["mean"]
    std: tuple[float, float, float] = _DEFAULT["std"]
    channel_order: str = "rgb"
    layer: str = _DEFAULT["layer"]  # which activation becomes the feature (backbone-specific names)
    pooling: str = "mean"  # how a window's activation becomes one vector: mean over time and space
    precision: str = "auto"
    batch_size: int = 8  # clips per forward pass
    weights: str | None = _DEFAULT["weights"]  # named source (cmagrounding.video.sources); None = random (tests only)
    weights_sha256: str | None = None  # the loaded weights' checksum, pinned by VideoEncoder or a checkpoint
    feature_dim: int = _DEFAULT["feature_dim"]
    extra: dict[str, Any] = field(default_factory=dict)  # backbone-specific settings (e.g. C3D's pca_path)

    def __post_init__(self) -> None:
        self.value_range = tuple(float(v) for v in self.value_range)  # type: ignore[assignment]
        self.mean = tuple(float(v) for v in self.mean)  # type: ignore[assignment]
        self.std = tuple(float(v) for v in self.std)  # type: ignore[assignment]
        self.validate()

    def validate(self) -> None:
        """Raise ``ConfigError`` naming the first invalid field."""
        if self.scheme not in SCHEMES:
            raise ConfigError(f"VideoConfig.scheme must be one of {SCHEMES}, got {self.scheme!r}")
        if self.precision == "int8":  # removed with the ONNX Runtime path (docs/performance.md)
            raise ConfigError("VideoConfig.precision 'int8' is no longer offered (its features fell below cosine 0.9999 "
                              "to fp32); use 'auto' or 'fp32'")
        if self.precision not in PRECISIONS:
            raise ConfigError(f"VideoConfig.precision must be one of {PRECISIONS}, got {self.precision!r}")
        if self.pooling not in POOLINGS:
            raise ConfigError(f"VideoConfig.pooling must be one of {POOLINGS}, got {self.pooling!r}")
        if self.channel_order not in CHANNEL_ORDERS:
            raise ConfigError(f"VideoConfig.channel_order must be one of {CHANNEL_ORDERS}, got {self.channel_order!r}")
        if self.fps is not None and (isinstance(self.fps, bool) or not isinstance(self.fps, (int, float))
                                     or not 0 < self.fps <= MAX_FPS):
            raise ConfigError(f"VideoConfig.fps must be a number in (0, {MAX_FPS:g}] or None (the native rate), "
                              f"got {self.fps!r}")
        for name, (low, high) in VIDEO_BOUNDS.items():  # every low bound is 1: positive integers
            check_int(f"VideoConfig.{name}", getattr(self, name), low, high)
        if self.crop > self.resize:
            raise ConfigError(f"VideoConfig.crop ({self.crop}) must not exceed resize ({self.resize})")
        numbers = (*self.value_range, *self.mean, *self.std)
        if not all(math.isfinite(v) for v in numbers):
            raise ConfigError(f"VideoConfig value_range/mean/std must be finite, got {self.value_range}, {self.mean}, {self.std}")
        if len(self.value_range) != 2 or self.value_range[0] >= self.value_range[1]:
            raise ConfigError(f"VideoConfig.value_range must be (low, high) with low < high, got {self.value_range}")
        if len(self.mean) != 3 or len(self.std) != 3 or min(self.std) <= 0:
            raise ConfigError(f"VideoConfig.mean/std must have 3 entries and std > 0, got {self.mean}, {self.std}")

    @classmethod
    def for_extractor(cls, extractor: str, **overrides: Any) -> VideoConfig:
        """The registry's preset for ``extractor`` (its preprocessing, clip length, feature size,
        default weights), with ``overrides`` applied; see ``cmagrounding.video.registry``."""
        return cls(**{**preset(extractor), **overrides})

    def pinned(self, weights_sha256: str) -> VideoConfig:
        """A copy whose ``weights_sha256`` is ``weights_sha256``; ``ConfigError`` if another checksum
        is already pinned (weights are pinned once: by the encoder that loaded them, or a checkpoint)."""
        if self.weights_sha256 is not None and self.weights_sha256 != weights_sha256:
            raise ConfigError(f"weights_sha256 is already pinned to {self.weights_sha256}, not {weights_sha256}")
        return self.replace(weights_sha256=weights_sha256)

    def replace(self, **changes: Any) -> VideoConfig:
        """A copy with ``changes`` applied (validated)."""
        return dataclasses.replace(self, **changes)

    def to_dict(self) -> dict[str, Any]:
        d = dataclasses.asdict(self)
        for key in ("value_range", "mean", "std"):
            d[key] = list(d[key])
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> VideoConfig:
        return dataclass_from_dict(cls, d, convert=dict.fromkeys(("value_range", "mean", "std"), tuple))

    def compatibility_key(self) -> dict[str, Any]:
        """The settings that must match between a checkpoint and the features it is given.

        Precision, batch size and ``num_clips`` (applied after extraction for ``fixed_rate``) are
        left out: they do not change what a feature means. So are ``weights_sha256`` (checked when
        the weights load: a file whose checksum differs is refused there) and ``extra`` entries
        ending in ``_path`` (machine-specific locations; their ``*_sha256`` companions stay in).
        """
        key = {
            "extractor": self.extractor,
            "weights": self.weights,
            "scheme": self.scheme,
            "fps": self.fps,
            "clip_len": self.clip_len,
            "stride": self.stride,
            "resize": self.resize,
            "crop": self.crop,
            "normalization": {
                "value_range": list(self.value_range),
                "mean": list(self.mean),
                "std": list(self.std),
                "channel_order": self.channel_order,
            },
            "layer": self.layer,
            "pooling": self.pooling,
            "feature_dim": self.feature_dim,
            "extra": {k: v for k, v in sorted(self.extra.items()) if not k.endswith("_path")},
        }
        if self.scheme == "uniform_clips":
            key["num_clips"] = self.num_clips
        return key

    def mismatches(self, other: VideoConfig) -> dict[str, tuple[Any, Any]]:
        """``{field: (self's value, other's value)}`` for every compatibility field that differs.

        The one comparison of two video configs: every check in the package goes through it
        (:meth:`describe_mismatches`, :meth:`check_compatible`).
        """
        a, b = self.compatibility_key(), other.compatibility_key()
        return {k: (a.get(k), b.get(k)) for k in sorted(set(a) | set(b)) if a.get(k) != b.get(k)}

    def describe_mismatches(self, other: VideoConfig) -> list[str]:
        """``["field: <self's value> vs <other's value>", ...]``, one line per differing field."""
        return [f"{k}: {a!r} vs {b!r}" for k, (a, b) in self.mismatches(other).items()]

    def check_compatible(self, other: VideoConfig, *, expected_what: str = "the model's extraction settings",
                         found_what: str = "the given video config") -> None:
        """Raise :class:`ExtractorMismatchError` naming every differing field when ``other`` gives
        other features than ``self`` (``self`` is what is expected, e.g. a checkpoint's config)."""
        diffs = self.describe_mismatches(other)
        if diffs:
            raise ExtractorMismatchError(
                f"{found_what} differ(s) from {expected_what} in the feature extraction settings: "
                + "; ".join(diffs)
                + ". Features must come from the extractor and settings the model was trained with."
            )
