"""Temporal spans: seconds <-> the network's [0, 1] (Eq. 22), seconds <-> clips, the Eq. 25 clip
mask, and the one temporal IoU every part of the library scores with.

Inside the network a span is normalized by the video's duration T (Eq. 22: the regression targets
are ``t_s / T`` and ``t_e / T``); it becomes seconds only at the facade. Shapes: N clips.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np

#: The scoring convention (LGI's and Moment-DETR's; docs/evaluation.md), stated with every metric.
IOU_CONVENTION = (
    "IoU = intersection / (max(ends) - min(starts)); R1@m counts IoU >= m (LGI, Moment-DETR); "
    "mIoU = mean top-1 IoU; predictions and ground truth clipped to [0, duration]"
)


def seconds_to_unit(start: float, end: float, duration: float) -> tuple[float, float]:
    """Eq. 22's targets: a span in seconds -> ``(t_s / T, t_e / T)``, each clipped to [0, 1]."""
    if not duration > 0:
        raise ValueError(f"duration must be positive, got {duration!r}")
    return min(max(start / duration, 0.0), 1.0), min(max(end / duration, 0.0), 1.0)


def unit_to_seconds(t_s: float, t_e: float, duration: float, num_clips: int) -> tuple[float, float, bool]:
    """Inverse of Eq. 22 at the facade: a normalized span -> ``(start, end, widened)`` seconds.

    ``start = t_s * T``, ``end = t_e * T``, clamped to the video. A span narrower than one clip
    (``T / num_clips``) is widened to one clip around its centre and shifted inside the video, so
    ``0 <= start < end <= T`` holds for any input.
    """
    if not duration > 0:
        raise ValueError(f"duration must be positive, got {duration!r}")
    lo, hi = sorted((min(max(t_s, 0.0), 1.0), min(max(t_e, 0.0), 1.0)))
    start, end = lo * duration, hi * duration
    width = duration / max(int(num_clips), 1)
    if end - start >= width:
        return start, end, False
    centre = 0.5 * (start + end)
    start = min(max(centre - 0.5 * width, 0.0), duration - width)
    return start, start + width, True


def clip_centres(clip_times: np.ndarray) -> np.ndarray:
    """(n,) centre in seconds of each clip, from its (n, 2) ``(start, end)`` seconds."""
    return np.asarray(clip_times, dtype=np.float64).reshape(-1, 2).mean(axis=1)


def clips_in_span(clip_times: np.ndarray, start: float, end: float) -> np.ndarray:
    """(n,) bool: the clips whose centre lies inside ``[start, end]`` seconds."""
    centres = clip_centres(clip_times)
    return (centres >= start) & (centres <= end)


def clip_mask_for_span(start: float, end: float, duration: float, num_valid: int, num_clips: int) -> np.ndarray:
    """Ground-truth clip mask (N,) bool for the temporal attention loss (Eq. 25).

    LGI's rule (the paper is silent; fallback): ``s = min(round(t_s / T * n), n - 1)``,
    ``e = max(round(t_e / T * n), s + 1)``, ``mask[s:e+1] = 1`` over the ``num_valid`` real clips
    (clamped to them).
    """
    if duration <= 0:
        raise ValueError(f"duration must be positive, got {duration}")
    n = num_valid
    s = min(int(round(start / duration * n)), n - 1)
    e = max(int(round(end / duration * n)), s + 1)
    mask = np.zeros(num_clips, dtype=bool)
    mask[max(s, 0) : min(e + 1, n)] = True
    return mask


def temporal_iou(pred: np.ndarray | Sequence[float], gt: np.ndarray | Sequence[float]) -> np.ndarray:
    """IoU of spans ``pred`` (M, 2) and ``gt`` (M, 2), row by row -> (M,) float64.

    IoU = intersection / (max(ends) - min(starts)), the union whenever the spans overlap. Rows are
    (start, end); reversed rows are reordered first. Two identical zero-length spans score 1 (the
    same point), a zero-length span inside another 0.
    """
    pred = np.sort(np.asarray(pred, dtype=np.float64).reshape(-1, 2), axis=1)
    gt = np.sort(np.asarray(gt, dtype=np.float64).reshape(-1, 2), axis=1)
    if pred.shape != gt.shape:
        raise ValueError(f"pred {pred.shape} and gt {gt.shape} must have the same shape (M, 2)")
    inter = np.clip(np.minimum(pred[:, 1], gt[:, 1]) - np.maximum(pred[:, 0], gt[:, 0]), 0.0, None)
    outer = np.maximum(pred[:, 1], gt[:, 1]) - np.minimum(pred[:, 0], gt[:, 0])
    iou = np.divide(inter, outer, out=np.zeros_like(inter), where=outer > 0)
    iou[outer <= 0] = 1.0  # both spans are the same point
    return iou


def span_iou(a: Sequence[float], b: Sequence[float]) -> float:
    """:func:`temporal_iou` of two single spans, as a float."""
    return float(temporal_iou(a, b)[0])
