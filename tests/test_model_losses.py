"""Loss math at chosen points (Eq. 23-26)."""

from __future__ import annotations

import math

import pytest
import torch

from cmagrounding.errors import ConfigError
from cmagrounding.model import CMAOutput, GroundingLoss, LossConfig
from cmagrounding.model.losses import (
    semantic_diversity_loss,
    smooth_l1_regression,
    task_regression,
    temporal_attention_loss,
)


@pytest.mark.parametrize("alpha,beta", [(10.0, 0.1), (2.0, 0.4), (2.0, 0.2)])
def test_task_loss_values(alpha, beta):
    x = torch.tensor([0.0, beta / 2, -beta / 2, 0.5, -0.9])
    expected = torch.tensor([
        0.0,
        alpha * (beta / 2) ** 2,
        alpha * (beta / 2) ** 2,
        2 * alpha * beta * 0.5 - alpha * beta**2,
        2 * alpha * beta * 0.9 - alpha * beta**2,
    ])
    torch.testing.assert_close(task_regression(x, alpha, beta), expected)


@pytest.mark.parametrize("alpha,beta", [(10.0, 0.1), (2.0, 0.4)])
def test_task_loss_continuous_in_value_and_slope_at_beta(alpha, beta):
    eps = 1e-6
    for sign in (1.0, -1.0):
        pts = torch.tensor([sign * (beta - eps), sign * beta, sign * (beta + eps)], dtype=torch.float64, requires_grad=True)
        y = task_regression(pts, alpha, beta)
        y.sum().backward()
        assert abs(float(y[1].detach()) - alpha * beta**2) < 1e-12  # value alpha beta^2 at |x| = beta
        assert abs(float(y[0].detach()) - float(y[2].detach())) < 1e-4
        slopes = pts.grad.tolist()
        for s in slopes:  # slope 2 alpha beta on both sides
            assert abs(abs(s) - 2 * alpha * beta) < 1e-3, slopes
        assert all(math.copysign(1, s) == sign for s in slopes)


def test_smooth_l1_is_eq_23():
    x = torch.tensor([0.0, 0.5, -0.5, 1.0, 2.0, -3.0])
    torch.testing.assert_close(smooth_l1_regression(x), torch.tensor([0.0, 0.125, 0.125, 0.5, 1.5, 2.5]))


def test_temporal_attention_loss():
    a = torch.tensor([[0.5, 0.25, 0.25, 0.0]])
    logits = torch.log(a)  # -inf where a = 0 (padding)
    mask = torch.tensor([[True, True, False, False]])
    expected = -(math.log(0.5) + math.log(0.25)) / 2
    assert abs(float(temporal_attention_loss(logits, mask)) - expected) < 1e-6


def test_semantic_diversity_loss():
    eye = torch.tensor([[[1.0, 0.0, 0.0], [0.0, 1.0, 0.0]]])  # orthonormal rows: zero loss
    assert float(semantic_diversity_loss(eye)) == 0.0
    same = torch.tensor([[[0.5, 0.5], [0.5, 0.5]]])  # A A^T = 0.5 everywhere -> 2 * 0.25 + 2 * 0.25
    assert abs(float(semantic_diversity_loss(same)) - 1.0) < 1e-6


def test_total_is_weighted_sum():
    span = torch.tensor([[0.2, 0.6]])
    logits = torch.tensor([[0.0, 1.0, 2.0]])
    a_spe = torch.tensor([[[0.5, 0.5], [1.0, 0.0]]])
    out = CMAOutput(span=span, attention=torch.softmax(logits, -1), attention_logits=logits, phrase_attention=a_spe)
    target = torch.tensor([[0.1, 0.65]])
    mask = torch.tensor([[False, True, True]])
    cfg = LossConfig(alpha=10, beta=0.1, lambda_ta=0.5, lambda_sd=2.0)
    lo = GroundingLoss(cfg)(out, target, mask)
    reg = 10 * 0.1**2 + 10 * 0.05**2  # |0.1| hits beta exactly: alpha beta^2; |0.05| < beta
    assert abs(float(lo.regression) - reg) < 1e-6
    torch.testing.assert_close(lo.total, lo.regression + 0.5 * lo.attention + 2.0 * lo.diversity)
    smooth = GroundingLoss(LossConfig(kind="smooth_l1"))(out, target, mask)
    assert abs(float(smooth.regression) - (0.5 * 0.01 + 0.5 * 0.0025)) < 1e-6


def test_simple_model_has_no_diversity_term():
    logits = torch.zeros(1, 4)
    out = CMAOutput(span=torch.tensor([[0.1, 0.2]]), attention=torch.softmax(logits, -1), attention_logits=logits, phrase_attention=None)
    lo = GroundingLoss()(out, torch.tensor([[0.1, 0.2]]), torch.ones(1, 4, dtype=torch.bool))
    assert float(lo.diversity) == 0.0 and float(lo.regression) == 0.0


def test_bad_loss_config():
    with pytest.raises(ConfigError, match="unknown loss kind"):
        LossConfig(kind="l2")
    with pytest.raises(ConfigError, match="beta must be positive"):
        LossConfig(beta=0)
