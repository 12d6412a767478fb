"""Score a predictions file against a dataset's annotations, with no model (``docs/evaluation.md``).

A predictions file is JSON Lines, one query per line (extra keys are allowed and ignored)::

    {"video": "3MSZA", "query": "person turn a light on.", "pred": [1.2, 7.9]}
    {"video": "3MSZA", "query": "person opens the door.", "pred": [[0.0, 4.1, 0.93], [5.0, 9.0, 0.41]]}

``pred`` is one span ``[start, end]`` in seconds, or a ranked list of candidates
``[[start, end, score], ...]`` best first (``score`` optional; when given it must not increase).
The scoring conventions are the library's (:data:`cmagrounding.spans.IOU_CONVENTION`): top-1
metrics come from :func:`~cmagrounding.training.metrics.compute_metrics`, IoUs from
:func:`cmagrounding.spans.temporal_iou`, predictions and ground truth clipped to [0, duration].
Top-1 R1@m and mIoU are also given under LGI's convention (``"lgi"``: the annotation file's ground
truth and the rows' spans, unclipped; :data:`~cmagrounding.training.metrics.CONVENTIONS`).

Rules (each counted in the :class:`PredictionsReport`, never a silent drop):

* **matching**: a row answers the annotations of the same ``video`` id (exact string) whose query
  equals its ``query`` after :func:`normalize_query` (whitespace runs collapsed, ends stripped,
  case folded). Annotations that share a video and a normalized query (24 under 12 keys in
  ActivityNet's merged test split, mostly one sentence in both val_1 and val_2, with different
  ground truth) are all answered by the one row: the model saw the same input; each still counts
  as a query (``shared``).
* **missing** (an annotation without a row): :class:`~cmagrounding.errors.PredictionsError`, or
  with ``allow_missing=True`` IoU 0 at every threshold, counted in ``missing``.
* **duplicate** rows (same video and normalized query twice): an error naming both lines.
* **extra** rows (no annotation matches): counted in ``extra``, listed in ``extra_rows`` and
  logged; an error only when *no* row matches at all (a wrong file or id convention).
* **bad rows** (not JSON, wrong types, NaN/inf, negative times, start > end, empty candidate
  list, increasing scores): an error naming the file and line.
* **top-k**: when any row gives a candidate list, R5@m counts a query correct when one of its
  first 5 candidates reaches IoU m (a single span is a list of one); ``fewer_than_5`` counts the
  scored queries with fewer candidates. R1@m and mIoU use the first candidate.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable, Mapping, Sequence

import numpy as np

from cmagrounding._io import some
from cmagrounding.errors import PredictionsError, shorten
from cmagrounding.spans import IOU_CONVENTION, temporal_iou
from cmagrounding.training.annotations import Annotation, AnnotationSet
from cmagrounding.training.metrics import THRESHOLDS, GroundingMetrics, compute_metrics
from cmagrounding.training.predictions_file import (
    Prediction,
    as_predictions,
    load_predictions,
    normalize_query,
    parse_prediction,
)

_logger = logging.getLogger(__name__)

__all__ = [
    "TOP_K",
    "Prediction",
    "QueryScore",
    "PredictionsReport",
    "normalize_query",
    "parse_prediction",
    "load_predictions",
    "score_predictions",
]

TOP_K = 5  # R5@m: the first 5 candidates of a ranked list


@dataclass(frozen=True)
class QueryScore:
    """One annotation's result: its ground truth, the prediction used (None when missing), the
    top-1 IoU and the best IoU among the first 5 candidates, both after clipping to the duration."""

    video: str
    query: str
    duration: float
    gt: tuple[float, float]
    pred: tuple[float, float] | None
    iou: float
    iou_top5: float
    where: str | None

    def to_dict(self) -> dict[str, Any]:
        return {
            "video": self.video, "query": self.query, "duration": self.duration, "gt": list(self.gt),
            "pred": None if self.pred is None else list(self.pred), "iou": self.iou,
            "iou_top5": self.iou_top5, "row": self.where,
        }


@dataclass
class PredictionsReport:
    """What :func:`score_predictions` found.

    ``top1`` holds R1@m and mIoU over all ``annotations`` (missing ones at IoU 0); ``recall5`` is
    R5@m (None when no row gave a candidate list). Counts: ``scored`` annotations with a row,
    ``missing`` without, ``shared`` scored by a row that also answers another annotation,
    ``extra`` rows that match nothing, ``clipped`` scored annotations whose row has a candidate
    (among the first 5) past the duration,
    ``fewer_than_5`` scored annotations whose row ranks fewer than 5 candidates.
    """

    top1: GroundingMetrics
    recall5: dict[float, float] | None
    annotations: int
    rows: int
    scored: int
    missing: int
    shared: int
    extra: int
    clipped: int
    fewer_than_5: int
    missing_queries: list[str] = field(default_factory=list)
    extra_rows: list[str] = field(default_factory=list)
    per_query: list[QueryScore] = field(default_factory=list)
    source: str = ""
    dataset: str = ""
    split: str = ""
    convention: str = IOU_CONVENTION

    def __getitem__(self, key: str) -> Any:
        return self.to_dict()[key]

    def to_dict(self) -> dict[str, Any]:
        """Flat JSON-friendly dict: ``R1@m``, ``mIoU``, ``R5@m`` (when ranked), the counts, examples."""
        out: dict[str, Any] = {f"R1@{m:g}": v for m, v in self.top1.recall.items()}
        out["mIoU"] = self.top1.miou
        if self.recall5 is not None:
            out.update({f"R5@{m:g}": v for m, v in self.recall5.items()})
        out.update(
            count=self.annotations, rows=self.rows, scored=self.scored, missing=self.missing,
            shared=self.shared, extra=self.extra, clipped=self.clipped, fewer_than_5=self.fewer_than_5,
            missing_queries=self.missing_queries[:20], extra_rows=self.extra_rows[:20],
            predictions=self.source, dataset=self.dataset, split=self.split, convention=self.convention,
        )
        for name, other in self.top1.alternatives.items():  # top-1 under other conventions, e.g. "lgi"
            out[name] = other.to_dict()
        return out

    def table(self) -> str:
        """The R1@m / mIoU table of :class:`GroundingMetrics`, then R5@m and the counts."""
        lines = [self.top1.table(title=self.dataset or "predictions")]
        if self.recall5 is not None:
            lines.append("R5 (library convention): "
                         + "  ".join(f"R5@{m:g} {100 * v:.2f}" for m, v in self.recall5.items())
                         + (f"  ({self.fewer_than_5} queries ranked fewer than {TOP_K} candidates)"
                            if self.fewer_than_5 else ""))
        lines.append(
            f"{self.annotations} annotations: {self.scored} scored, {self.missing} missing (IoU 0); "
            f"{self.shared} share a row with another annotation of the same video and query; "
            f"{self.rows} rows: {self.extra} extra (no annotation), {self.clipped} clipped to the duration"
        )
        if self.extra:
            lines.append(f"extra rows: {some(self.extra_rows, 5)}")
        if self.missing:
            lines.append(f"missing: {some(self.missing_queries, 5)}")
        return "\n".join(lines)


# --- scoring -----------------------------------------------------------------------------------


def score_predictions(
    predictions: str | Path | Iterable[Prediction | Mapping[str, Any]],
    annotations: AnnotationSet | Sequence[Annotation],
    *,
    allow_missing: bool = False,
    thresholds: Sequence[float] = THRESHOLDS,
) -> PredictionsReport:
    """Score ``predictions`` (a JSON Lines path, or rows as dicts / :class:`Prediction`) against
    ``annotations`` (an :class:`AnnotationSet` from ``training.annotations``, or a list).

    The rules for matching, missing, duplicate and extra rows are the module docstring's. Raises
    :class:`~cmagrounding.errors.PredictionsError` on a bad or duplicate row, on missing
    annotations unless ``allow_missing``, and when no row matches any annotation.
    """
    rows, source = as_predictions(predictions)
    anns = list(annotations)
    if not anns:
        raise PredictionsError(f"{source}: the annotations to score against are empty")

    by_key: dict[tuple[str, str], Prediction] = {}
    for p in rows:
        first = by_key.get(p.key)
        if first is not None:
            raise PredictionsError(
                f"{p.where}: duplicate prediction for video {p.video!r} and query {shorten(p.query)}, "
                f"first given at {first.where} (one row per video and query)"
            )
        by_key[p.key] = p

    ann_keys: dict[tuple[str, str], int] = {}
    for a in anns:
        k = (a.video, normalize_query(a.query))
        ann_keys[k] = ann_keys.get(k, 0) + 1
    extra_rows = [f"{p.where} ({p.video!r}, {shorten(p.query)})" for p in rows if p.key not in ann_keys]
    if len(extra_rows) == len(rows):
        raise PredictionsError(
            f"{source}: none of its {len(rows)} rows matches an annotation (first row: video "
            f"{rows[0].video!r}, query {shorten(rows[0].query)}; first annotation: video {anns[0].video!r}, "
            f"query {shorten(anns[0].query)}); videos are matched by exact id, queries by normalize_query()"
        )

    matched = [(a, by_key.get((a.video, normalize_query(a.query)))) for a in anns]
    missing = [f"({a.video!r}, {shorten(a.query)})" for a, p in matched if p is None]
    if missing and not allow_missing:
        raise PredictionsError(
            f"{source}: no prediction for {len(missing)} of {len(anns)} annotations: {some(missing, 5)} "
            f"(allow_missing / --allow-missing scores them as IoU 0 and counts them)"
        )

    scored = [(a, p) for a, p in matched if p is not None]
    durations = np.array([a.duration for a, _ in scored], dtype=np.float64)
    gt = np.array([[a.start, a.end] for a, _ in scored], dtype=np.float64).reshape(-1, 2)
    top1 = np.array([p.spans[0] for _, p in scored], dtype=np.float64).reshape(-1, 2)
    # Best of the first TOP_K candidates, each clipped to the video as the convention says; its
    # R1@m is the query's R5@m.
    best5 = np.empty_like(top1)
    iou5 = np.zeros(len(scored))
    for i, (a, p) in enumerate(scored):
        cands = np.clip(p.spans[:TOP_K], 0.0, a.duration)
        ious = temporal_iou(cands, np.repeat(gt[i : i + 1].clip(0.0, a.duration), len(cands), axis=0))
        j = int(np.argmax(ious))
        best5[i], iou5[i] = cands[j], ious[j]
    iou1 = temporal_iou(np.clip(top1, 0.0, durations[:, None]), np.clip(gt, 0.0, durations[:, None]))

    n, total = len(scored), len(anns)
    m1 = compute_metrics(top1, gt, durations, thresholds)
    # Missing annotations count as IoU 0: they add to the denominator only.
    top1_metrics = GroundingMetrics({m: r * n / total for m, r in m1.recall.items()}, m1.miou * n / total, total,
                                    convention=IOU_CONVENTION)
    # LGI's convention beside it: the annotation file's ground truth and the rows' spans, unclipped
    raw = np.array([getattr(a, "raw_span", (a.start, a.end)) for a, _ in scored], dtype=np.float64).reshape(-1, 2)
    lgi = compute_metrics(top1, raw, durations, thresholds, convention="lgi")
    top1_metrics.alternatives["lgi"] = GroundingMetrics(
        {m: r * n / total for m, r in lgi.recall.items()}, lgi.miou * n / total, total, convention=lgi.convention)
    recall5 = None
    if any(p.ranked for p in rows):
        m5 = compute_metrics(best5, gt, durations, thresholds)
        recall5 = {m: r * n / total for m, r in m5.recall.items()}

    used: dict[tuple[str, str], int] = {}
    for _, p in scored:
        used[p.key] = used.get(p.key, 0) + 1
    per_query: list[QueryScore] = []
    k = 0
    for a, p in matched:
        if p is None:
            per_query.append(QueryScore(a.video, a.query, a.duration, (a.start, a.end), None, 0.0, 0.0, None))
            continue
        span = np.clip(p.spans[0], 0.0, a.duration)
        per_query.append(QueryScore(a.video, a.query, a.duration, (a.start, a.end),
                                    (float(span[0]), float(span[1])), float(iou1[k]), float(iou5[k]), p.where))
        k += 1

    name = getattr(annotations, "name", "")
    report = PredictionsReport(
        top1=top1_metrics,
        recall5=recall5,
        annotations=total,
        rows=len(rows),
        scored=n,
        missing=len(missing),
        shared=sum(c for c in used.values() if c > 1),
        extra=len(extra_rows),
        clipped=sum(1 for a, p in scored if float(p.spans[:TOP_K].max()) > a.duration),
        fewer_than_5=sum(1 for _, p in scored if len(p.spans) < TOP_K) if recall5 is not None else 0,
        missing_queries=missing,
        extra_rows=extra_rows,
        per_query=per_query,
        source=source,
        dataset=name,
        split=getattr(annotations, "split", ""),
    )
    if extra_rows:
        _logger.warning("%s: %d rows match no annotation of %s: %s", source, len(extra_rows),
                        name or "the annotations", some(extra_rows, 3))
    if missing:
        _logger.warning("%s: %d of %d annotations have no prediction; scored as IoU 0", source, len(missing), total)
    return report
