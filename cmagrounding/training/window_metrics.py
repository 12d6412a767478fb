"""Moment-DETR's scoring rules for queries with several ground-truth windows: best-window R1 and mAP.

The reference is Moment-DETR's ``standalone_eval/eval.py`` (QVHighlights); its rules, restated:

* **R1@m** with several windows: the top-1 prediction is compared with the window it overlaps
  best (:func:`top1_ious`); with one window this is the usual top-1 IoU.
* **AP** of one query at IoU threshold m (:func:`average_precision`): its first ``max_pred``
  (10) candidates are sorted by decreasing score (stable); each, in turn, is a true positive when
  the highest-IoU window it reaches (IoU >= m) is not yet taken by a better-scored candidate
  (windows tried in decreasing IoU), else a false positive; AP is the VOC 2011 interpolated area
  under precision(recall), recall over the query's windows.
* **mAP**: AP averaged over queries, at each threshold of 0.5:0.05:0.95, then over thresholds;
  ``mAP@0.5`` and ``mAP@0.75`` are two of those columns.
* **short / middle / long**: the same mAP over the windows of length (0, 10], (10, 30] and
  (30, inf) seconds, each query keeping only its windows in the range and queries without any
  dropped (Moment-DETR's upper bound is QVHighlights' 150 s).

Scores and IoUs here are fractions; Moment-DETR prints percent rounded to 2 decimals.
"""

from __future__ import annotations

from typing import Any, Sequence

import numpy as np

__all__ = ["MAP_THRESHOLDS", "LENGTH_RANGES", "average_precision", "window_map", "best_window_ious", "top1_ious",
           "window_metrics"]

#: Moment-DETR's IoU thresholds for mAP: 0.5, 0.55, ..., 0.95
MAP_THRESHOLDS: tuple[float, ...] = tuple(round(0.5 + 0.05 * i, 2) for i in range(10))

#: window lengths (s) of Moment-DETR's short / middle / long split: min < length <= max
LENGTH_RANGES: dict[str, tuple[float, float]] = {"short": (0.0, 10.0), "middle": (10.0, 30.0),
                                                 "long": (30.0, float("inf"))}


def _cross_iou(spans: np.ndarray, windows: np.ndarray) -> np.ndarray:
    """(K, G) IoU of spans (K, 2) against windows (G, 2) with the true union (len1 + len2 - inter),
    Moment-DETR's ``compute_temporal_iou_batch_cross``; 0 where the union is 0."""
    inter = np.clip(np.minimum(spans[:, None, 1], windows[None, :, 1])
                    - np.maximum(spans[:, None, 0], windows[None, :, 0]), 0.0, None)
    union = (spans[:, 1] - spans[:, 0])[:, None] + (windows[:, 1] - windows[:, 0])[None, :] - inter
    return np.divide(inter, union, out=np.zeros_like(inter), where=union > 0)


def average_precision(spans: np.ndarray, scores: np.ndarray, windows: np.ndarray,
                      thresholds: Sequence[float] = MAP_THRESHOLDS) -> np.ndarray:
    """AP (T,) of one query's candidates ``spans`` (K, 2) with ``scores`` (K,) against its ground-truth
    ``windows`` (G, 2), one value per IoU threshold (the module docstring's rule)."""
    thresholds = np.asarray(thresholds, dtype=np.float64)
    ap = np.zeros(len(thresholds))
    if len(spans) == 0 or len(windows) == 0:
        return ap
    order = np.argsort(-np.asarray(scores, dtype=np.float64), kind="stable")
    spans = np.asarray(spans, dtype=np.float64)[order]
    ious = _cross_iou(spans, np.asarray(windows, dtype=np.float64))  # (K, G)
    taken = np.zeros((len(thresholds), len(windows)), dtype=bool)
    tp = np.zeros((len(thresholds), len(spans)))
    for k in range(len(spans)):
        # windows in decreasing IoU; Moment-DETR reverses an ascending argsort, so ties go to the later one
        by_iou = np.argsort(ious[k], kind="stable")[::-1]
        for t, m in enumerate(thresholds):
            for g in by_iou:
                if ious[k, g] < m:
                    break
                if not taken[t, g]:
                    taken[t, g] = True
                    tp[t, k] = 1.0
                    break
    tp_sum = np.cumsum(tp, axis=1)
    precision = tp_sum / np.arange(1, len(spans) + 1)
    recall = tp_sum / len(windows)
    for t in range(len(thresholds)):
        ap[t] = _interpolated_ap(precision[t], recall[t])
    return ap


def _interpolated_ap(precision: np.ndarray, recall: np.ndarray) -> float:
    """VOC 2011 interpolated AP: area under the precision envelope at each recall step."""
    p = np.concatenate([[0.0], precision, [0.0]])
    r = np.concatenate([[0.0], recall, [1.0]])
    p = np.maximum.accumulate(p[::-1])[::-1]
    steps = np.flatnonzero(r[1:] != r[:-1]) + 1
    return float(np.sum((r[steps] - r[steps - 1]) * p[steps]))


def window_map(candidates: Sequence[tuple[np.ndarray, np.ndarray]], windows: Sequence[np.ndarray],
               thresholds: Sequence[float] = MAP_THRESHOLDS, max_pred: int = 10,
               length_range: tuple[float, float] | None = None) -> tuple[dict[float, float], int]:
    """mAP per threshold over queries, and the number of queries averaged.

    ``candidates[i]`` is query i's ``(spans (K, 2), scores (K,))`` in the file's order (an empty
    ``spans`` for a query without a prediction: AP 0); ``windows[i]`` its ground truth (G, 2).
    Only the first ``max_pred`` candidates count. With ``length_range`` (min, max], windows
    outside it are dropped and so are the queries left with none.
    """
    aps = []
    for (spans, scores), w in zip(candidates, windows):
        w = np.asarray(w, dtype=np.float64).reshape(-1, 2)
        if length_range is not None:
            length = w[:, 1] - w[:, 0]
            w = w[(length > length_range[0]) & (length <= length_range[1])]
            if len(w) == 0:
                continue
        aps.append(average_precision(spans[:max_pred], scores[:max_pred], w, thresholds))
    if not aps:
        return {float(m): 0.0 for m in thresholds}, 0
    mean = np.mean(np.stack(aps), axis=0)
    return {float(m): float(v) for m, v in zip(thresholds, mean)}, len(aps)


def best_window_ious(spans: np.ndarray, windows: np.ndarray, duration: float) -> np.ndarray:
    """(K,) IoU of each span (K, 2) seconds with the ground-truth window (G, 2) it overlaps best,
    spans and windows clipped to [0, duration] (the library's convention; Moment-DETR's R1)."""
    from cmagrounding.spans import temporal_iou

    spans = np.clip(np.asarray(spans, dtype=np.float64).reshape(-1, 2), 0.0, duration)
    windows = np.clip(np.asarray(windows, dtype=np.float64).reshape(-1, 2), 0.0, duration)
    return np.stack([temporal_iou(spans, np.repeat(w[None], len(spans), axis=0)) for w in windows], axis=1).max(axis=1)


def top1_ious(spans: np.ndarray, annotations: Sequence) -> np.ndarray:
    """(M,) IoU of each top-1 span (M, 2) seconds with its annotation's best-matching window
    (:func:`best_window_ious`); one window: the plain top-1 IoU."""
    spans = np.asarray(spans, dtype=np.float64).reshape(-1, 2)
    out = np.zeros(len(spans))
    for i, a in enumerate(annotations):
        out[i] = best_window_ious(spans[i], a.gt_windows, a.duration)[0]
    return out


def window_metrics(spans: np.ndarray, annotations: Sequence, thresholds: Sequence[float] | None = None) -> Any:
    """R1@m and mIoU (a :class:`~cmagrounding.training.metrics.GroundingMetrics`) of top-1 spans (M, 2)
    seconds against annotations with several windows each, R1 on the best-matching window."""
    from cmagrounding.training.metrics import THRESHOLDS, metrics_of_ious

    return metrics_of_ious(top1_ious(spans, annotations), thresholds or THRESHOLDS)
