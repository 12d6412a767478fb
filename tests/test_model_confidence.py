"""The confidence head (an addition to the paper): off in the presets, its output, its loss and masks."""

from __future__ import annotations

import hashlib
import math

import numpy as np
import pytest
import torch

from cmagrounding.errors import ConfigError
from cmagrounding.model import CMANetwork, GroundingLoss, LossConfig
from cmagrounding.model.config import CMAConfig
from cmagrounding.model.presets import PRESETS, get_preset

# the paper presets' parameter counts, tensor counts and a digest of their (name, shape) list,
# measured on the network before the head existed: the addition must not change them
PRESET_NETWORKS = {
    "activitynet-full": (18_011_678, 104, "3f14d181c7e6ff35"),
    "activitynet-simple": (16_305_438, 98, "297dc7ccce499646"),
    "charades-full": (14_759_666, 104, "e965f76a3b976157"),
    "charades-simple": (13_578_226, 98, "1a9ed5218cdd2d47"),
}


def _small(**kw) -> CMAConfig:
    return CMAConfig(video_dim=8, vocab_size=20, word_dim=6, num_clips=10, max_words=5, hidden=16, lstm_hidden=8,
                     spe_hidden=8, head_hidden=16, num_heads=2, encoder_layers=1, decoder_layers=1, **kw)


def _batch(B=4, N=10, L=5, seed=0):
    g = torch.Generator().manual_seed(seed)
    video = torch.randn(B, N, 8, generator=g)
    vmask = torch.ones(B, N, dtype=torch.bool)
    words = torch.randint(1, 20, (B, L), generator=g)
    wmask = torch.ones(B, L, dtype=torch.bool)
    return video, vmask, words, wmask


@pytest.mark.parametrize("name", sorted(PRESETS))
def test_presets_are_the_papers_network_unchanged(name):
    p = get_preset(name)
    assert p.model.confidence_head is False
    net = CMANetwork(p.model)
    assert net.confidence is None
    sd = net.state_dict()
    digest = hashlib.sha256(";".join(f"{k}:{tuple(v.shape)}" for k, v in sd.items()).encode()).hexdigest()[:16]
    assert (sum(x.numel() for x in net.parameters()), len(sd), digest) == PRESET_NETWORKS[name]
    assert sorted(PRESETS) == sorted(PRESET_NETWORKS)


def test_head_output_and_keys():
    torch.manual_seed(0)
    net = CMANetwork(_small(confidence_head=True, confidence_hidden=12)).eval()
    out = net(*_batch())
    assert out.confidence_logit.shape == (4,)
    assert {k for k in net.state_dict() if k.startswith("confidence.")} == {
        "confidence.mlp.0.weight", "confidence.mlp.0.bias", "confidence.mlp.2.weight", "confidence.mlp.2.bias"}
    plain = CMANetwork(_small()).eval()
    assert plain(*_batch()).confidence_logit is None
    extra = sum(p.numel() for p in net.parameters()) - sum(p.numel() for p in plain.parameters())
    assert extra == 16 * 12 + 12 + 12 + 1


def test_bad_head_settings_raise():
    with pytest.raises(ConfigError, match="confidence_hidden"):
        _small(confidence_head=True, confidence_hidden=0)
    with pytest.raises(ConfigError, match="confidence_head"):
        _small(confidence_head="yes")
    with pytest.raises(ConfigError, match="confidence_weight"):
        LossConfig(confidence_weight=-1.0)


def test_loss_bce_and_masks():
    torch.manual_seed(0)
    net = CMANetwork(_small(confidence_head=True)).eval()
    video, vmask, words, wmask = _batch()
    out = net(video, vmask, words, wmask)
    target = torch.tensor([[0.1, 0.3], [0.2, 0.6], [0.0, 0.0], [0.5, 0.9]])
    clip = torch.zeros(4, 10, dtype=torch.bool)
    clip[0, 1:4] = clip[1, 2:7] = clip[3, 5:10] = True
    labels = torch.tensor([1.0, float("nan"), 0.0, 1.0])
    lo = GroundingLoss(LossConfig(confidence_weight=2.0))(out, target, clip, labels)
    # BCE over the labelled rows 0, 2, 3 only
    logit = out.confidence_logit.detach()
    p = torch.sigmoid(logit)
    bce = -(torch.log(p[0]) + torch.log(1 - p[2]) + torch.log(p[3])) / 3
    assert float(lo.confidence.detach()) == pytest.approx(float(bce), rel=1e-5)
    # regression and attention over the rows with a moment (0, 1, 3): the negative is left out
    plain = GroundingLoss(LossConfig())
    keep = torch.tensor([0, 1, 3])
    sub = type(out)(span=out.span[keep], attention=out.attention[keep], attention_logits=out.attention_logits[keep],
                    phrase_attention=None, confidence_logit=None)
    ref = plain(sub, target[keep], clip[keep])
    assert float(lo.regression) == pytest.approx(float(ref.regression), rel=1e-6)
    assert float(lo.attention) == pytest.approx(float(ref.attention), rel=1e-6)
    assert float(lo.total) == pytest.approx(float(ref.total) + 2.0 * float(bce), rel=1e-5)
    # the negative's target does not matter at all
    target2 = target.clone()
    target2[2] = torch.tensor([0.4, 0.99])
    clip2 = clip.clone()
    clip2[2, :] = True
    lo2 = GroundingLoss(LossConfig(confidence_weight=2.0))(out, target2, clip2, labels)
    assert float(lo2.total) == pytest.approx(float(lo.total), rel=1e-6)


def test_loss_gradients_reach_the_head_and_labels_are_required():
    torch.manual_seed(0)
    net = CMANetwork(_small(confidence_head=True)).train()
    video, vmask, words, wmask = _batch()
    out = net(video, vmask, words, wmask)
    target = torch.tensor([[0.1, 0.3]] * 4)
    clip = torch.zeros(4, 10, dtype=torch.bool)
    clip[:, 1:4] = True
    with pytest.raises(ValueError, match="no confidence labels"):
        GroundingLoss()(out, target, clip)
    GroundingLoss()(out, target, clip, torch.tensor([1.0, 0.0, 0.0, 1.0])).total.backward()
    assert net.confidence.mlp[2].weight.grad.abs().sum() > 0
    plain_out = CMANetwork(_small())(video, vmask, words, wmask)
    with pytest.raises(ValueError, match="no confidence head"):
        GroundingLoss()(plain_out, target, clip, torch.ones(4))


def test_loss_without_head_is_unchanged():
    torch.manual_seed(0)
    out = CMANetwork(_small()).eval()(*_batch())
    target = torch.tensor([[0.1, 0.3]] * 4)
    clip = torch.zeros(4, 10, dtype=torch.bool)
    clip[:, 1:4] = True
    lo = GroundingLoss()(out, target, clip)
    assert lo.confidence is None
    assert float(lo.total) == pytest.approx(float(lo.regression + lo.attention), rel=1e-6)
    assert math.isfinite(float(lo.total)) and np.isfinite(float(lo.attention))
