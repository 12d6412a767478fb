"""Writing a model's answers as predictions files: the library's rows and Moment-DETR's.

``cmagrounding evaluate --model`` writes what it scored, so that the same file can be scored again
with ``--predictions`` or by another project's evaluator:

* library rows: ``{"video", "query", "pred": [[start, end, score]]}`` (seconds);
* Moment-DETR rows (its ``standalone_eval``, QD-DETR, Lighthouse): ``{"qid", "vid", "query",
  "pred_relevant_windows": [[start, end, score]]}``; ``qid`` is the release's where it has one
  (QVHighlights), else the annotation's position in the split (0-based).

The network answers one span per query (the paper's regression head), so by default each row ranks
one candidate; its score is the confidence head's probability where the model has one, else 1.0.
With ``--top-k K`` (:func:`ranked_prediction_rows`) a row holds the Grounder's up to K ranked
candidates with their scores (:mod:`cmagrounding.training.ranked_answers`).
Annotations that share a video and a normalized query (ActivityNet's merged test split) get one
row, as the matching rules of :mod:`cmagrounding.training.predictions` expect.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from cmagrounding._io import write_text_atomic
from cmagrounding.training.annotations import Annotation
from cmagrounding.training.predictions_file import normalize_query

__all__ = ["prediction_rows", "ranked_prediction_rows", "per_query_rows", "write_jsonl"]


def prediction_rows(annotations: Sequence[Annotation], spans: np.ndarray, scores: np.ndarray,
                    style: str = "cmagrounding") -> list[dict[str, Any]]:
    """One row per distinct (video, normalized query) for spans (M, 2) seconds and scores (M,),
    in the library's keys (``style="cmagrounding"``) or Moment-DETR's (``"moment-detr"``)."""
    return ranked_prediction_rows(annotations, [(spans[i : i + 1], scores[i : i + 1]) for i in range(len(annotations))],
                                  style)


def ranked_prediction_rows(annotations: Sequence[Annotation], candidates: Sequence[tuple[np.ndarray, np.ndarray]],
                           style: str = "cmagrounding") -> list[dict[str, Any]]:
    """As :func:`prediction_rows`, each annotation with its candidates: spans (K, 2) seconds and
    scores (K,), best first (written in that order)."""
    if style not in ("cmagrounding", "moment-detr"):
        raise ValueError(f"style must be 'cmagrounding' or 'moment-detr', got {style!r}")
    rows: list[dict[str, Any]] = []
    seen: set[tuple[str, str]] = set()
    for i, a in enumerate(annotations):
        key = (a.video, normalize_query(a.query))
        if key in seen:
            continue
        seen.add(key)
        spans, scores = candidates[i]
        # full precision: rescoring agrees
        cand = [[float(s[0]), float(s[1]), float(c)] for s, c in zip(spans, scores)]
        if style == "moment-detr":
            rows.append({"qid": a.qid if a.qid is not None else i, "vid": a.video, "query": a.query,
                         "pred_relevant_windows": cand})
        else:
            rows.append({"video": a.video, "query": a.query, "pred": cand})
    return rows


def per_query_rows(annotations: Sequence[Annotation], spans: np.ndarray, ious: np.ndarray) -> list[dict[str, Any]]:
    """The ``--per-query`` rows of a model's answers (the keys of ``QueryScore.to_dict``)."""
    out = []
    for i, a in enumerate(annotations):
        pred = np.clip(spans[i], 0.0, a.duration)
        row = {"video": a.video, "query": a.query, "duration": a.duration, "gt": [a.start, a.end],
               "pred": [float(pred[0]), float(pred[1])], "iou": float(ious[i]), "iou_top5": float(ious[i]),
               "row": None}
        if a.windows:
            row["windows"] = [list(w) for w in a.windows]
        out.append(row)
    return out


def write_jsonl(path: str | Path, rows: Sequence[dict[str, Any]]) -> None:
    """Rows as JSON Lines, written atomically (no NaN: spans and scores are finite)."""
    write_text_atomic(path, "".join(json.dumps(r, allow_nan=False) + "\n" for r in rows))
