"""C3D (Tran et al. 2015) with the public Sports-1M layout, fc6/fc7 features and ActivityNet's PCA.

Parameter names are those of the public PyTorch port (DavideA/c3d-pytorch, weights ``c3d.pickle``,
a ``torch.save``'d state dict): ``conv1``, ``conv2``, ``conv3a``, ``conv3b``, ``conv4a``, ``conv4b``,
``conv5a``, ``conv5b``, ``fc6``, ``fc7`` (4096), ``fc8`` (487 Sports-1M classes); pool5 pads (0, 1, 1).
Input (B, 3, 16, 112, 112). That port feeds RGB values in [0, 255] with no mean subtraction.

Features: ReLU(fc6) or ReLU(fc7) (Caffe's in-place ReLU overwrote the fc blobs the original
features were read from). ActivityNet Captions' released features are fc7 reduced to 500-d with
``PCA_activitynet_v1-3.hdf5`` (U, S, x_mean): ``(x - x_mean) @ U[:, :500]``, no whitening, as its
authors document for the same-format THUMOS14 file (escorciav/daps, data/models/README.md).
No C3D weights ship in any package we can reach: tests use random weights.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from cmagrounding.errors import MissingDependencyError, WeightsError
from cmagrounding.video.weights import check_layout, load_state_dict_file, save_state_dict

LAYERS = ("fc6", "fc7")


class C3D(nn.Module):
    """C3D. ``features(x)`` -> (B, 4096) ReLU(fc6 or fc7); ``forward(x)`` -> (B, 487) logits."""

    feature_dim = 4096

    def __init__(self, num_classes: int = 487, layer: str = "fc7") -> None:
        super().__init__()
        if layer not in LAYERS:
            raise ValueError(f"C3D feature layer must be one of {LAYERS}, got {layer!r}")
        self.layer = layer
        self.conv1 = nn.Conv3d(3, 64, 3, padding=1)
        self.pool1 = nn.MaxPool3d((1, 2, 2), (1, 2, 2))
        self.conv2 = nn.Conv3d(64, 128, 3, padding=1)
        self.pool2 = nn.MaxPool3d(2, 2)
        self.conv3a = nn.Conv3d(128, 256, 3, padding=1)
        self.conv3b = nn.Conv3d(256, 256, 3, padding=1)
        self.pool3 = nn.MaxPool3d(2, 2)
        self.conv4a = nn.Conv3d(256, 512, 3, padding=1)
        self.conv4b = nn.Conv3d(512, 512, 3, padding=1)
        self.pool4 = nn.MaxPool3d(2, 2)
        self.conv5a = nn.Conv3d(512, 512, 3, padding=1)
        self.conv5b = nn.Conv3d(512, 512, 3, padding=1)
        self.pool5 = nn.MaxPool3d(2, 2, padding=(0, 1, 1))
        self.fc6 = nn.Linear(8192, 4096)
        self.fc7 = nn.Linear(4096, 4096)
        self.fc8 = nn.Linear(4096, num_classes)

    def pool5_features(self, x: torch.Tensor) -> torch.Tensor:
        """(B, 3, 16, 112, 112) -> (B, 8192) flattened pool5."""
        B, C, T, H, W = x.shape
        if (C, T, H, W) != (3, 16, 112, 112):
            raise ValueError(f"C3D expects clips of shape (B, 3, 16, 112, 112), got {tuple(x.shape)}")
        h = self.pool1(F.relu(self.conv1(x)))
        h = self.pool2(F.relu(self.conv2(h)))
        h = self.pool3(F.relu(self.conv3b(F.relu(self.conv3a(h)))))
        h = self.pool4(F.relu(self.conv4b(F.relu(self.conv4a(h)))))
        h = self.pool5(F.relu(self.conv5b(F.relu(self.conv5a(h)))))  # (B, 512, 1, 4, 4)
        return h.reshape(B, 8192)

    def features(self, x: torch.Tensor) -> torch.Tensor:
        h = F.relu(self.fc6(self.pool5_features(x)))
        return h if self.layer == "fc6" else F.relu(self.fc7(h))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc8(F.relu(self.fc7(F.relu(self.fc6(self.pool5_features(x))))))


class C3DPCA(nn.Module):
    """ActivityNet's PCA of C3D fc7: ``(x - x_mean) @ U[:, :k]`` (k = 500). Input (B, 4096) -> (B, k)."""

    def __init__(self, U: np.ndarray, x_mean: np.ndarray, k: int = 500) -> None:
        super().__init__()
        U = np.asarray(U, dtype=np.float32)
        x_mean = np.asarray(x_mean, dtype=np.float32).reshape(-1)
        if U.ndim != 2 or U.shape[0] != x_mean.shape[0]:
            # the official file may store U transposed; orient it as (input dim, components)
            if U.ndim == 2 and U.shape[1] == x_mean.shape[0]:
                U = U.T
            else:
                raise WeightsError(f"PCA shapes do not fit: U {U.shape}, x_mean {x_mean.shape}")
        if k > U.shape[1]:
            raise WeightsError(f"PCA has {U.shape[1]} components, {k} requested")
        self.register_buffer("U", torch.from_numpy(np.ascontiguousarray(U[:, :k])))
        self.register_buffer("x_mean", torch.from_numpy(x_mean))

    @classmethod
    def from_hdf5(cls, path: str | os.PathLike, k: int = 500) -> C3DPCA:
        """Read ``U``, ``S``, ``x_mean`` from an HDF5 file such as ``PCA_activitynet_v1-3.hdf5``."""
        try:
            import h5py  # optional: only this reader needs it
        except ImportError as exc:
            raise MissingDependencyError("reading a C3D PCA file needs h5py: pip install h5py") from exc
        path = Path(path)
        if not path.is_file():
            raise WeightsError(f"PCA file not found: {path}")
        with h5py.File(path, "r") as f:
            # ActivityNet's file keeps them in a "data" group; DAPs' THUMOS14 file at the root
            group = f["data"] if "data" in f and isinstance(f["data"], h5py.Group) else f
            missing = [k_ for k_ in ("U", "S", "x_mean") if k_ not in group]
            if missing:
                raise WeightsError(f"{path}: PCA file lacks datasets {missing} (expected U, S, x_mean)")
            U, x_mean = group["U"][()], group["x_mean"][()]
        return cls(U, x_mean, k)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return (x - self.x_mean.to(x.dtype)) @ self.U.to(x.dtype)


class C3DWithPCA(nn.Module):
    """The ``c3d_sports1m`` extractor: ``features(x)`` = C3D's (B, 4096), reduced by the PCA when
    one is given -> (B, k); ``forward(x)`` = C3D's logits."""

    def __init__(self, c3d: C3D, pca: C3DPCA | None) -> None:
        super().__init__()
        self.c3d = c3d
        self.pca = pca

    @property
    def inner(self) -> nn.Module:
        """The public-layout network (``cmagrounding.video.registry.public_state_dict``)."""
        return self.c3d

    def features(self, x: torch.Tensor) -> torch.Tensor:
        f = self.c3d.features(x)
        return self.pca(f.float()) if self.pca is not None else f

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.c3d(x)


def public_c3d_layout(num_classes: int = 487) -> dict[str, tuple[int, ...]]:
    """``{key: shape}`` of the public ``c3d.pickle`` state dict."""
    with torch.device("meta"):  # shapes only: no memory, no random init
        return {k: tuple(v.shape) for k, v in C3D(num_classes).state_dict().items()}


def convert_c3d_pickle(src: str | os.PathLike, dst: str | os.PathLike) -> str:
    """Convert a public-layout ``c3d.pickle`` (``torch.save``'d state dict) to safetensors.

    Loads with ``torch.load(weights_only=True)``, checks every key and shape, writes ``dst``
    atomically; returns the weights' ``state_dict_sha256``.
    """
    state: dict[str, Any] = load_state_dict_file(src)
    num_classes = int(state["fc8.weight"].shape[0]) if "fc8.weight" in state else 487
    expected = public_c3d_layout(num_classes)
    check_layout(expected, state, source=str(src), target="the public C3D layout (c3d.pickle)")
    tensors = {k: torch.as_tensor(state[k]).float() for k in expected}
    return save_state_dict(tensors, dst, metadata={"source": str(src), "layout": "c3d-pytorch (Sports-1M)"})
