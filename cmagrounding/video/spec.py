"""What a registered video backbone is: a builder, the preset its weights expect, its class names."""

from __future__ import annotations

import importlib
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Callable

if TYPE_CHECKING:  # annotations only: a spec is declared without loading torch
    from torch import nn

    from cmagrounding.video.config import VideoConfig


@dataclass(frozen=True)
class BackboneSpec:
    """A registered backbone.

    ``build(config, state_dict or None) -> nn.Module`` with ``features(x) -> (B, D)`` for clips ``x``
    (B, 3, T, H, W) (and ``forward(x)`` -> class logits where the weights have a classifier);
    ``state_dict`` is None for random weights or weights the builder fetches itself.
    ``preset``: the ``VideoConfig`` fields the weights expect (clip length, resize/crop, value range,
    mean/std, layer, feature size, default weight source): the one source of each extractor's
    preprocessing. ``fetches``: the weight-source schemes (``cmagrounding.video.sources``) this
    builder downloads itself, e.g. ``("torchvision",)``; every other source is read from a file.
    """

    name: str
    description: str
    build: Callable[[VideoConfig, dict | None], nn.Module]
    preset: dict[str, Any] = field(default_factory=dict)
    labels: Callable[[], list[str]] | None = None
    fetches: tuple[str, ...] = ()


def lazy_builder(module: str, function: str, arch: str) -> Callable[[VideoConfig, dict | None], nn.Module]:
    """A ``build`` that imports ``module`` (a family's torch code) only when a backbone is built and
    calls ``module.function(arch, config, state_dict)``: registering a family loads no torch."""

    def build(config: VideoConfig, state_dict: dict | None) -> nn.Module:
        return getattr(importlib.import_module(module), function)(arch, config, state_dict)

    build.__qualname__ = f"{function}[{arch}]"
    return build
