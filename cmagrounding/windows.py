"""Windowed grounding of long videos: window layout, spans back to seconds, temporal NMS, top-k.

A CMA network regresses one span normalized by the duration of what it sees (Eq. 20, 22), so it
answers well only on videos about as long as its training videos. For a longer video the features
(extracted once for the whole video) are cut into overlapping windows of ``size`` feature rows every
``stride`` rows (the last window flush with the end), each window runs through the network as a
video of its own, its normalized span is mapped back to the video's seconds, and the candidates are
ranked by a score (the learned confidence, docs/architecture.md "Additions to the paper") and merged
by temporal non-maximum suppression (:func:`sliding_windows`). A whole video is one window too
(:func:`whole_video_window`), so every answer of ``Grounder.localize`` goes through
:func:`run_windows`: one converter to seconds,
one score, one NMS, then one top-k / min-score rule (:func:`select`). Nothing here knows the
network: :func:`run_windows` takes a ``predict`` function, so the facade (``cmagrounding.grounder``)
supplies the model and tests a stub.

Shapes: n feature rows, D feature size, W window rows, M windows or candidates, B a chunk of windows.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable, Protocol, Sequence, TypeVar

import numpy as np

from cmagrounding.errors import ConfigError
from cmagrounding.spans import clip_centres, temporal_iou, unit_to_seconds

__all__ = [
    "Candidate", "WindowSettings", "WindowLayout", "seconds_per_row", "window_layout", "window_seconds", "windows_to_seconds",
    "temporal_nms", "select", "run_windows", "sliding_windows", "whole_video_window",
    "attention_mass", "check_top_k", "check_min_score",
]

#: predict(windows (B, W, D) float32, mask (B, W) bool) -> (spans (B, 2) in [0, 1], scores (B,) or
#: None (then the attention mass inside the answer), attention (B, W) or None)
Predict = Callable[[np.ndarray, np.ndarray], "tuple[np.ndarray, np.ndarray | None, np.ndarray | None]"]


def _check_int(name: str, value: object, minimum: int) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < minimum:
        raise ConfigError(f"{name} must be an integer >= {minimum}, got {value!r}")
    return int(value)


def check_top_k(k: object) -> int:
    """``k`` as an int, or :class:`ConfigError` naming it unless it is an integer >= 1."""
    return _check_int("top_k", k, 1)


def check_min_score(min_score: object) -> float | None:
    """``min_score`` as a float (None = no threshold); NaN or non-numbers raise :class:`ConfigError`."""
    if min_score is None:
        return None
    if isinstance(min_score, bool) or not isinstance(min_score, (int, float, np.floating)) or math.isnan(min_score):
        raise ConfigError(f"min_score must be a number (or None for no threshold), got {min_score!r}")
    return float(min_score)


@dataclass(frozen=True)
class WindowSettings:
    """When and how a model windows a long video; saved in ``config.json`` (docs/pretrained-format.md).

    ``size`` and ``stride`` are seconds (turned into feature rows per video by :meth:`rows`);
    videos longer than ``when_longer_than`` seconds are windowed (by default 1.5 x the longest
    training video); ``trained_durations`` records the training videos' ``min``/``max``/``median``
    seconds the defaults came from.
    """

    size: float
    stride: float
    nms_iou: float = 0.5
    when_longer_than: float | None = None
    trained_durations: dict | None = None

    def __post_init__(self) -> None:
        for name in ("size", "stride"):
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, (int, float)) or not 0 < v < float("inf"):
                raise ConfigError(f"window {name} must be a positive, finite number of seconds, got {v!r}")
        if isinstance(self.nms_iou, bool) or not isinstance(self.nms_iou, (int, float)) or not 0.0 < self.nms_iou <= 1.0:
            raise ConfigError(f"nms_iou must lie in (0, 1], got {self.nms_iou!r}")
        if self.when_longer_than is not None and (isinstance(self.when_longer_than, bool)
                                                  or not isinstance(self.when_longer_than, (int, float))
                                                  or not 0 < self.when_longer_than < float("inf")):
            raise ConfigError(f"when_longer_than must be a positive number of seconds, got {self.when_longer_than!r}")

    @classmethod
    def from_trained_durations(cls, durations: dict, *, stride_fraction: float = 0.25, nms_iou: float = 0.5,
                               longer_than: float = 1.5) -> WindowSettings:
        """Windows of the median training duration every ``stride_fraction`` of it, for videos over
        ``longer_than`` x the longest training duration."""
        size = float(durations["median"])
        return cls(size=size, stride=max(size * stride_fraction, 1e-3), nms_iou=nms_iou,
                   when_longer_than=longer_than * float(durations["max"]), trained_durations=dict(durations))

    def replace(self, **changes: object) -> WindowSettings:
        import dataclasses

        return dataclasses.replace(self, **{k: v for k, v in changes.items() if v is not None})

    def to_dict(self) -> dict:
        return {"size_seconds": self.size, "stride_seconds": self.stride, "nms_iou": self.nms_iou,
                "when_longer_than": self.when_longer_than, "trained_durations": self.trained_durations}

    @classmethod
    def from_dict(cls, d: dict) -> WindowSettings:
        if not isinstance(d, dict):
            raise ConfigError(f"windows settings must be a JSON object, got {type(d).__name__}")
        known = {"size_seconds", "stride_seconds", "nms_iou", "when_longer_than", "trained_durations"}
        unknown = sorted(set(d) - known)
        if unknown or "size_seconds" not in d or "stride_seconds" not in d:
            raise ConfigError(f"windows settings need size_seconds and stride_seconds (known keys {sorted(known)}); "
                              f"got {sorted(d)}")
        return cls(size=d["size_seconds"], stride=d["stride_seconds"], nms_iou=d.get("nms_iou", 0.5),
                   when_longer_than=d.get("when_longer_than"), trained_durations=d.get("trained_durations"))

    @classmethod
    def for_call(cls, base: WindowSettings | None, windowed: bool | None, window: float | None,
                 stride: float | None, nms_iou: float | None) -> WindowSettings | None:
        """One call's settings: the model's ``base`` with the call's overrides; None: one pass.

        ``windowed=False`` never windows; a model without settings windows only when asked, and
        then needs ``window`` (seconds; stride defaults to a quarter of it).
        """
        if windowed is not None and not isinstance(windowed, bool):
            raise ConfigError(f"windowed must be True, False or None, got {windowed!r}")
        if windowed is False:
            return None
        if base is None:
            if not windowed:
                return None
            if window is None:
                raise ConfigError("this model records no window settings (config.json 'windows'): pass window=SECONDS")
            base = cls(size=window, stride=stride if stride is not None else window / 4)
        return base.replace(size=window, stride=stride, nms_iou=nms_iou)

    def applies(self, duration: float) -> bool:
        """Whether a video of ``duration`` seconds is windowed by default."""
        return self.when_longer_than is not None and float(duration) > self.when_longer_than

    def rows(self, spr: float) -> tuple[int, int]:
        """(window, stride) in feature rows of ``spr`` seconds each (at least 1 row each)."""
        cap = float(2**53)  # a window of 1e308 s is "longer than any video", not an OverflowError
        return (max(1, int(round(min(self.size / spr, cap)))), max(1, int(round(min(self.stride / spr, cap)))))


def seconds_per_row(times: np.ndarray) -> float:
    """The features' row spacing in seconds: the median step between row starts (one row: its length)."""
    times = np.asarray(times, dtype=np.float64).reshape(-1, 2)
    if len(times) > 1:
        step = float(np.median(np.diff(times[:, 0])))
        if step > 0:
            return step
    return float(max(times[0, 1] - times[0, 0], 1e-6)) if len(times) else 1.0


@dataclass(frozen=True)
class WindowLayout:
    """Windows over n feature rows: window ``i`` holds rows ``starts[i] : starts[i] + size``."""

    num_rows: int
    size: int
    stride: int
    starts: np.ndarray  # (M,) int64

    def __len__(self) -> int:
        return int(self.starts.shape[0])

    @property
    def rows(self) -> np.ndarray:
        """(M, 2) int64 ``[first, last)`` rows of each window."""
        return np.stack([self.starts, self.starts + self.size], axis=1)


def window_layout(num_rows: int, size: int, stride: int) -> WindowLayout:
    """Windows of ``size`` rows every ``stride`` rows over ``num_rows`` rows; the last one ends on the last row.

    Raises :class:`ConfigError` when ``size`` or ``stride`` is not a positive integer or when
    ``size > num_rows`` (a video shorter than one window is not windowed: run it whole).
    """
    n = _check_int("the number of feature rows", num_rows, 1)
    size = _check_int("window size (rows)", size, 1)
    stride = _check_int("window stride (rows)", stride, 1)
    if size > n:
        raise ConfigError(f"window size {size} rows is longer than the video's {n} feature rows; run it whole")
    starts = list(range(0, n - size + 1, stride))
    if starts[-1] != n - size:  # flush with the end, so that the last rows are seen whole
        starts.append(n - size)
    return WindowLayout(n, size, stride, np.asarray(starts, dtype=np.int64))


def window_seconds(times: np.ndarray, rows: np.ndarray, duration: float) -> np.ndarray:
    """(M, 2) ``(start, end)`` seconds of windows ``rows`` (M, 2) ``[first, last)`` over rows ``times`` (n, 2).

    A window spans from its first row's start to its last row's end, clipped to ``[0, duration]``.
    """
    times = np.asarray(times, dtype=np.float64).reshape(-1, 2)
    rows = np.asarray(rows, dtype=np.int64).reshape(-1, 2)
    out = np.stack([times[rows[:, 0], 0], times[rows[:, 1] - 1, 1]], axis=1)
    return np.clip(out, 0.0, float(duration))


def windows_to_seconds(spans: np.ndarray, bounds: np.ndarray, rows_per_window: int) -> tuple[np.ndarray, np.ndarray]:
    """Normalized spans (M, 2) of windows with seconds ``bounds`` (M, 2) -> video seconds (M, 2), widened (M,).

    Each window is a video of its own for the network: Eq. 22's inverse
    (:func:`cmagrounding.spans.unit_to_seconds`, with its one-clip minimum width) on the window's
    duration, then shifted by the window's start.
    """
    spans = np.asarray(spans, dtype=np.float64).reshape(-1, 2)
    bounds = np.asarray(bounds, dtype=np.float64).reshape(-1, 2)
    out = np.empty_like(spans)
    widened = np.zeros(len(spans), dtype=bool)
    for i, ((t_s, t_e), (w0, w1)) in enumerate(zip(spans, bounds)):
        s, e, widened[i] = unit_to_seconds(float(t_s), float(t_e), float(w1 - w0), rows_per_window)
        out[i] = (w0 + s, w0 + e)
    return out, widened


def temporal_nms(spans: np.ndarray, scores: np.ndarray, iou: float) -> np.ndarray:
    """Greedy temporal NMS: indices of the kept spans, by decreasing score (ties: earlier first).

    A span is dropped when its IoU (:func:`cmagrounding.spans.temporal_iou`) with a kept, better
    span is ``>= iou``. ``iou`` must lie in (0, 1]; 1 keeps everything but exact duplicates.
    """
    if isinstance(iou, bool) or not isinstance(iou, (int, float, np.floating)) or not 0.0 < iou <= 1.0:
        raise ConfigError(f"nms_iou must lie in (0, 1], got {iou!r}")
    spans = np.asarray(spans, dtype=np.float64).reshape(-1, 2)
    scores = np.asarray(scores, dtype=np.float64).reshape(-1)
    if len(spans) != len(scores):
        raise ValueError(f"got {len(spans)} spans but {len(scores)} scores")
    order = np.argsort(-scores, kind="stable")
    kept: list[int] = []
    alive = np.ones(len(order), dtype=bool)
    for j, i in enumerate(order):
        if not alive[j]:
            continue
        kept.append(int(i))
        rest = order[j + 1 :]
        if len(rest):
            overlap = temporal_iou(np.repeat(spans[i : i + 1], len(rest), axis=0), spans[rest])
            alive[j + 1 :] &= overlap < iou
    return np.asarray(kept, dtype=np.int64)


@dataclass(frozen=True)
class Candidate:
    """One window's answer in the video's seconds.

    ``window`` holds the window's ``[first, last)`` feature rows, ``bounds`` its seconds, ``span`` the
    network's normalized span inside it, ``attention`` (W,) its temporal attention (or None),
    ``clip_times`` (W, 2) the seconds of the feature rows the network saw.
    """

    start: float
    end: float
    score: float
    window: tuple[int, int]
    bounds: tuple[float, float]
    span: tuple[float, float]
    widened: bool = False
    attention: np.ndarray | None = None
    clip_times: np.ndarray | None = None  # (W, 2) seconds of the clips the network saw


class Scored(Protocol):
    """Anything with a score (a :class:`Candidate`, a :class:`~cmagrounding.outputs.Moment`)."""

    @property
    def score(self) -> float: ...


T = TypeVar("T", bound=Scored)


def select(ranked: Sequence[T], k: int | None, min_score: float | None) -> T | None | list[T]:
    """The one top-k/min-score rule of ``localize``: from answers best first, those scoring at least
    ``min_score``; then with ``k=None`` the best one (None when none is left), else at most ``k`` of them."""
    kept = [m for m in ranked if min_score is None or m.score >= min_score]
    return (kept[0] if kept else None) if k is None else kept[:k]


def sliding_windows(times: np.ndarray, size: int, stride: int, duration: float) -> tuple[np.ndarray, np.ndarray]:
    """A long video's overlapping windows: ``(index (M, W), bounds (M, 2))`` for :func:`run_windows`.

    Window ``i`` holds the rows ``index[i]`` of :func:`window_layout` (``size`` rows every ``stride``,
    the last flush with the end) over the rows ``times`` (n, 2), and spans ``bounds[i]`` seconds
    (:func:`window_seconds`). Raises :class:`ConfigError` as :func:`window_layout` does.
    """
    times = np.asarray(times, dtype=np.float64).reshape(-1, 2)
    layout = window_layout(len(times), size, stride)
    index = layout.starts[:, None] + np.arange(layout.size)[None, :]  # (M, W) rows of each window
    return index, window_seconds(times, layout.rows, duration)


def whole_video_window(num_rows: int, num_clips: int, duration: float) -> tuple[np.ndarray, np.ndarray]:
    """A whole video as one window: ``(index (1, n), bounds (1, 2))``.

    The network sees the video's rows resampled to at most N clips (LGI's rule, evaluation offset
    0; :func:`cmagrounding.video.resample.resample_indices`) without padding (the output does not
    depend on padded clips: masked everywhere, positions count from the start), over the seconds
    ``[0, duration]`` that the training targets are normalized by (Eq. 22).
    """
    from cmagrounding.video.resample import resample_indices

    return resample_indices(num_rows, num_clips, 0.0)[None, :], np.array([[0.0, float(duration)]])


def attention_mass(attention: np.ndarray, clip_times: np.ndarray, start: float, end: float) -> float:
    """The score of a model without the confidence head: the attention ``a`` (Eq. 18) of the clips
    whose centre lies inside the answer ``[start, end]`` seconds (:func:`cmagrounding.spans.clips_in_span`)."""
    return float(_attention_masses(np.asarray(attention, dtype=np.float32)[None], clip_centres(clip_times)[None],
                                   np.array([[start, end]], dtype=np.float64))[0])


def _attention_masses(attention: np.ndarray, centres: np.ndarray, seconds: np.ndarray) -> np.ndarray:
    """:func:`attention_mass` of M windows at once: attention (M, W) float32, the clips' centres
    (M, W) seconds, answers (M, 2) seconds -> (M,) float64. Each window's selected clips are summed
    alone (as a 1-D array), so the scores equal :func:`attention_mass`'s bit for bit."""
    inside = (centres >= seconds[:, :1]) & (centres <= seconds[:, 1:])  # clips_in_span, per window
    return np.array([float(a[m].sum()) for a, m in zip(attention, inside)], dtype=np.float64)


def run_windows(
    features: np.ndarray,
    times: np.ndarray,
    index: np.ndarray,
    bounds: np.ndarray,
    predict: Predict,
    num_queries: int,
    *,
    nms_iou: float = 0.5,
    batch_size: int = 64,
) -> list[list[Candidate]]:
    """The one inference path: windows -> ``predict`` -> seconds -> score -> NMS; per query, candidates best first.

    ``features`` (n, D), ``times`` (n, 2) each row's seconds; window ``i`` holds rows ``index[i]``
    (M, W) and spans ``bounds[i]`` (M, 2) seconds (a whole video is one window:
    :func:`whole_video_window`). ``predict(windows (B, W, D), mask (B, W))`` answers all Q queries on
    each window of the chunk: spans (B, Q, 2) in [0, 1], scores (B, Q) or None, attention (B, Q, W)
    or None ((B, 2), (B,), (B, W) when Q = 1). Its spans become seconds by :func:`windows_to_seconds`
    (Eq. 22 on the window); a None score is the :func:`attention_mass` inside that answer. Windows
    are cut once for all queries (so the caller can compute a window's query-independent part
    once, Eq. 2), ``max(1, batch_size // Q)`` windows per chunk: memory stays flat in the video's length.
    """
    feats = np.asarray(features, dtype=np.float32)
    times = np.asarray(times, dtype=np.float64).reshape(-1, 2)
    index = np.asarray(index, dtype=np.int64)
    bounds = np.asarray(bounds, dtype=np.float64).reshape(-1, 2)
    batch_size = _check_int("batch_size", batch_size, 1)
    Q = _check_int("the number of queries", num_queries, 1)
    M, W = index.shape
    spans = np.empty((M, Q, 2), dtype=np.float64)
    scores: np.ndarray | None = None
    attention: np.ndarray | None = None
    per_chunk = max(1, batch_size // Q)
    mask = np.ones((min(per_chunk, M), W), dtype=bool)
    for i in range(0, M, per_chunk):
        rows = index[i : i + per_chunk]
        B = len(rows)
        s_b, c_b, a_b = predict(feats[rows], mask[:B])  # (B, W, D) windows
        spans[i : i + B] = np.asarray(s_b, dtype=np.float64).reshape(B, Q, 2)
        if c_b is not None:
            if scores is None:
                scores = np.empty((M, Q), dtype=np.float64)
            scores[i : i + B] = np.asarray(c_b, dtype=np.float64).reshape(B, Q)
        if a_b is not None:
            if attention is None:
                attention = np.zeros((M, Q, W), dtype=np.float32)
            attention[i : i + B] = np.asarray(a_b, dtype=np.float32).reshape(B, Q, W)
    if scores is None and attention is None:
        raise ValueError("predict returned neither scores nor attention: no way to rank the windows")
    clip_times = times[index]  # (M, W, 2)
    # the windows' clip centres serve every query's attention-mass score: computed once, not per query
    centres = clip_centres(times)[index] if scores is None else None  # (M, W)
    out: list[list[Candidate]] = []
    for q in range(Q):
        seconds, widened = windows_to_seconds(spans[:, q], bounds, W)
        if scores is not None:
            score = scores[:, q]
        else:
            score = _attention_masses(attention[:, q], centres, seconds)
        keep = temporal_nms(seconds, score, nms_iou)
        out.append([
            Candidate(
                start=float(seconds[i, 0]), end=float(seconds[i, 1]), score=float(score[i]),
                window=(int(index[i, 0]), int(index[i, -1]) + 1), bounds=(float(bounds[i, 0]), float(bounds[i, 1])),
                span=(float(spans[i, q, 0]), float(spans[i, q, 1])), widened=bool(widened[i]),
                attention=None if attention is None else attention[i, q], clip_times=clip_times[i],
            )
            for i in keep
        ])
    return out
