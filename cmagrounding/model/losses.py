"""Training losses (Eq. 21-26): regression, temporal attention and semantic diversity."""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from cmagrounding.model.config import LossConfig
from cmagrounding.model.network import CMAOutput


def task_regression(x: torch.Tensor, alpha: float, beta: float) -> torch.Tensor:
    """Eq. 24 elementwise: alpha x^2 for |x| < beta, 2 alpha beta |x| - alpha beta^2 otherwise.

    This equals 2 alpha beta * Huber_beta(x) (PyTorch's smooth_l1 with ``beta``), so it is continuous
    in value (alpha beta^2) and slope (2 alpha beta) at |x| = beta.
    """
    return 2.0 * alpha * beta * F.smooth_l1_loss(x, torch.zeros_like(x), beta=beta, reduction="none")


def smooth_l1_regression(x: torch.Tensor) -> torch.Tensor:
    """Eq. 23 elementwise: 0.5 x^2 for |x| < 1, |x| - 0.5 otherwise (Table 6 ablation)."""
    return F.smooth_l1_loss(x, torch.zeros_like(x), beta=1.0, reduction="none")


def _masked_mean(per_sample: torch.Tensor, rows: torch.Tensor | None) -> torch.Tensor:
    """Mean of (B,) over all rows, or over the True ``rows`` (0 when there are none)."""
    if rows is None:
        return per_sample.mean()
    keep = rows.to(per_sample.dtype)
    return (per_sample * keep).sum() / keep.sum().clamp_min(1.0)


def temporal_attention_loss(
    attention_logits: torch.Tensor, clip_mask: torch.Tensor, rows: torch.Tensor | None = None
) -> torch.Tensor:
    """Eq. 25 per sample, averaged over the batch: -sum 1(a_i) log a_i / sum 1(a_i).

    attention_logits (B, N) (-inf on padding), clip_mask (B, N) bool = clips inside the ground truth.
    log a is taken as log_softmax of the logits, exact and free of log(0). ``rows`` (B,) bool, when
    given, averages over those samples only (the others have no moment).
    """
    log_a = torch.log_softmax(attention_logits.float(), dim=-1)
    inside = clip_mask.to(log_a.dtype)
    count = inside.sum(1).clamp_min(1.0)
    per_sample = -(log_a.masked_fill(~clip_mask, 0.0) * inside).sum(1) / count
    return _masked_mean(per_sample, rows)


def semantic_diversity_loss(phrase_attention: torch.Tensor) -> torch.Tensor:
    """Eq. 26 per sample, averaged over the batch: ||A A^T - I||_F^2 with A (B, K, L)."""
    a = phrase_attention.float()
    eye = torch.eye(a.shape[1], device=a.device, dtype=a.dtype)
    return ((a @ a.transpose(1, 2) - eye) ** 2).sum((1, 2)).mean()


@dataclass
class LossOutput:
    """Scalar losses of a batch: total = regression + lambda_ta * attention + lambda_sd * diversity
    (+ confidence_weight * confidence, for a network with the confidence head)."""

    total: torch.Tensor
    regression: torch.Tensor
    attention: torch.Tensor
    diversity: torch.Tensor
    confidence: torch.Tensor | None = None  # the head's binary cross-entropy; None without the head


class GroundingLoss(nn.Module):
    """L_all = L_reg + lambda_ta L_ta + lambda_sd L_sd (Eq. 21).

    L_reg applies Eq. 24 (or Eq. 23) to the start and end errors of the normalized span (Eq. 22),
    summed over the two boundaries and averaged over the batch. L_sd is 0 for the simple model,
    which has no SPE matrix.
    """

    def __init__(self, config: LossConfig | None = None) -> None:
        super().__init__()
        self.config = config or LossConfig()

    def regression(self, pred: torch.Tensor, target: torch.Tensor, rows: torch.Tensor | None = None) -> torch.Tensor:
        """pred, target (B, 2) normalized -> scalar (the mean over ``rows`` (B,) bool when given)."""
        x = pred.float() - target.float()
        c = self.config
        per = task_regression(x, c.alpha, c.beta) if c.kind == "task" else smooth_l1_regression(x)
        return _masked_mean(per.sum(-1), rows)

    def forward(
        self, output: CMAOutput, target: torch.Tensor, clip_mask: torch.Tensor, confidence: torch.Tensor | None = None
    ) -> LossOutput:
        """output of CMANetwork; target (B, 2) normalized (start, end); clip_mask (B, N) bool.

        ``confidence`` (B,) float, for a network with the confidence head (an addition to the
        paper): 1 = the clips hold the whole moment, 0 = none of it (such a sample has no span:
        its regression and attention terms are left out), NaN = no label (a training video as
        in the paper: regression and attention only). The head's loss is the binary
        cross-entropy of its logit, averaged over the labelled samples.
        """
        if target.shape != output.span.shape:
            raise ValueError(f"target must have shape {tuple(output.span.shape)}, got {tuple(target.shape)}")
        if clip_mask.shape != output.attention.shape:
            raise ValueError(f"clip_mask must have shape {tuple(output.attention.shape)}, got {tuple(clip_mask.shape)}")
        c = self.config
        logit = output.confidence_logit
        if confidence is not None and logit is None:
            raise ValueError("confidence labels were given but the network has no confidence head (confidence_head=False)")
        if logit is not None and confidence is None:
            raise ValueError(
                "the network has a confidence head but the batch has no confidence labels; train it on "
                "windows with and without the moment (cmagrounding.training.confidence_data)"
            )
        rows = None
        if confidence is not None:
            confidence = confidence.float().reshape(-1)
            if confidence.shape[0] != target.shape[0]:
                raise ValueError(f"confidence must have shape ({target.shape[0]},), got {tuple(confidence.shape)}")
            rows = confidence != 0.0  # NaN != 0 is True: unlabelled samples keep their span terms
        reg = self.regression(output.span, target, rows)
        ta = temporal_attention_loss(output.attention_logits, clip_mask, rows)
        if output.phrase_attention is not None:
            sd = semantic_diversity_loss(output.phrase_attention)
        else:
            sd = reg.new_zeros(())
        total = reg + c.lambda_ta * ta + c.lambda_sd * sd
        conf = None
        if logit is not None:
            labelled = ~torch.isnan(confidence)
            per = F.binary_cross_entropy_with_logits(
                logit.float(), torch.nan_to_num(confidence, nan=0.0), reduction="none"
            )
            conf = _masked_mean(per, labelled)
            total = total + c.confidence_weight * conf
        return LossOutput(total=total, regression=reg, attention=ta, diversity=sd, confidence=conf)
