"""pytorchvideo's hub models as feature extractors (optional extra: ``pip install cmagrounding[pytorchvideo]``).

``features`` is the last stage before the head, pooled globally. Only ``pytorchvideo.models.hub`` is
imported: ``pytorchvideo.transforms`` imports ``torchvision.transforms.functional_tensor``, which
torchvision >= 0.17 removed. The registration (presets) is ``cmagrounding.video.ptv_spec``.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING

import torch
from torch import nn

from cmagrounding.errors import MissingDependencyError
from cmagrounding.video.weights import load_strict

if TYPE_CHECKING:
    from cmagrounding.video.config import VideoConfig

PYTORCHVIDEO_HINT = "pip install cmagrounding[pytorchvideo]"


def import_pytorchvideo_hub():
    """``pytorchvideo.models.hub``, or ``MissingDependencyError`` naming the extra to install."""
    try:
        return importlib.import_module("pytorchvideo.models.hub")
    except ImportError as exc:
        raise MissingDependencyError(f"pytorchvideo backbones need the optional extra: {PYTORCHVIDEO_HINT} ({exc})") from exc


class PytorchvideoFeatures(nn.Module):
    """Wraps a pytorchvideo Net: ``features`` = the last stage before the head, pooled globally."""

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model = model

    @property
    def inner(self) -> nn.Module:
        return self.model

    def features(self, x: torch.Tensor) -> torch.Tensor:
        for block in self.model.blocks[:-1]:
            x = block(x)
        return x.mean(dim=(2, 3, 4))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.model(x)


def build_pytorchvideo(arch: str, config: VideoConfig, state_dict: dict | None) -> PytorchvideoFeatures:
    """pytorchvideo's ``arch`` with ``state_dict``, or the weights ``pytorchvideo:pretrained`` downloads."""
    hub = import_pytorchvideo_hub()
    pretrained = state_dict is None and config.weights == "pytorchvideo:pretrained"
    model = getattr(hub, arch)(pretrained=pretrained)
    if state_dict is not None:
        load_strict(model, state_dict, source=f"weights for {config.extractor}")
    return PytorchvideoFeatures(model)
