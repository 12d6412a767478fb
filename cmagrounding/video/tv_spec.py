"""torchvision's registration: ``tv_s3d``, ``tv_r3d_18``, ``tv_mvit_v2_s`` with torchvision's own
preprocessing (values in [0, 1], Kinetics mean/std). ``weights="torchvision:DEFAULT"`` downloads
from torchvision's servers (online only). The wrappers are ``cmagrounding.video.tv``.
"""

from __future__ import annotations

from cmagrounding.video.i3d_weights import kinetics400_labels
from cmagrounding.video.registry import register_all
from cmagrounding.video.spec import BackboneSpec, lazy_builder


KINETICS_MEAN = (0.43216, 0.394666, 0.37645)  # torchvision's r3d/s3d weights
KINETICS_STD = (0.22803, 0.22145, 0.216989)
SLOWFAST_MEAN = (0.45, 0.45, 0.45)  # MViT / pytorchvideo
SLOWFAST_STD = (0.225, 0.225, 0.225)

ARCH_PRESETS = {
    "s3d": dict(resize=256, crop=224, mean=KINETICS_MEAN, std=KINETICS_STD, feature_dim=1024),
    "r3d_18": dict(resize=128, crop=112, mean=KINETICS_MEAN, std=KINETICS_STD, feature_dim=512),
    "mvit_v2_s": dict(resize=256, crop=224, mean=SLOWFAST_MEAN, std=SLOWFAST_STD, feature_dim=768),
}

SPECS = tuple(
    BackboneSpec(
        f"tv_{arch}", f"torchvision {arch} (Kinetics-400 weights when online), {preset['feature_dim']}-d",
        lazy_builder("cmagrounding.video.tv", "build_torchvision", arch),
        dict(fps=None, clip_len=16, stride=8, value_range=(0.0, 1.0), layer="pooled",
             weights="torchvision:DEFAULT", **preset),
        labels=kinetics400_labels, fetches=("torchvision",),
    )
    for arch, preset in ARCH_PRESETS.items()
)  # fmt: skip
register_all(*SPECS)  # self-registration, as timm's and torchvision's model files do
