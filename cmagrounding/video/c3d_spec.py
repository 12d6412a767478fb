"""C3D's registration: ``c3d_sports1m``, ReLU(fc7) 4096-d, with ActivityNet's PCA to 500-d optional.

Preset: the public port's preprocessing (native frame rate, 16-frame windows every 8 frames, short
side 128, centre crop 112, RGB in [0, 255], no mean subtraction). The PCA comes from
``extra={"pca_path": ..., "pca_dim": 500}`` and, when ``extra["pca_sha256"]`` is given, must have that
checksum. The network is ``cmagrounding.video.c3d``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from cmagrounding._io import state_dict_sha256
from cmagrounding.errors import ConfigError
from cmagrounding.video.registry import register_all
from cmagrounding.video.spec import BackboneSpec
from cmagrounding.video.weights import check_sha256, load_strict

if TYPE_CHECKING:
    from torch import nn

    from cmagrounding.video.config import VideoConfig

C3D_PRESET = dict(
    fps=None, clip_len=16, stride=8, resize=128, crop=112, value_range=(0.0, 255.0),
    mean=(0.0, 0.0, 0.0), std=(1.0, 1.0, 1.0), layer="fc7", feature_dim=4096, weights=None,
)  # fmt: skip


def build_c3d(config: VideoConfig, state_dict: dict | None) -> nn.Module:
    """``C3DWithPCA``: C3D with the class count of ``state_dict`` (487 without), PCA when configured."""
    import torch

    from cmagrounding.video.c3d import C3D, C3DPCA, C3DWithPCA  # the network: loads torch

    num_classes = int(state_dict["fc8.weight"].shape[0]) if state_dict and "fc8.weight" in state_dict else 487
    if state_dict is not None:
        with torch.device("meta"):  # 78 M parameters: skip the random init the weights replace anyway
            model = C3D(num_classes=num_classes, layer=config.layer)
        tensors = {k: torch.as_tensor(v).float() for k, v in state_dict.items()}
        load_strict(model, tensors, source=f"weights for {config.extractor}", assign=True)
    else:
        model = C3D(num_classes=num_classes, layer=config.layer)
    pca = None
    if config.extra.get("pca_path"):
        pca = C3DPCA.from_hdf5(config.extra["pca_path"], k=int(config.extra.get("pca_dim", 500)))
        check_sha256(state_dict_sha256(pca.state_dict()), config.extra.get("pca_sha256") or None, what=f"PCA {config.extra['pca_path']}")
    dim = pca.U.shape[1] if pca is not None else 4096
    if config.feature_dim != dim:
        raise ConfigError(f"c3d features are {dim}-d with these settings, config.feature_dim is {config.feature_dim}")
    return C3DWithPCA(model, pca)


SPECS = (
    BackboneSpec(
        "c3d_sports1m", "C3D Sports-1M (public c3d.pickle layout), ReLU(fc7) 4096-d, optional ActivityNet PCA to 500-d",
        build_c3d, C3D_PRESET,
    ),
)  # fmt: skip
register_all(*SPECS)  # self-registration, as timm's and torchvision's model files do
