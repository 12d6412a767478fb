"""Temporal grounding metrics: R1@m and mIoU, with the conventions of docs/training.md.

* IoU of two spans = intersection / (max(ends) - min(starts)). Whenever the spans overlap this
  is the usual union; for disjoint spans it is 0 either way. Two identical zero-length spans
  (0 / 0) count as IoU 1; a zero-length span against any other span counts as 0. The IoU is
  :func:`cmagrounding.spans.temporal_iou`, the one every part of the library scores with.
* R1@m counts a query as correct when its top-1 IoU >= m (LGI, Moment-DETR; 2D-TAN uses > m).
* mIoU is the mean top-1 IoU.
* Predictions and ground truth are clipped to [0, duration] (seconds) before scoring; with
  normalized spans the duration is 1.

Two scoring conventions are named (:data:`CONVENTIONS`) and reported side by side wherever the
raw ground truth is known (:func:`compute_conventions`): "library", the above, whose ground truth
past the video's end is clipped (as 2D-TAN and VSLNet do at load; 562 of Charades-STA's 3,720 test
rows end after the video); and "lgi", LGI's evaluator, which scores the annotation file's ground
truth and the predictions as they are. The paper's numbers are compared with the LGI row
(:data:`PAPER_CONVENTION_REASON`).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Sequence

import numpy as np

from cmagrounding.errors import ConfigError
from cmagrounding.spans import IOU_CONVENTION, temporal_iou  # temporal_iou: re-exported for cmagrounding.training

__all__ = [
    "THRESHOLDS", "CONVENTION", "LGI_CONVENTION", "CONVENTIONS", "CONVENTION_LABELS", "PAPER_CONVENTION",
    "PAPER_CONVENTION_REASON", "temporal_iou", "GroundingMetrics", "compute_metrics", "compute_conventions",
    "metrics_of_ious",
]

THRESHOLDS: tuple[float, ...] = (0.1, 0.3, 0.5, 0.7)

#: The scoring convention, stated with every result (one definition, in :mod:`cmagrounding.spans`).
CONVENTION = IOU_CONVENTION

#: LGI's convention (its TALLEvaluator): the same IoU, R1@m and mIoU, nothing clipped.
LGI_CONVENTION = (
    "IoU = intersection / (max(ends) - min(starts)); R1@m counts IoU >= m; mIoU = mean top-1 IoU; "
    "ground truth as the annotation file gives it and predictions as given, neither clipped (LGI's evaluator)"
)

#: Every named convention: ``"library"`` (the default everywhere) and ``"lgi"``.
CONVENTIONS: dict[str, str] = {"library": CONVENTION, "lgi": LGI_CONVENTION}
#: Short labels for table rows.
CONVENTION_LABELS: dict[str, str] = {"library": "library (GT clipped)", "lgi": "LGI (raw GT)"}
#: The convention the paper's numbers are compared with, and why (printed under every table).
PAPER_CONVENTION = "lgi"
PAPER_CONVENTION_REASON = (
    "the paper's numbers compare with the LGI row: CMA follows LGI's protocol (test split, model "
    "selection, vocabulary) and sets its scores beside LGI's (Table 1), which LGI's evaluator computed "
    "on the unclipped ground truth"
)


@dataclass
class GroundingMetrics:
    """R1@m (fractions in [0, 1]) for each threshold, mIoU, and the number of queries scored.

    ``alternatives``: the same predictions scored under other named conventions (key "lgi", see
    :data:`CONVENTIONS`), filled by :func:`compute_conventions`; empty otherwise.
    """

    recall: dict[float, float]
    miou: float
    count: int
    convention: str = field(default=CONVENTION)
    alternatives: dict[str, "GroundingMetrics"] = field(default_factory=dict)

    def __getitem__(self, key: str) -> float:
        return self.to_dict()[key]

    def to_dict(self) -> dict:
        """Flat JSON-friendly dict: ``{"R1@0.5": 0.57, ..., "mIoU": 0.50, "count": n, "convention": ...}``,
        plus one nested dict of the same form per alternative convention (e.g. ``"lgi": {...}``)."""
        out: dict = {f"R1@{m:g}": v for m, v in self.recall.items()}
        out.update(mIoU=self.miou, count=self.count, convention=self.convention)
        for name, other in self.alternatives.items():
            out[name] = other.to_dict()
        return out

    @classmethod
    def from_dict(cls, d: dict) -> "GroundingMetrics":
        recall = {float(k[3:]): float(v) for k, v in d.items() if k.startswith("R1@")}
        alternatives = {k: cls.from_dict(v) for k, v in d.items() if k in CONVENTIONS and isinstance(v, dict)}
        return cls(recall, float(d["mIoU"]), int(d["count"]), d.get("convention", CONVENTION), alternatives)

    def table(self, reference: dict[str, float] | None = None, title: str = "result") -> str:
        """A plain-text table in percent, with an optional last row (e.g. the paper's numbers).

        With alternatives, one row per convention, each labelled, then each convention in words and
        which row the paper's numbers compare with (:data:`PAPER_CONVENTION_REASON`).
        """
        cols = [f"R1@{m:g}" for m in self.recall] + ["mIoU"]
        rows = [(title, self)]
        if self.alternatives:
            rows = [(f"{title}, {CONVENTION_LABELS['library']}", self)]
            rows += [(f"{title}, {CONVENTION_LABELS.get(k, k)}", m) for k, m in self.alternatives.items()]
        width = max(*(len(r[0]) for r in rows), len("paper"), 8)
        lines = [" " * width + "".join(f"{c:>9}" for c in cols)]
        for label, m in rows:
            values = {**{f"R1@{t:g}": v for t, v in m.recall.items()}, "mIoU": m.miou}
            lines.append(f"{label:<{width}}" + "".join(f"{100 * values[c]:9.2f}" if c in values else f"{'-':>9}"
                                                        for c in cols))
        if reference:
            lines.append(
                f"{'paper':<{width}}"
                + "".join(f"{reference[c]:9.2f}" if c in reference else f"{'-':>9}" for c in cols)
            )
        if not self.alternatives:
            lines.append(f"({self.count} queries; {self.convention})")
            return "\n".join(lines)
        lines.append(f"({self.count} queries)")
        lines.append(f"{CONVENTION_LABELS['library']}: {self.convention}")
        lines += [f"{CONVENTION_LABELS.get(k, k)}: {m.convention}" for k, m in self.alternatives.items()]
        if reference and PAPER_CONVENTION in self.alternatives:
            lines.append(PAPER_CONVENTION_REASON)
        return "\n".join(lines)


def compute_metrics(pred: np.ndarray, gt: np.ndarray, durations: np.ndarray | Sequence[float] | None = None,
                    thresholds: Sequence[float] = THRESHOLDS, convention: str = "library") -> GroundingMetrics:
    """Score top-1 predictions ``pred`` (M, 2) against ``gt`` (M, 2).

    Both are in seconds with ``durations`` (M,), or normalized to [0, 1] when ``durations`` is None.
    Under the "library" convention both are clipped to [0, duration] first; under "lgi" neither is
    (pass the raw ground truth then).
    """
    if convention not in CONVENTIONS:
        raise ConfigError(f"unknown scoring convention {convention!r}; choose one of {list(CONVENTIONS)}")
    pred = np.asarray(pred, dtype=np.float64).reshape(-1, 2)
    gt = np.asarray(gt, dtype=np.float64).reshape(-1, 2)
    if len(pred) == 0:
        raise ValueError("no predictions to score")
    upper = np.ones(len(pred)) if durations is None else np.asarray(durations, dtype=np.float64).reshape(-1)
    if len(upper) != len(pred):
        raise ValueError(f"{len(upper)} durations for {len(pred)} predictions")
    if convention == "library":
        pred = np.clip(pred, 0.0, upper[:, None])
        gt = np.clip(gt, 0.0, upper[:, None])
    return metrics_of_ious(temporal_iou(pred, gt), thresholds, CONVENTIONS[convention])


def metrics_of_ious(iou: np.ndarray, thresholds: Sequence[float] = THRESHOLDS,
                    convention: str = CONVENTION) -> GroundingMetrics:
    """R1@m (the fraction of top-1 IoUs ``iou`` (M,) at least m) and mIoU (their mean): the one
    place of this arithmetic, for every scorer (plain, predictions files, several windows)."""
    iou = np.asarray(iou, dtype=np.float64).reshape(-1)
    if len(iou) == 0:
        raise ValueError("no predictions to score")
    recall = {float(m): float(np.mean(iou >= m)) for m in thresholds}
    return GroundingMetrics(recall, float(iou.mean()), int(len(iou)), convention)


def compute_conventions(pred: np.ndarray, gt: np.ndarray, raw_gt: np.ndarray,
                        durations: np.ndarray | Sequence[float] | None = None,
                        thresholds: Sequence[float] = THRESHOLDS) -> GroundingMetrics:
    """The library's metrics of ``pred`` against ``gt`` (M, 2), with LGI's against ``raw_gt`` (M, 2),
    the ground truth as the annotation file gave it, in ``alternatives["lgi"]``."""
    out = compute_metrics(pred, gt, durations, thresholds)
    out.alternatives["lgi"] = compute_metrics(pred, raw_gt, durations, thresholds, convention="lgi")
    return out
