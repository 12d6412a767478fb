"""pytorchvideo's registration: ``ptv_i3d_r50``, ``ptv_slow_r50``, ``ptv_x3d_s``, ``ptv_x3d_m`` (optional
extra), values in [0, 1] with mean 0.45 / std 0.225. ``weights="pytorchvideo:pretrained"`` downloads
from its servers. The wrappers are ``cmagrounding.video.ptv``.
"""

from __future__ import annotations

from cmagrounding.video.registry import register_all
from cmagrounding.video.spec import BackboneSpec, lazy_builder
from cmagrounding.video.tv_spec import SLOWFAST_MEAN, SLOWFAST_STD


ARCH_PRESETS = {
    "i3d_r50": dict(clip_len=8, stride=8, resize=256, crop=224, feature_dim=2048),
    "slow_r50": dict(clip_len=8, stride=8, resize=256, crop=256, feature_dim=2048),
    "x3d_s": dict(clip_len=13, stride=13, resize=182, crop=182, feature_dim=192),
    "x3d_m": dict(clip_len=16, stride=16, resize=256, crop=256, feature_dim=192),
}

SPECS = tuple(
    BackboneSpec(
        f"ptv_{arch}", f"pytorchvideo {arch} (optional extra), {preset['feature_dim']}-d",
        lazy_builder("cmagrounding.video.ptv", "build_pytorchvideo", arch),
        dict(fps=None, value_range=(0.0, 1.0), mean=SLOWFAST_MEAN, std=SLOWFAST_STD, layer="pooled",
             weights="pytorchvideo:pretrained", **preset),
        fetches=("pytorchvideo",),
    )
    for arch, preset in ARCH_PRESETS.items()
)  # fmt: skip
register_all(*SPECS)  # self-registration, as timm's and torchvision's model files do
