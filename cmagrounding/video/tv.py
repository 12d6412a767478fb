"""torchvision's video classifiers as feature extractors (``tv_s3d``, ``tv_r3d_18``, ``tv_mvit_v2_s``).

``features`` is what the classifier's head receives, pooled globally: r3d_18's layer4 (B, 512),
s3d's features (B, 1024), MViT's normalised class token (B, 768). The registration (presets) is
``cmagrounding.video.tv_spec``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import torch
from torch import nn

from cmagrounding.errors import ConfigError, WeightsError
from cmagrounding.video.weights import load_strict

if TYPE_CHECKING:
    from cmagrounding.video.config import VideoConfig

WEIGHT_ENUMS = {"s3d": "S3D_Weights", "r3d_18": "R3D_18_Weights", "mvit_v2_s": "MViT_V2_S_Weights"}


class TorchvisionFeatures(nn.Module):
    """Wraps a torchvision video classifier: ``features`` = the classifier's input, pooled globally."""

    def __init__(self, arch: str, model: nn.Module) -> None:
        super().__init__()
        self.arch = arch
        self.model = model

    @property
    def inner(self) -> nn.Module:
        return self.model

    def features(self, x: torch.Tensor) -> torch.Tensor:
        m = self.model
        if self.arch == "r3d_18":
            h = m.layer4(m.layer3(m.layer2(m.layer1(m.stem(x)))))
            return h.mean(dim=(2, 3, 4))  # (B, 512)
        if self.arch == "s3d":
            return m.features(x).mean(dim=(2, 3, 4))  # (B, 1024)
        if self.arch == "mvit_v2_s":
            return _mvit_features(m, x)  # (B, 768), the class token after the final norm
        raise ConfigError(f"no feature rule for torchvision arch {self.arch!r}")

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.model(x)


def _mvit_features(m: nn.Module, x: torch.Tensor) -> torch.Tensor:
    """The normalised class token MViT's head receives (captured by a hook: no private internals)."""
    captured: list[torch.Tensor] = []
    handle = m.head.register_forward_pre_hook(lambda _mod, args: captured.append(args[0]))
    try:
        m(x)
    finally:
        handle.remove()
    return captured[0]


def build_torchvision(arch: str, config: VideoConfig, state_dict: dict | None) -> TorchvisionFeatures:
    """torchvision's ``arch`` with ``state_dict``, or with the weights ``torchvision:<NAME>`` downloads."""
    import torchvision.models.video as tvv

    weights = None
    if state_dict is None and config.weights and config.weights.startswith("torchvision:"):
        enum = getattr(tvv, WEIGHT_ENUMS[arch])
        key = config.weights.split(":", 1)[1]
        try:
            weights = getattr(enum, key)
        except AttributeError as exc:
            raise WeightsError(f"torchvision has no {WEIGHT_ENUMS[arch]}.{key}; choose from {[w.name for w in enum]} or DEFAULT") from exc
    model = getattr(tvv, arch)(weights=weights)  # downloads only when weights are named (online)
    if state_dict is not None:
        load_strict(model, state_dict, source=f"weights for {config.extractor}")
    return TorchvisionFeatures(arch, model)
