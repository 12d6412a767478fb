"""Reading a predictions file: JSON Lines rows checked one by one, each bad row an error at ``file:line``.

The format and the rules are :mod:`cmagrounding.training.predictions`'s docstring; this module
reads and validates rows (:func:`iter_predictions`, :func:`load_predictions`,
:func:`parse_prediction`) into :class:`Prediction`, and gives each its matching key
(:func:`normalize_query`). Scoring is there.

Two row formats, told apart by their keys: the library's ``{"video", "query", "pred"}`` and
Moment-DETR's ``{"qid", "vid", "query", "pred_relevant_windows": [[st, ed, score], ...]}`` (also
QD-DETR's, UniVTG's and Lighthouse's), read as they are: its windows keep the file's order (the first
is the top-1, as Moment-DETR's R1 takes it) and need not be sorted by score (mAP sorts them).
Times may lie before 0 or past the duration (raw regression output): they are clipped when scored
and counted; only what cannot be scored is refused (not a number, start > end, malformed).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable, Iterator, Mapping

import numpy as np

from cmagrounding._io import jsonl_rows
from cmagrounding.errors import PredictionsError, shorten

__all__ = ["Prediction", "normalize_query", "parse_prediction", "iter_predictions", "load_predictions"]


def normalize_query(query: str) -> str:
    """The matching key of a query: whitespace runs collapsed to one space, ends stripped, case
    folded. ``"Person  opens the door. "`` and ``"person opens the door."`` match; punctuation and
    spelling must agree."""
    return " ".join(query.split()).casefold()


@dataclass(frozen=True)
class Prediction:
    """One row of a predictions file: ``spans`` (K, 2) seconds best first, ``scores`` (K,) or None.

    ``ranked`` is True when the row gave a candidate list (even of one), False for a single span.
    ``where`` is ``file:line`` (or ``<source>:row``) for messages.
    """

    video: str
    query: str
    spans: np.ndarray
    scores: np.ndarray | None
    ranked: bool
    where: str
    qid: int | str | None = None  # Moment-DETR's rows: matched by qid where the annotations have one

    @property
    def key(self) -> tuple[str, str]:
        return self.video, normalize_query(self.query)

    def ranking_scores(self) -> np.ndarray:
        """(K,) scores for ranking (mAP): the given ones, else decreasing with the file's order."""
        return self.scores if self.scores is not None else -np.arange(len(self.spans), dtype=np.float64)


def _time(value: Any, label: str, part: str, where: str) -> float:
    """A finite number of seconds (messages built only on error: this runs for every candidate)."""
    if type(value) is float or (type(value) is int and -_BIG < value < _BIG):  # the common case, checked fast
        if math.isfinite(value):
            return float(value)  # before 0 or past the duration: clipped and counted when scored
        raise PredictionsError(f"{where}: {label} {part} is {value!r}; times must be finite")
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise PredictionsError(f"{where}: {label} {part} must be a number of seconds, got {shorten(value)}")
    try:
        x = float(value)
    except OverflowError:  # an integer too large for a float
        raise PredictionsError(f"{where}: {label} {part} is too large a number ({shorten(value)})") from None
    if not math.isfinite(x):
        raise PredictionsError(f"{where}: {label} {part} is {value!r}; times must be finite")
    return x


_BIG = 2**53  # integers below this convert to float exactly


def _float(value: int | float) -> float:
    try:
        return float(value)
    except OverflowError:  # an integer past the float range is no finite number
        return math.inf


def _span(item: Any, where: str, rank: int | None) -> tuple[float, float, float | None]:
    label = "pred" if rank is None else f"pred[{rank}]"
    if not isinstance(item, (list, tuple)) or len(item) not in ((2,) if rank is None else (2, 3)):
        size = "[start, end]" if rank is None else "[start, end] or [start, end, score]"
        raise PredictionsError(f"{where}: {label} must be {size}, got {shorten(item)}")
    start = _time(item[0], label, "start", where)
    end = _time(item[1], label, "end", where)
    if start > end:
        raise PredictionsError(f"{where}: {label} starts after it ends ({start} > {end})")
    if len(item) == 2:
        return start, end, None
    s = item[2]
    if type(s) is float and math.isfinite(s):  # the common case
        return start, end, s
    if isinstance(s, bool) or not isinstance(s, (int, float)) or not math.isfinite(_float(s)):
        raise PredictionsError(f"{where}: {label} score must be a finite number, got {shorten(s)}")
    return start, end, float(s)


def parse_prediction(obj: Any, where: str) -> Prediction:
    """Check one decoded row and return it as a :class:`Prediction`; ``where`` names it in errors."""
    if not isinstance(obj, Mapping):
        raise PredictionsError(f"{where}: expected a JSON object, got {type(obj).__name__}")
    if "pred_relevant_windows" in obj and "pred" not in obj:
        return _parse_moment_detr(obj, where)
    missing = [k for k in ("video", "query", "pred") if k not in obj]
    if missing:
        raise PredictionsError(f"{where}: missing keys {missing} (a row is "
                               '{"video": ID, "query": TEXT, "pred": [start, end]})')
    video = obj["video"]
    if isinstance(video, bool) or not isinstance(video, (str, int)) or not str(video).strip():
        raise PredictionsError(f"{where}: 'video' must be a non-empty string id, got {video!r}")
    query = obj["query"]
    if not isinstance(query, str) or not query.strip():
        raise PredictionsError(f"{where}: 'query' must be a non-empty string, got {shorten(query)}")
    pred = obj["pred"]
    if not isinstance(pred, (list, tuple)) or not pred:
        raise PredictionsError(f"{where}: 'pred' must be [start, end] or a non-empty list of "
                               f"[start, end, score] best first, got {shorten(pred)}")
    ranked = isinstance(pred[0], (list, tuple))
    if ranked:
        rows = [_span(item, where, i) for i, item in enumerate(pred)]
    else:
        rows = [_span(pred, where, None)]
    given = [r[2] for r in rows]
    scores = None
    if any(s is not None for s in given):
        if any(s is None for s in given):
            raise PredictionsError(f"{where}: give a score for every candidate of 'pred' or for none")
        scores = np.array(given, dtype=np.float64)
        rising = next((i for i in range(len(given) - 1) if given[i + 1] > given[i]), None)  # plain floats: fast
        if rising is not None:
            i = rising
            raise PredictionsError(f"{where}: candidates must be best first, but pred[{i + 1}] scores "
                                   f"{scores[i + 1]} > pred[{i}] {scores[i]}")
    spans = np.array([[r[0], r[1]] for r in rows], dtype=np.float64)
    return Prediction(str(video), query, spans, scores, ranked, where)


def _parse_moment_detr(obj: Mapping[str, Any], where: str) -> Prediction:
    """A Moment-DETR row: ``qid``, ``vid``, ``query``, ``pred_relevant_windows`` [[st, ed, score], ...]."""
    missing = [k for k in ("qid", "vid", "query") if k not in obj]
    if missing:
        raise PredictionsError(f"{where}: a Moment-DETR row (pred_relevant_windows) misses keys {missing}")
    qid, video, query, windows = obj["qid"], obj["vid"], obj["query"], obj["pred_relevant_windows"]
    if isinstance(qid, bool) or not isinstance(qid, (str, int)):
        raise PredictionsError(f"{where}: 'qid' must be an integer or string id, got {shorten(qid)}")
    if isinstance(video, bool) or not isinstance(video, (str, int)) or not str(video).strip():
        raise PredictionsError(f"{where}: 'vid' must be a non-empty string id, got {shorten(video)}")
    if not isinstance(query, str) or not query.strip():
        raise PredictionsError(f"{where}: 'query' must be a non-empty string, got {shorten(query)}")
    if not isinstance(windows, (list, tuple)) or not windows:
        raise PredictionsError(f"{where}: 'pred_relevant_windows' must be a non-empty list of "
                               f"[start, end, score], got {shorten(windows)}")
    rows = []
    for i, item in enumerate(windows):
        if not isinstance(item, (list, tuple)) or len(item) not in (2, 3):
            raise PredictionsError(f"{where}: pred_relevant_windows[{i}] must be [start, end, score], got {shorten(item)}")
        rows.append(_span(item, where, i))
    given = [r[2] for r in rows]
    if any(g is None for g in given) and any(g is not None for g in given):
        raise PredictionsError(f"{where}: give a score for every window of 'pred_relevant_windows' or for none")
    scores = None if given[0] is None else np.array(given, dtype=np.float64)
    spans = np.array([[r[0], r[1]] for r in rows], dtype=np.float64)
    return Prediction(str(video), query, spans, scores, True, where, qid)


def iter_predictions(path: str | Path) -> Iterator[Prediction]:
    """The rows of a predictions file one at a time (the file is streamed, never held whole); a bad
    row raises :class:`~cmagrounding.errors.PredictionsError` naming ``path:line``."""
    for where, obj in jsonl_rows(path, PredictionsError, "predictions file"):
        yield parse_prediction(obj, where)


def load_predictions(path: str | Path) -> list[Prediction]:
    """Read a predictions JSON Lines file (blank lines skipped); every bad row raises
    :class:`~cmagrounding.errors.PredictionsError` naming ``path:line``."""
    out = list(iter_predictions(path))
    if not out:
        raise PredictionsError(f"{Path(path)}: no prediction rows")
    return out


def as_predictions(predictions: str | Path | Iterable[Prediction | Mapping[str, Any]]) -> tuple[list[Prediction], str]:
    """A predictions file's rows, or rows given as dicts / :class:`Prediction`, with their source's name."""
    if isinstance(predictions, (str, Path)):
        return load_predictions(predictions), str(predictions)
    out = [p if isinstance(p, Prediction) else parse_prediction(p, f"<predictions>:row {i}")
           for i, p in enumerate(predictions, 1)]
    if not out:
        raise PredictionsError("<predictions>: no prediction rows")
    return out, "<predictions>"


def stream_predictions(predictions: str | Path | Iterable[Prediction | Mapping[str, Any]]) -> tuple[Iterator[Prediction], str]:
    """Like :func:`as_predictions`, but the rows one at a time (a file is streamed)."""
    if isinstance(predictions, (str, Path)):
        return iter_predictions(predictions), str(predictions)
    rows = (p if isinstance(p, Prediction) else parse_prediction(p, f"<predictions>:row {i}")
            for i, p in enumerate(predictions, 1))
    return rows, "<predictions>"
