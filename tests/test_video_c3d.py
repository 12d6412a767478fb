"""C3D: the public c3d.pickle layout (fixture), strict loading, conversion, fc6/fc7 features, PCA."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from cmagrounding.errors import WeightsError
from cmagrounding.video.c3d import C3D, C3DPCA, convert_c3d_pickle, public_c3d_layout

LAYOUT = Path(__file__).parent / "fixtures" / "c3d_public_layout.json"


pytestmark = pytest.mark.usefixtures("one_torch_thread")


def random_public_state_dict(fill: float | None = None) -> dict[str, torch.Tensor]:
    """Random tensors (or constant ``fill``) with exactly the keys and shapes of DavideA/c3d-pytorch's
    c3d.pickle (fixture)."""
    g = torch.Generator().manual_seed(0)
    layout = json.loads(LAYOUT.read_text())["tensors"]
    if fill is not None:
        return {k: torch.full(shape, fill) for k, shape in layout.items()}
    return {k: torch.randn(*shape, generator=g) * 0.01 for k, shape in layout.items()}


def test_layout_fixture_matches_the_model():
    layout = {k: tuple(v) for k, v in json.loads(LAYOUT.read_text())["tensors"].items()}
    assert public_c3d_layout() == layout
    assert layout["fc6.weight"] == (4096, 8192) and layout["fc8.weight"] == (487, 4096)
    with torch.device("meta"):
        assert C3D().pool5.padding == (0, 1, 1)


def test_convert_and_load_strict(tmp_path):
    src = tmp_path / "c3d.pickle"
    torch.save(random_public_state_dict(fill=0.5), src)  # the public file is a torch.save'd state dict
    dst = tmp_path / "c3d.safetensors"
    sha = convert_c3d_pickle(src, dst)
    from safetensors.torch import load_file

    with torch.device("meta"):  # keys and shapes are what is checked; skip 78 M random inits
        model = C3D()
    model.load_state_dict(load_file(str(dst)), strict=True, assign=True)
    assert len(sha) == 64 and float(model.fc7.bias.detach()[0]) == 0.5
    bad = random_public_state_dict(fill=0.0)
    bad["fc6.weight"] = bad["fc6.weight"][:, :100]
    torch.save(bad, tmp_path / "bad.pickle")
    with pytest.raises(WeightsError, match=r"fc6.weight: expected \(4096, 8192\), found \(4096, 100\)"):
        convert_c3d_pickle(tmp_path / "bad.pickle", tmp_path / "bad.safetensors")


def test_features_and_pca(tmp_path):
    h5py = pytest.importorskip("h5py")
    rng = np.random.default_rng(0)
    U = np.linalg.qr(rng.standard_normal((4096, 600)))[0].astype(np.float32)  # orthonormal columns
    x_mean = rng.standard_normal((1, 4096)).astype(np.float32)
    pca_path = tmp_path / "PCA_activitynet_v1-3.hdf5"
    with h5py.File(pca_path, "w") as f:  # the official file's layout: a "data" group
        g = f.create_group("data")
        g["U"], g["S"], g["x_mean"] = U, np.ones(600, np.float32), x_mean
    from cmagrounding.video.config import VideoConfig
    from cmagrounding.video.registry import build_backbone

    default_config = VideoConfig.for_extractor

    torch.manual_seed(0)  # random weights (loading a file is tested above)
    config = default_config("c3d_sports1m", weights=None, feature_dim=500,
                            extra={"pca_path": str(pca_path), "pca_dim": 500})  # fmt: skip
    module, _ = build_backbone(config)
    c3d = module.c3d
    seen = {}
    for name in ("pool5", "fc6", "fc7"):
        getattr(c3d, name).register_forward_hook(lambda _m, _i, out, name=name: seen.__setitem__(name, out))
    x = torch.rand(1, 3, 16, 112, 112) * 255
    with torch.inference_mode():
        reduced = module.features(x)  # the only pass through the convolutions (they dominate the cost)
        fc6, fc7 = torch.relu(seen["fc6"]), torch.relu(seen["fc7"])
        assert seen["pool5"].shape == (1, 512, 1, 4, 4)  # pool5's (0, 1, 1) padding: 7x7 -> 4x4
        assert torch.allclose(fc7, torch.relu(c3d.fc7(fc6)))
        pool5 = seen["pool5"].reshape(1, 8192)
        c3d.pool5_features = lambda _: pool5  # reuse it for the other heads: no second pass
        logits = module(x)
        assert torch.allclose(logits, c3d.fc8(fc7))
        c3d.layer = "fc6"
        assert torch.allclose(c3d.features(x), fc6)
    assert reduced.shape == (1, 500) and logits.shape == (1, 487)
    assert fc7.abs().sum() > 0
    expected = (fc7.numpy() - x_mean) @ U[:, :500]  # the documented ActivityNet reduction
    assert np.allclose(reduced.numpy(), expected, atol=1e-4)
    del c3d.pool5_features
    with pytest.raises(ValueError, match=r"\(B, 3, 16, 112, 112\)"):
        module.features(torch.zeros(1, 3, 8, 112, 112))


def test_pca_file_errors(tmp_path):
    h5py = pytest.importorskip("h5py")
    path = tmp_path / "pca.hdf5"
    with h5py.File(path, "w") as f:
        f["U"] = np.zeros((8, 8), np.float32)
    with pytest.raises(WeightsError, match=r"lacks datasets \['S', 'x_mean'\]"):
        C3DPCA.from_hdf5(path)
