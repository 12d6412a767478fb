"""Loaders for the releases other projects publish: QVHighlights (Moment-DETR) and TACoS (2D-TAN).

Both return an :class:`~cmagrounding.training.annotations.AnnotationSet` with the repair rules of
:mod:`cmagrounding.training.annotations` applied to every window and counted.

* **QVHighlights** (``highlight_{train,val,test}_release.jsonl``, Moment-DETR's ``data/``): one
  JSON object per query with ``qid``, ``query``, ``duration`` (s), ``vid`` and
  ``relevant_windows`` ``[[start, end], ...]`` in seconds (1-25 per query; 530 of the 1,550 val
  queries have several). Every window is kept (:attr:`Annotation.windows`); scoring compares a
  prediction with the best-matching one (:mod:`cmagrounding.training.window_metrics`). Training
  regresses one span, the first window (CMA has one regression head; Moment-DETR's set loss has
  none to borrow). The test split has no windows (its answers are hidden on CodaLab): it loads for
  predicting, and scoring it is refused by name.
* **TACoS** (2D-TAN's ``train.json`` / ``val.json`` / ``test.json``): ``{video: {"num_frames",
  "fps", "timestamps": [[start_frame, end_frame], ...], "sentences": [...]}}``. As 2D-TAN reads it:
  ``duration = num_frames / fps`` and a moment is ``timestamps / fps`` seconds. Ids keep 2D-TAN's
  ``.avi`` suffix (``s22-d55.avi``); feature stores match them with or without it
  (:func:`cmagrounding.training.stores.lookup_id`), VSLNet's and Lighthouse's files being ``s22-d55``.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from cmagrounding._io import jsonl_rows
from cmagrounding.errors import DatasetError
from cmagrounding.training.annotations import Annotation, AnnotationSet, QuirkReport, _repair

__all__ = ["load_qvhighlights", "load_tacos", "require_windows", "RELEASE_FILES", "NoGroundTruthError"]


class NoGroundTruthError(DatasetError):
    """A split without ground-truth windows (QVHighlights test) was asked to be scored."""


#: files of each split, relative to the dataset's folder
RELEASE_FILES = {
    "qvhighlights": {s: f"highlight_{s}_release.jsonl" for s in ("train", "val", "test")},
    "tacos": {s: f"{s}.json" for s in ("train", "val", "test")},
}


def _number(value: Any, what: str, where: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise DatasetError(f"{where}: {what} must be a number, got {value!r}")
    return float(value)


def load_qvhighlights(path: str | Path, split: str | None = None) -> AnnotationSet:
    """Read a QVHighlights release file (one query per line; see the module docstring).

    A row without ``relevant_windows`` (the test split) becomes an annotation with the zero-length
    span ``[0, 0]`` and no windows; the set is named ``qvhighlights`` and ``split`` (default from the
    file name). :func:`require_windows` refuses to score such a set.
    """
    path = Path(path)
    if split is None:
        split = next((s for s in ("train", "val", "test") if f"_{s}_" in path.name), path.stem)
    quirks = QuirkReport()
    rows: list[Annotation] = []
    for where, obj in jsonl_rows(path, DatasetError, "QVHighlights release file"):
        if not isinstance(obj, dict):
            raise DatasetError(f"{where}: expected a JSON object, got {type(obj).__name__}")
        missing = [k for k in ("qid", "query", "duration", "vid") if k not in obj]
        if missing:
            raise DatasetError(f"{where}: missing keys {missing} (a QVHighlights row has qid, query, "
                               "duration, vid, relevant_windows)")
        if not isinstance(obj["query"], str) or not obj["query"].strip():
            raise DatasetError(f"{where}: 'query' must be a non-empty string")
        duration = _number(obj["duration"], "duration", where)
        raw = obj.get("relevant_windows")
        if raw is None:  # the test split: no ground truth published
            if not duration > 0:
                raise DatasetError(f"{where}: video {obj['vid']!r} has a non-positive duration {duration}")
            rows.append(Annotation(str(obj["vid"]), duration, obj["query"].strip(), 0.0, 0.0, (), obj["qid"]))
            continue
        if not isinstance(raw, list) or not raw:
            raise DatasetError(f"{where}: 'relevant_windows' must be a non-empty list of [start, end]")
        windows = []
        for i, w in enumerate(raw):
            if not isinstance(w, list) or len(w) != 2:
                raise DatasetError(f"{where}: relevant_windows[{i}] must be [start, end], got {w!r}")
            a = _repair(str(obj["vid"]), duration, obj["query"], _number(w[0], "a window start", where),
                        _number(w[1], "a window end", where), quirks, where)
            windows.append((a.start, a.end))
        first = windows[0]
        rows.append(Annotation(a.video, a.duration, a.query, first[0], first[1],
                               tuple(windows) if len(windows) > 1 else (), obj["qid"]))
    out = AnnotationSet("qvhighlights", split, rows, quirks, [str(path)])
    out.log_quirks()
    return out


def require_windows(annotations: Any) -> None:
    """Raise :class:`NoGroundTruthError` when ``annotations`` has no ground truth to score against."""
    if getattr(annotations, "name", "") == "qvhighlights" and getattr(annotations, "split", "") == "test":
        raise NoGroundTruthError(
            f"{', '.join(getattr(annotations, 'sources', [])) or 'qvhighlights/test'}: the QVHighlights test "
            "split has no ground-truth windows (its answers are hidden; submit predictions to the "
            "benchmark's server); score --split val instead")


def load_tacos(path: str | Path, split: str | None = None) -> AnnotationSet:
    """Read 2D-TAN's TACoS JSON (frames and ``fps``; see the module docstring) as seconds."""
    path = Path(path)
    if split is None:
        split = path.stem
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise DatasetError(f"{path}: TACoS annotation file not found") from None
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise DatasetError(f"{path}: not valid JSON ({e})") from None
    except RecursionError:
        raise DatasetError(f"{path}: JSON nested too deeply") from None
    if not isinstance(data, dict):
        raise DatasetError(f"{path}: expected an object of videos (2D-TAN's TACoS JSON), got {type(data).__name__}")
    quirks = QuirkReport()
    rows: list[Annotation] = []
    for video, item in data.items():
        where = f"{path}[{video!r}]"
        try:
            frames, fps, stamps, sentences = item["num_frames"], item["fps"], item["timestamps"], item["sentences"]
        except (KeyError, TypeError):
            raise DatasetError(f"{where}: needs 'num_frames', 'fps', 'timestamps' and 'sentences' "
                               "(2D-TAN's TACoS layout)") from None
        fps = _number(fps, "fps", where)
        if not fps > 0:
            raise DatasetError(f"{where}: fps must be positive, got {fps}")
        duration = _number(frames, "num_frames", where) / fps
        if not isinstance(stamps, list) or not isinstance(sentences, list) or len(stamps) != len(sentences):
            raise DatasetError(f"{where}: 'timestamps' and 'sentences' must be lists of the same length")
        for i, (stamp, sentence) in enumerate(zip(stamps, sentences)):
            if not isinstance(stamp, list) or len(stamp) != 2 or not isinstance(sentence, str):
                raise DatasetError(f"{where}: timestamps[{i}] must be [start_frame, end_frame] with a sentence")
            start = _number(stamp[0], "a start frame", where) / fps
            end = _number(stamp[1], "an end frame", where) / fps
            rows.append(_repair(video, duration, sentence, start, end, quirks, where))
    out = AnnotationSet("tacos", split, rows, quirks, [str(path)])
    out.log_quirks()
    return out
