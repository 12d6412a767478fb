"""Score a predictions file against a dataset's annotations, with no model (``docs/evaluation.md``).

A predictions file is JSON Lines, one query per line (extra keys are allowed and ignored)::

    {"video": "3MSZA", "query": "person turn a light on.", "pred": [1.2, 7.9]}
    {"video": "3MSZA", "query": "person opens the door.", "pred": [[0.0, 4.1, 0.93], [5.0, 9.0, 0.41]]}

``pred`` is one span ``[start, end]`` in seconds, or a ranked list of candidates
``[[start, end, score], ...]`` best first (``score`` optional; when given it must not increase).
Moment-DETR's rows (``qid``, ``vid``, ``query``, ``pred_relevant_windows``) are read as they are
(:mod:`~cmagrounding.training.predictions_file`). The scoring conventions are the library's
(:data:`cmagrounding.spans.IOU_CONVENTION`): IoUs from :func:`cmagrounding.spans.temporal_iou`,
predictions and ground truth clipped to [0, duration].
Top-1 R1@m and mIoU are also given under LGI's convention (``"lgi"``: the annotation file's ground
truth and the rows' spans, unclipped; :data:`~cmagrounding.training.metrics.CONVENTIONS`) where
each query has one window.

Rules (each counted in the :class:`PredictionsReport`, never a silent drop):

* **matching**: a row answers the annotations of the same ``video`` id (exact string) whose query
  equals its ``query`` after :func:`normalize_query` (whitespace runs collapsed, ends stripped,
  case folded); where the annotations carry Moment-DETR's ``qid`` (QVHighlights), a row with that
  ``qid`` answers it. Annotations that share a video and a normalized query (24 under 12 keys in
  ActivityNet's merged test split, mostly one sentence in both val_1 and val_2, with different
  ground truth) are all answered by the one row: the model saw the same input; each still counts
  as a query (``shared``).
* **several windows** (QVHighlights): R1@m compares the top-1 candidate with the window it overlaps
  best; mAP follows Moment-DETR (:mod:`~cmagrounding.training.window_metrics`). One window: the
  numbers are those of :func:`~cmagrounding.training.metrics.compute_metrics`, to the last digit.
* **missing** (an annotation without a row): :class:`~cmagrounding.errors.PredictionsError`, or
  with ``allow_missing=True`` IoU 0 at every threshold (AP 0), counted in ``missing``.
* **duplicate** rows (two rows answering the same annotation): an error naming both lines.
* **extra** rows (no annotation matches): counted in ``extra``, the first 20 listed in
  ``extra_rows`` and logged; an error only when *no* row matches at all (a wrong file or id
  convention). The file is streamed and only matching rows are kept, so memory grows with the
  annotations, not the file; extra rows are therefore not checked for duplicates among themselves.
* **out of range**: a candidate before 0 or past the duration (raw regression output) is clipped
  and counted in ``clipped``.
* **bad rows** (not JSON, wrong types, NaN/inf, start > end, empty candidate list, increasing
  scores in the library's rows, a key given twice, a huge integer, deep nesting): an error naming
  the file and line.
* **top-k**: when any row gives a candidate list, R5@m counts a query correct when one of its
  first 5 candidates reaches IoU m (a single span is a list of one); ``fewer_than_5`` counts the
  scored queries with fewer candidates. R1@m and mIoU use the first candidate. mAP (Moment-DETR's:
  IoU 0.5:0.05:0.95, the first 10 candidates by score; rank order where no scores are given) is
  reported with the candidate lists too.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable, Mapping, Sequence

import numpy as np

from cmagrounding._io import some
from cmagrounding.errors import PredictionsError, shorten
from cmagrounding.spans import IOU_CONVENTION
from cmagrounding.training.annotations import Annotation, AnnotationSet, require_windows
from cmagrounding.training.metrics import THRESHOLDS, GroundingMetrics, compute_metrics, metrics_of_ious
from cmagrounding.training.predictions_file import (
    Prediction,
    load_predictions,
    normalize_query,
    parse_prediction,
    stream_predictions,
)
from cmagrounding.training.stores import id_candidates
from cmagrounding.training.window_metrics import LENGTH_RANGES, best_window_ious, window_map

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
    windows: tuple[tuple[float, float], ...] = ()  # every ground-truth window when there are several

    def to_dict(self) -> dict[str, Any]:
        out = {
            "video": self.video, "query": self.query, "duration": self.duration, "gt": list(self.gt),
            "pred": None if self.pred is None else list(self.pred), "iou": self.iou,
            "iou_top5": self.iou_top5, "row": self.where,
        }
        if self.windows:
            out["windows"] = [list(w) for w in self.windows]
        return out


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
    mean_ap: dict[float, float] | None = None
    map_ranges: dict[str, float] = field(default_factory=dict)
    windows: int = 0

    def __getitem__(self, key: str) -> Any:
        return self.to_dict()[key]

    def to_dict(self) -> dict[str, Any]:
        """Flat JSON-friendly dict: ``R1@m``, ``mIoU``, ``R5@m`` (when ranked), the counts, examples."""
        out: dict[str, Any] = {f"R1@{m:g}": v for m, v in self.top1.recall.items()}
        out["mIoU"] = self.top1.miou
        if self.recall5 is not None:
            out.update({f"R5@{m:g}": v for m, v in self.recall5.items()})
        if self.mean_ap is not None:
            out["mAP"] = float(np.mean(list(self.mean_ap.values())))
            out.update({f"mAP@{m:g}": v for m, v in self.mean_ap.items()})
            out.update({f"mAP-{k}": v for k, v in self.map_ranges.items()})
        out.update(
            count=self.annotations, windows=self.windows, rows=self.rows, scored=self.scored, missing=self.missing,
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
        if self.mean_ap is not None:
            d = self.to_dict()
            lines.append("mAP: " + "  ".join(f"{k} {100 * d[k]:.2f}" for k in
                                             ("mAP", "mAP@0.5", "mAP@0.75", *(f"mAP-{r}" for r in self.map_ranges)))
                         + " (Moment-DETR's rules: IoU 0.5:0.05:0.95, first 10 candidates by score)")
        if self.windows > self.annotations:
            lines.append(f"{self.windows} ground-truth windows for {self.annotations} queries: R1 compares the "
                         "top-1 prediction with the best-matching window")
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

    The rules for matching, missing, duplicate and extra rows are the module docstring's. A file
    is streamed: only the rows that answer an annotation are kept (memory grows with the
    annotations, not the file). Raises :class:`~cmagrounding.errors.PredictionsError` on a bad or
    duplicate row, on missing annotations unless ``allow_missing``, and when no row matches any
    annotation.
    """
    require_windows(annotations)
    stream, source = stream_predictions(predictions)
    anns = list(annotations)
    if not anns:
        raise PredictionsError(f"{source}: the annotations to score against are empty")

    # the keys that can answer an annotation: (video, normalized query), and Moment-DETR's qid
    ann_keys: dict[tuple[str, str], tuple[str, str]] = {}
    for a in anns:
        k = _ann_key(a)
        ann_keys[k] = k
        ann_keys.setdefault((a.video, normalize_query(a.query)), k)  # a qid's row may also name video and query
    by_key: dict[tuple[str, str], Prediction] = {}
    rows = extra = 0
    extra_rows: list[str] = []
    first: Prediction | None = None
    ranked = False
    for p in stream:
        rows += 1
        first = first or p
        key = ann_keys.get(_row_key(p, ann_keys))
        if key is None:
            extra += 1
            if len(extra_rows) < _EXAMPLES:
                extra_rows.append(f"{p.where} ({p.video!r}, {shorten(p.query)})")
            continue
        seen = by_key.get(key)
        if seen is not None:
            raise PredictionsError(
                f"{p.where}: duplicate prediction for video {p.video!r} and query {shorten(p.query)}, "
                f"first given at {seen.where} (one row per video and query)"
            )
        by_key[key] = p
        ranked = ranked or p.ranked
    if first is None:
        raise PredictionsError(f"{source}: no prediction rows")
    if not by_key:
        raise PredictionsError(
            f"{source}: none of its {rows} rows matches an annotation (first row: video "
            f"{first.video!r}, query {shorten(first.query)}; first annotation: video {anns[0].video!r}, "
            f"query {shorten(anns[0].query)}); videos are matched by id (with or without a video suffix "
            "such as .avi) or by Moment-DETR's qid, queries by normalize_query()"
        )

    matched = [(a, by_key.get(_ann_key(a))) for a in anns]
    missing = [f"({a.video!r}, {shorten(a.query)})" for a, p in matched if p is None]
    if missing and not allow_missing:
        raise PredictionsError(
            f"{source}: no prediction for {len(missing)} of {len(anns)} annotations: {some(missing, 5)} "
            f"(allow_missing / --allow-missing scores them as IoU 0 and counts them)"
        )

    scored = [(a, p) for a, p in matched if p is not None]
    # Every candidate and window clipped to [0, duration] (the convention); with several windows
    # a prediction is compared with the one it overlaps best (Moment-DETR's R1).
    iou1 = np.zeros(len(scored))
    iou5 = np.zeros(len(scored))
    top1_spans: list[tuple[float, float]] = []
    for i, (a, p) in enumerate(scored):
        ious = best_window_ious(p.spans[:TOP_K], a.gt_windows, a.duration)  # (K,)
        iou1[i] = ious[0]
        iou5[i] = ious.max()
        top1 = np.clip(p.spans[0], 0.0, a.duration)
        top1_spans.append((float(top1[0]), float(top1[1])))

    n, total = len(scored), len(anns)
    m1 = metrics_of_ious(iou1, thresholds)
    # Missing annotations count as IoU 0: they add to the denominator only.
    top1_metrics = GroundingMetrics({m: r * n / total for m, r in m1.recall.items()}, m1.miou * n / total, total,
                                    convention=IOU_CONVENTION)
    if not any(a.windows for a, _ in scored):
        # LGI's convention beside it: the annotation file's ground truth and the rows' spans, unclipped
        # (one window per query: LGI's evaluator knows no other)
        top1 = np.array([p.spans[0] for _, p in scored], dtype=np.float64).reshape(-1, 2)
        raw = np.array([getattr(a, "raw_span", (a.start, a.end)) for a, _ in scored], dtype=np.float64).reshape(-1, 2)
        durations = np.array([a.duration for a, _ in scored], dtype=np.float64)
        lgi = compute_metrics(top1, raw, durations, thresholds, convention="lgi")
        top1_metrics.alternatives["lgi"] = GroundingMetrics(
            {m: r * n / total for m, r in lgi.recall.items()}, lgi.miou * n / total, total, convention=lgi.convention)
    recall5 = None
    mean_ap: dict[float, float] | None = None
    map_ranges: dict[str, float] = {}
    if ranked:
        recall5 = {m: r * n / total for m, r in metrics_of_ious(iou5, thresholds).recall.items()}
        cands_all = [(np.clip(p.spans, 0.0, a.duration), p.ranking_scores()) if p is not None
                     else (np.zeros((0, 2)), np.zeros(0)) for a, p in matched]
        windows_all = [np.clip(np.asarray(a.gt_windows, dtype=np.float64), 0.0, a.duration) for a, _ in matched]
        mean_ap, _ = window_map(cands_all, windows_all)
        for name, bounds in LENGTH_RANGES.items():
            per_t, count = window_map(cands_all, windows_all, length_range=bounds)
            if count:
                map_ranges[name] = float(np.mean(list(per_t.values())))

    used: dict[tuple[str, str], int] = {}
    for a, _ in scored:
        k = _ann_key(a)
        used[k] = used.get(k, 0) + 1
    per_query: list[QueryScore] = []
    k = 0
    for a, p in matched:
        if p is None:
            per_query.append(QueryScore(a.video, a.query, a.duration, (a.start, a.end), None, 0.0, 0.0, None,
                                        a.windows))
            continue
        per_query.append(QueryScore(a.video, a.query, a.duration, (a.start, a.end), top1_spans[k],
                                    float(iou1[k]), float(iou5[k]), p.where, a.windows))
        k += 1

    name = getattr(annotations, "name", "")
    report = PredictionsReport(
        top1=top1_metrics,
        recall5=recall5,
        annotations=total,
        rows=rows,
        scored=n,
        missing=len(missing),
        shared=sum(c for c in used.values() if c > 1),
        extra=extra,
        clipped=sum(1 for a, p in scored if float(p.spans[:TOP_K].max()) > a.duration
                    or float(p.spans[:TOP_K].min()) < 0.0),
        fewer_than_5=sum(1 for _, p in scored if len(p.spans) < TOP_K) if recall5 is not None else 0,
        missing_queries=missing,
        extra_rows=extra_rows,
        per_query=per_query,
        source=source,
        dataset=name,
        split=getattr(annotations, "split", ""),
        mean_ap=mean_ap,
        map_ranges=map_ranges,
        windows=sum(len(a.gt_windows) for a in anns),
    )
    if extra:
        _logger.warning("%s: %d rows match no annotation of %s: %s", source, extra,
                        name or "the annotations", some(extra_rows, 3))
    if missing:
        _logger.warning("%s: %d of %d annotations have no prediction; scored as IoU 0", source, len(missing), total)
    return report


_EXAMPLES = 20  # extra rows named in a report (the count is exact)


def _ann_key(a: Annotation) -> tuple[str, str]:
    """An annotation's matching key: Moment-DETR's qid where the release has one, else video and query."""
    return ("qid", str(a.qid)) if a.qid is not None else (a.video, normalize_query(a.query))


def _row_key(p: Prediction, ann_keys: Mapping[tuple[str, str], tuple[str, str]]) -> tuple[str, str]:
    if p.qid is not None and ("qid", str(p.qid)) in ann_keys:
        return ("qid", str(p.qid))
    if p.key in ann_keys:
        return p.key
    # the same video under the other id convention (TACoS: s22-d55.avi in 2D-TAN, s22-d55 elsewhere)
    for other in id_candidates(p.video)[1:]:
        if (other, p.key[1]) in ann_keys:
            return (other, p.key[1])
    return p.key
