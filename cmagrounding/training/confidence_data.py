"""Training windows for the confidence head: with the whole moment (label 1) or none of it (label 0).

The confidence head (:mod:`cmagrounding.model.confidence`, an addition to the paper) answers "does
the sentence's moment lie in these clips?", so that the windows of a long video can be ranked
(:mod:`cmagrounding.windows`). It needs windows of about the trained length that contain the whole
moment and windows that contain none of it, and both cost no extraction: they are cut from the
training videos' feature rows (each row is extracted alone, so a cut changes no row).

The choice (docs/training.md, "The confidence head"): where training videos are about one window
long (e.g. Charades-STA's ~30 s, or generated 16-24 s videos), a window of one video without the
moment is much shorter than the trained length, while at inference every window of a long video
has the trained length. Short negatives next to
full-length positives would teach the head "short means absent", which is useless there. So every
confidence window has a length drawn from the training videos' lengths (in rows) and is made of two
segments: one of the sentence's own video (holding the whole moment for a positive, only rows
outside it for a negative: the same scene and objects, other events, the hard case) and one of
another training video that has no event of the same meaning, in random order. Both classes have
the same lengths and the same kind of junction between the segments, so neither tells them apart;
only the moment does. (A long video is one continuous scene; the junction never appears at
inference, and the head never learns to rely on it because both labels carry it.) Training videos
longer than a window give windows of one video instead (:func:`continuous_windows`); which videos
get which is decided by :func:`cmagrounding.training.head.head_windows`.

Hard other segments (``hard_fraction``): in a long video most windows that lack the moment hold a
*similar* event (the same object moving another way, another shape doing the same thing), and those
are what outrank the right window. A random other video rarely holds one. So a share of the
windows (both labels, so that a confuser in the window says nothing about the label) take their
other segment around an event of another video whose sentence shares most of its words with the
query (Jaccard >= ``hard_overlap`` of the word sets) but means something else.

Partial negatives (``partial_fraction``): at inference the windows of a long video that cut the
moment (a window edge inside it) hold only part of it; their answer is cut at the edge, and such a
window outranking one with the whole moment costs the right answer. A share of the negatives
therefore holds part of the moment, at most ``partial_max`` of its rows, cut at the window's edge
(the own segment placed at that edge), with label 0 like every window without the whole moment.

A window is a feature-store view ``"VIDEO@A-B|OTHER@C-D"`` (rows ``A:B`` of VIDEO then ``C:D`` of
OTHER), read through :class:`WindowStore`. Labels: 1.0 positive (with the re-timed moment), 0.0
negative (no moment: the loss leaves its regression and attention terms out), NaN for the plain
training videos (regression and attention as in the paper, no confidence term).
"""

from __future__ import annotations

import math
from typing import Any, Hashable, Mapping, Sequence

import numpy as np
import torch

from cmagrounding.errors import ConfigError
from cmagrounding.training.annotations import Annotation
from cmagrounding.training.crops import CroppedStore, parse_view  # noqa: F401  (parse_view: re-exported)
from cmagrounding.training.dataset import GroundingDataset
from cmagrounding.training.head_config import ConfidenceSettings

__all__ = ["ConfidenceSettings", "WindowStore", "ConfidenceDataset", "confidence_windows", "continuous_windows",
           "absent_windows", "similar_events", "parse_view"]


class WindowStore(CroppedStore):
    """A feature store that also serves window views ``"VIDEO@A-B|OTHER@C-D"`` of ``store``
    (:class:`~cmagrounding.training.crops.CroppedStore`, under the name this module's callers use)."""


def _moment_rows(a: Annotation, n: int, seconds_per_row: float) -> tuple[int, int]:
    """Rows ``[first, last)`` that overlap the moment (the rows outside hold none of it)."""
    first = min(int(math.floor(a.start / seconds_per_row)), n - 1)
    last = min(max(int(math.ceil(a.end / seconds_per_row)), first + 1), n)
    return first, last


def _meaning_key(meaning_of: Mapping[tuple[str, str], Hashable] | None) -> Any:
    """What an annotation's sentence means: ``meaning_of[(video, query)]``, else the lower-cased sentence."""

    def key(a: Annotation) -> Hashable:
        if meaning_of is not None and (a.video, a.query) in meaning_of:
            return meaning_of[(a.video, a.query)]
        return " ".join(a.query.lower().split())

    return key


def _negative_count(s: ConfidenceSettings, rng: np.random.Generator) -> int:
    """Negatives for one annotation: ``negative_ratio x positives``, a fractional part drawn at random."""
    count = s.negative_ratio * s.positives
    return int(count) + int(rng.random() < count - int(count))


def _partial_rows(s: ConfidenceSettings, first: int, last: int, rng: np.random.Generator) -> int | None:
    """Rows of the moment ``[first, last)`` a partial negative holds: 1 to ``partial_max`` of them
    (None: the moment is too short to cut)."""
    k_max = int(math.floor(s.partial_max * (last - first)))
    return int(rng.integers(1, k_max + 1)) if k_max >= 1 else None


def _words(query: str) -> frozenset[str]:
    return frozenset(query.lower().split())


def _jaccard(a: frozenset[str], b: frozenset[str]) -> float:
    """Word-set overlap of two sentences (``_words``): |a & b| / |a | b|."""
    return len(a & b) / len(a | b)


def _holding(first: int, last: int, length: int, n: int) -> tuple[int, int]:
    """First rows ``(w_min, w_max)`` of the ``length``-row windows of an ``n``-row video that hold rows
    ``[first, last)`` whole (empty when ``w_min > w_max``)."""
    return max(0, last - length), min(first, n - length)


def similar_events(
    annotations: Sequence[Annotation], key: Any, rows_of: Mapping[str, int], seconds_per_row: float, overlap: float,
) -> dict[Hashable, list[tuple[str, int, int]]]:
    """For each meaning, the events of other meanings whose sentence shares at least ``overlap``
    (Jaccard) of its words: ``meaning -> [(video, first_row, last_row), ...]``."""
    texts: dict[frozenset[str], set[Hashable]] = {}
    events: dict[frozenset[str], list[tuple[Hashable, str, int, int]]] = {}
    for a in annotations:
        w, k = _words(a.query), key(a)
        texts.setdefault(w, set()).add(k)
        first, last = _moment_rows(a, int(rows_of[a.video]), seconds_per_row)
        events.setdefault(w, []).append((k, a.video, first, last))
    by_word: dict[str, set[frozenset[str]]] = {}
    for w in texts:
        for t in w:
            by_word.setdefault(t, set()).add(w)
    out: dict[Hashable, list[tuple[str, int, int]]] = {}
    for w, ks in texts.items():
        near = {u for t in w for u in by_word[t] if _jaccard(w, u) >= overlap}
        for k in ks:
            found = out.setdefault(k, [])
            for u in near:
                found.extend((v, f, l) for k2, v, f, l in events[u] if k2 != k)
    return out


def confidence_windows(
    annotations: Sequence[Annotation],
    rows_of: Mapping[str, int],
    seconds_per_row: float,
    settings: ConfidenceSettings,
    *,
    meaning_of: Mapping[tuple[str, str], Hashable] | None = None,
) -> tuple[list[Annotation], list[float]]:
    """Positive and negative windows (as annotations of :class:`WindowStore` views) and their labels.

    ``rows_of`` gives each video's number of feature rows; ``meaning_of[(video, query)]`` what a
    sentence means (paraphrases share it), so that the other video of a window never holds an event
    of the same meaning (default: the lower-cased sentence). A negative's annotation has no
    moment (start = end = 0; its span terms are masked by the loss).
    """
    s = settings
    rng = np.random.default_rng([s.seed, 7])
    videos = sorted({a.video for a in annotations})
    meanings: dict[str, set] = {v: set() for v in videos}

    key = _meaning_key(meaning_of)

    for a in annotations:
        meanings[a.video].add(key(a))
    lengths = [int(rows_of[v]) for v in videos]
    lo_len = s.min_rows if s.min_rows is not None else min(lengths)
    hi_len = s.max_rows if s.max_rows is not None else max(lengths)
    spr = float(seconds_per_row)
    similar = similar_events(annotations, key, rows_of, spr, s.hard_overlap) if s.hard_fraction > 0 else {}

    def hard_other(a: Annotation, need: int) -> tuple[str, int, int] | None:
        """Rows of another video, ``need`` long, around an event similar to ``a``'s (None: none fits)."""
        k = key(a)
        found = similar.get(k, ())
        for _ in range(min(20, len(found))):
            u, f, l = found[int(rng.integers(len(found)))]
            n_u = int(rows_of[u])
            if u == a.video or k in meanings[u] or n_u < need or l - f > need:
                continue
            c = int(rng.integers(max(0, l - need), min(f, n_u - need) + 1))
            return u, c, c + need
        return None

    def other(a: Annotation, need: int) -> tuple[str, int, int] | None:
        k = key(a)
        if s.hard_fraction > 0 and rng.random() < s.hard_fraction:
            pick = hard_other(a, need)
            if pick is not None:
                return pick
        for _ in range(20):
            u = videos[int(rng.integers(len(videos)))]
            if u == a.video or k in meanings[u] or rows_of[u] < need:
                continue
            c = int(rng.integers(0, int(rows_of[u]) - need + 1))
            return u, c, c + need
        return None

    out: list[Annotation] = []
    labels: list[float] = []
    for a in annotations:
        n = int(rows_of[a.video])
        first, last = _moment_rows(a, n, spr)
        negatives = _negative_count(s, rng)
        for label, count in ((1.0, s.positives), (0.0, negatives)):
            for _ in range(count):
                L = int(rng.integers(lo_len, hi_len + 1))
                partial = label == 0.0 and s.partial_fraction > 0 and bool(rng.random() < s.partial_fraction)
                cut_right = False
                if label == 1.0:  # own rows [lo, hi) hold rows [first, last)
                    m_min, m_max = last - first, min(n, L - s.min_other)
                    if m_min > m_max:
                        continue
                    m = int(rng.integers(m_min, m_max + 1))
                    lo = int(rng.integers(max(0, last - m), min(first, n - m) + 1))
                elif partial:  # own rows [lo, lo + m) cut the moment: k of its rows, at a window edge
                    k = _partial_rows(s, first, last, rng)
                    if k is None:
                        continue
                    cut_right = bool(rng.random() < 0.5)  # the own segment ends inside the moment
                    room = first + k if cut_right else n - (last - k)  # own rows on that side, with the k
                    m_max = min(room, L - s.min_other)
                    if m_max < max(k, s.min_own):
                        continue
                    m = int(rng.integers(max(k, s.min_own), m_max + 1))
                    lo = first + k - m if cut_right else last - k
                else:  # own rows before or after the moment only
                    regions = [(0, first), (last, n)]
                    regions = [(r0, r1) for r0, r1 in regions if r1 - r0 >= s.min_own]
                    if not regions:
                        continue
                    r0, r1 = regions[int(rng.integers(len(regions)))]
                    m_max = min(r1 - r0, L - s.min_other)
                    if m_max < s.min_own:
                        continue
                    m = int(rng.integers(s.min_own, m_max + 1))
                    lo = int(rng.integers(r0, r1 - m + 1))
                pick = other(a, L - m)
                if pick is None:
                    continue
                u, c, d = pick
                own = f"{a.video}@{lo}-{lo + m}"
                oth = f"{u}@{c}-{d}"
                # a partial negative's cut lies at the window's edge, as in a long video's window
                own_first = (not cut_right) if partial else bool(rng.random() < 0.5)
                view = f"{own}|{oth}" if own_first else f"{oth}|{own}"
                duration = L * spr
                if label == 1.0:
                    shift = (lo if own_first else lo - (L - m)) * spr  # window second = video second - shift
                    own_lo = (0 if own_first else L - m) * spr
                    own_hi = own_lo + m * spr
                    start = min(max(a.start - shift, own_lo), own_hi)
                    end = min(max(a.end - shift, start), own_hi)
                    out.append(Annotation(view, duration, a.query, start, end))
                else:
                    out.append(Annotation(view, duration, a.query, 0.0, 0.0))
                labels.append(label)
    return out, labels


def continuous_windows(
    annotations: Sequence[Annotation],
    rows_of: Mapping[str, int],
    seconds_per_row: float,
    settings: ConfidenceSettings,
    lengths: tuple[int, int],
    *,
    meaning_of: Mapping[tuple[str, str], Hashable] | None = None,
) -> tuple[list[Annotation], list[float]]:
    """Windows of one continuous video each, for training videos longer than a window.

    Where the training set has videos of several window lengths, their windows are what inference
    sees in a long video: one scene, no junction, the other events of that scene around. Each is a
    view ``"VIDEO@A-B"`` of ``L`` rows (``L`` uniform in ``lengths``, inclusive): positives hold the
    whole moment (re-timed), negatives none of its rows, or with ``settings.partial_fraction``
    part of it (at most ``partial_max`` of its rows, cut at the window's edge). A sentence whose
    meaning occurs twice in its video is left out (a window could hold the other occurrence).
    ``positives`` and ``negative_ratio`` count per annotation as in :func:`confidence_windows`.
    """
    s = settings
    lo_len, hi_len = int(lengths[0]), int(lengths[1])
    if not 1 <= lo_len <= hi_len:
        raise ConfigError(f"continuous window lengths must satisfy 1 <= min <= max, got {lengths!r}")
    rng = np.random.default_rng([s.seed, 11])
    spr = float(seconds_per_row)

    key = _meaning_key(meaning_of)

    count_of: dict[tuple[str, Hashable], int] = {}
    for a in annotations:
        count_of[(a.video, key(a))] = count_of.get((a.video, key(a)), 0) + 1
    out: list[Annotation] = []
    labels: list[float] = []
    for a in annotations:
        if count_of[(a.video, key(a))] > 1:
            continue
        n = int(rows_of[a.video])
        first, last = _moment_rows(a, n, spr)
        negatives = _negative_count(s, rng)
        for label, count in ((1.0, s.positives), (0.0, negatives)):
            for _ in range(count):
                L = min(int(rng.integers(lo_len, hi_len + 1)), n)
                if label == 1.0:  # window [w, w + L) holds [first, last)
                    w_min, w_max = _holding(first, last, L, n)
                    if w_min > w_max:
                        continue
                    w = int(rng.integers(w_min, w_max + 1))
                elif s.partial_fraction > 0 and rng.random() < s.partial_fraction:
                    k = _partial_rows(s, first, last, rng)
                    if k is None:
                        continue
                    w = first + k - L if rng.random() < 0.5 else last - k  # the window ends / begins inside
                    if not 0 <= w <= n - L:
                        continue
                else:  # before or after the moment
                    sides = [r for r in ((0, first - L), (last, n - L)) if r[0] <= r[1]]
                    if not sides:
                        continue
                    w_min, w_max = sides[int(rng.integers(len(sides)))]
                    w = int(rng.integers(w_min, w_max + 1))
                view = f"{a.video}@{w}-{w + L}"
                if label == 1.0:
                    start = min(max(a.start - w * spr, 0.0), L * spr)
                    end = min(max(a.end - w * spr, start), L * spr)
                    out.append(Annotation(view, L * spr, a.query, start, end))
                else:
                    out.append(Annotation(view, L * spr, a.query, 0.0, 0.0))
                labels.append(label)
    return out, labels


def mine_absent(annotations: Sequence[Annotation], per_annotation: float, *, hard_fraction: float = 0.5,
                seed: int = 0) -> dict[str, list[str]]:
    """Absent sentences mined from the training set itself: ``{video: [query, ...]}`` for
    :func:`absent_windows`, about ``per_annotation`` per annotation of each video (a fractional part
    drawn at random).

    Candidates for a video are the other videos' sentences whose word set (``_words``) is that of
    none of its own sentences, so an event the video has under the same words is never called
    absent. ``hard_fraction`` of the draws take one of the candidates most alike to the video's own
    sentences (the highest word-set Jaccard: its own shapes doing something else), the rest one at
    random. It assumes that a video's annotations name every event in it.
    """
    if per_annotation < 0 or not 0.0 <= hard_fraction <= 1.0:
        raise ConfigError(f"mine_absent needs per_annotation >= 0 and hard_fraction in [0, 1], "
                          f"got {per_annotation!r}, {hard_fraction!r}")
    rng = np.random.default_rng([seed, 29])
    own: dict[str, list[Annotation]] = {}
    for a in annotations:
        own.setdefault(a.video, []).append(a)
    pool = sorted({a.query for a in annotations})
    pool_words = [_words(q) for q in pool]
    out: dict[str, list[str]] = {}
    for video in sorted(own):
        mine = {_words(a.query) for a in own[video]}
        cand = [i for i, w in enumerate(pool_words) if w not in mine]
        want = per_annotation * len(own[video])
        count = int(want) + int(rng.random() < want - int(want))
        if not cand or count == 0:
            continue
        alike = np.array([max(_jaccard(pool_words[i], w) for w in mine) for i in cand])
        top = [cand[j] for j in np.flatnonzero(alike == alike.max())]
        picks = [top[int(rng.integers(len(top)))] if rng.random() < hard_fraction else cand[int(rng.integers(len(cand)))]
                 for _ in range(count)]
        out[video] = [pool[i] for i in picks]
    return out


def absent_windows(
    absent: Mapping[str, Sequence[str]],
    rows_of: Mapping[str, int],
    seconds_per_row: float,
    lengths: tuple[int, int],
    *,
    seed: int = 0,
    annotations: Sequence[Annotation] = (),
    hard_fraction: float = 0.0,
) -> tuple[list[Annotation], list[float]]:
    """Negatives for sentences that are in no part of their video ("not in this video").

    ``absent[video]`` are sentences known to describe nothing in ``video`` (for generated videos,
    meanings none of its events has: :func:`tools.demo.absent.absent_sentences`). Each
    becomes one window ``"VIDEO@A-B"`` of ``L`` rows (``L`` uniform in ``lengths``, inclusive, at most
    the video's rows), label 0. The windows from :func:`continuous_windows` only pair a window with
    a sentence that is elsewhere in the same video; at inference the head must also score low a
    sentence that is nowhere, and the window that outranks the others is the one holding the most
    similar event. So with ``hard_fraction`` a share of the windows holds, whole, the event among
    ``annotations`` of that video whose sentence shares most words with the absent one (word-set
    Jaccard > 0; ties drawn at random); the others are placed at random.
    """
    lo_len, hi_len = int(lengths[0]), int(lengths[1])
    if not 1 <= lo_len <= hi_len:
        raise ConfigError(f"absent window lengths must satisfy 1 <= min <= max, got {lengths!r}")
    if not 0.0 <= hard_fraction <= 1.0:
        raise ConfigError(f"hard_fraction must be in [0, 1], got {hard_fraction!r}")
    rng = np.random.default_rng([seed, 13])
    spr = float(seconds_per_row)
    events: dict[str, list[tuple[frozenset[str], Annotation]]] = {}  # video -> its sentences' words, annotations
    for a in annotations:
        events.setdefault(a.video, []).append((_words(a.query), a))
    out: list[Annotation] = []
    for video in sorted(absent):
        if video not in rows_of:
            raise ConfigError(f"absent sentences for video {video!r}, which has no features")
        n = int(rows_of[video])
        for query in absent[video]:
            L = min(int(rng.integers(lo_len, hi_len + 1)), n)
            w_min, w_max = 0, n - L
            if events.get(video) and rng.random() < hard_fraction:
                words = _words(query)
                overlap = [_jaccard(words, ew) for ew, _ in events[video]]
                best = max(overlap)
                if best > 0:
                    near = [e for (_, e), o in zip(events[video], overlap) if o == best]
                    first, last = _moment_rows(near[int(rng.integers(len(near)))], n, spr)
                    lo, hi = _holding(first, last, L, n)
                    if lo <= hi:  # the window can hold the whole event
                        w_min, w_max = lo, hi
            w = int(rng.integers(w_min, w_max + 1))
            out.append(Annotation(f"{video}@{w}-{w + L}", L * spr, query, 0.0, 0.0))
    return out, [0.0] * len(out)


class ConfidenceDataset(GroundingDataset):
    """A :class:`GroundingDataset` whose items also carry ``confidence`` (a float: 1, 0 or NaN).

    ``labels[i]`` belongs to ``annotations[i]``; the store must serve the window views
    (:class:`WindowStore`). Collated batches get ``confidence`` (B,) for the loss.
    """

    def __init__(self, annotations: Sequence[Annotation], labels: Sequence[float], store: Any, *args: Any, **kw: Any):
        super().__init__(annotations, store, *args, **kw)
        if len(labels) != len(self.annotations):
            raise ConfigError(f"got {len(labels)} confidence labels for {len(self.annotations)} annotations")
        self.labels = np.asarray(labels, dtype=np.float32)

    def __getitem__(self, index: int) -> dict[str, Any]:
        item = super().__getitem__(index)
        item["confidence"] = torch.tensor(float(self.labels[index]), dtype=torch.float32)
        return item
