"""Temporal grounding metrics: R1@m and mIoU, with the conventions of docs/training.md.

* IoU of two spans = intersection / (max(ends) - min(starts)). Whenever the spans overlap this
  is the usual union; for disjoint spans it is 0 either way. Two identical zero-length spans
  (0 / 0) count as IoU 1; a zero-length span against any other span counts as 0. The IoU is
  :func:`cmagrounding.spans.temporal_iou`, the one every part of the library scores with.
* R1@m counts a query as correct when its top-1 IoU >= m (LGI, Moment-DETR; 2D-TAN uses > m).
* mIoU is the mean top-1 IoU.
* Predictions and ground truth are clipped to [0, duration] (seconds) before scoring; with
  normalized spans the duration is 1.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Sequence

import numpy as np

from cmagrounding.spans import IOU_CONVENTION, temporal_iou  # temporal_iou: re-exported for cmagrounding.training

__all__ = ["THRESHOLDS", "CONVENTION", "temporal_iou", "GroundingMetrics", "compute_metrics"]

THRESHOLDS: tuple[float, ...] = (0.1, 0.3, 0.5, 0.7)

#: The scoring convention, stated with every result (one definition, in :mod:`cmagrounding.spans`).
CONVENTION = IOU_CONVENTION


@dataclass
class GroundingMetrics:
    """R1@m (fractions in [0, 1]) for each threshold, mIoU, and the number of queries scored."""

    recall: dict[float, float]
    miou: float
    count: int
    convention: str = field(default=CONVENTION)

    def __getitem__(self, key: str) -> float:
        return self.to_dict()[key]

    def to_dict(self) -> dict:
        """Flat JSON-friendly dict: ``{"R1@0.5": 0.57, ..., "mIoU": 0.50, "count": n, "convention": ...}``."""
        out: dict = {f"R1@{m:g}": v for m, v in self.recall.items()}
        out.update(mIoU=self.miou, count=self.count, convention=self.convention)
        return out

    @classmethod
    def from_dict(cls, d: dict) -> "GroundingMetrics":
        recall = {float(k[3:]): float(v) for k, v in d.items() if k.startswith("R1@")}
        return cls(recall, float(d["mIoU"]), int(d["count"]), d.get("convention", CONVENTION))

    def table(self, reference: dict[str, float] | None = None, title: str = "result") -> str:
        """A plain-text table in percent, with an optional second row (e.g. the paper's numbers)."""
        cols = [f"R1@{m:g}" for m in self.recall] + ["mIoU"]
        values = {**{f"R1@{m:g}": v for m, v in self.recall.items()}, "mIoU": self.miou}
        width = max(len(title), len("paper"), 8)
        lines = [" " * width + "".join(f"{c:>9}" for c in cols)]
        lines.append(f"{title:<{width}}" + "".join(f"{100 * values[c]:9.2f}" for c in cols))
        if reference:
            lines.append(
                f"{'paper':<{width}}"
                + "".join(f"{reference[c]:9.2f}" if c in reference else f"{'-':>9}" for c in cols)
            )
        lines.append(f"({self.count} queries; {self.convention})")
        return "\n".join(lines)


def compute_metrics(pred: np.ndarray, gt: np.ndarray, durations: np.ndarray | Sequence[float] | None = None,
                    thresholds: Sequence[float] = THRESHOLDS) -> GroundingMetrics:
    """Score top-1 predictions ``pred`` (M, 2) against ``gt`` (M, 2).

    Both are in seconds with ``durations`` (M,), or normalized to [0, 1] when ``durations`` is None;
    both are clipped to [0, duration] first.
    """
    pred = np.asarray(pred, dtype=np.float64).reshape(-1, 2)
    gt = np.asarray(gt, dtype=np.float64).reshape(-1, 2)
    if len(pred) == 0:
        raise ValueError("no predictions to score")
    upper = np.ones(len(pred)) if durations is None else np.asarray(durations, dtype=np.float64).reshape(-1)
    if len(upper) != len(pred):
        raise ValueError(f"{len(upper)} durations for {len(pred)} predictions")
    pred = np.clip(pred, 0.0, upper[:, None])
    gt = np.clip(gt, 0.0, upper[:, None])
    iou = temporal_iou(pred, gt)
    recall = {float(m): float(np.mean(iou >= m)) for m in thresholds}
    return GroundingMetrics(recall, float(iou.mean()), int(len(iou)))
