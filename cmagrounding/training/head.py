"""The confidence head's part of a training run (an addition to the paper): its settings, its
training windows, its validation AUROC, and the window settings a trained model records.

A run with ``HeadSettings(enabled=True)`` trains the head alongside the network
(:func:`cmagrounding.training.protocol.run_recipe`) or alone on a trained model's frozen weights
(:func:`cmagrounding.training.protocol.run_head_only`). Its items (docs/training.md, "The confidence
head"): the training annotations as in the paper (label NaN: no confidence term) plus windows cut
from the training videos' feature rows (:mod:`cmagrounding.training.confidence_data`):

* videos no longer than a window: **joined** windows (own segment + another video's), label 1
  with the whole moment, 0 without any of it (``windows``: hard others, partial negatives);
* videos longer than a window (``> max_rows``): **continuous** windows of the one video;
* sentences known to be nowhere in a video (``absent``, a JSON Lines file ``{"video", "query"}``),
  and those mined from the other videos' sentences (``head.mined_absent``): one window each,
  label 0, a share around the video's most similar event.

Window lengths are the training videos' lengths in rows, capped at the network's N clips. Shapes:
n feature rows, D feature width.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Mapping, Sequence

import numpy as np

from cmagrounding._strict_json import loads
from cmagrounding.errors import DatasetError
from cmagrounding.training.annotations import Annotation
from cmagrounding.training.confidence_data import absent_windows, confidence_windows, continuous_windows, mine_absent
from cmagrounding.training.head_config import ConfidenceSettings, HeadSettings, WindowRule

__all__ = ["HeadSettings", "WindowRule", "binary_auroc", "duration_summary", "feature_rows", "seconds_per_row",
           "head_windows", "head_auroc", "load_absent", "window_settings"]


def binary_auroc(scores: Any, labels: Any) -> float:
    """Area under the ROC curve of ``scores`` for binary ``labels`` (ties count one half)."""
    scores = np.asarray(scores, dtype=np.float64)
    labels = np.asarray(labels).astype(bool)
    pos, neg = scores[labels], scores[~labels]
    if len(pos) == 0 or len(neg) == 0:
        raise ValueError("AUROC needs both positive and negative examples")
    allv = np.concatenate([pos, neg])
    # mid-ranks of ties: the Mann-Whitney U statistic / (|pos| |neg|)
    _, inverse, counts = np.unique(allv, return_inverse=True, return_counts=True)
    ends = np.cumsum(counts)
    ranks = (ends - (counts - 1) / 2.0)[inverse]
    return float((ranks[: len(pos)].sum() - len(pos) * (len(pos) + 1) / 2) / (len(pos) * len(neg)))


def duration_summary(annotations: Sequence[Annotation]) -> dict[str, float]:
    """Range and median (seconds) of the videos' durations, and their number."""
    d = np.array(sorted({a.video: a.duration for a in annotations}.values()), dtype=np.float64)
    if len(d) == 0:
        raise DatasetError("no training videos to take durations of")
    return {"min": round(float(d.min()), 3), "max": round(float(d.max()), 3), "median": round(float(np.median(d)), 3),
            "videos": int(len(d))}


def feature_rows(store: Any, videos: Any) -> dict[str, int]:
    """Video id -> number of feature rows (n) in ``store``."""
    return {v: int(store.get(v).shape[0]) for v in sorted(set(videos))}


def seconds_per_row(video_config: Any, annotations: Sequence[Annotation], rows_of: Mapping[str, int]) -> float:
    """Seconds of video per feature row: ``stride / fps`` for fixed-rate features (what
    ``extract-features`` writes), else the median of duration / rows over the training videos."""
    if video_config is not None and getattr(video_config, "scheme", None) == "fixed_rate" and video_config.fps:
        return float(video_config.stride) / float(video_config.fps)
    ratios = [a.duration / rows_of[a.video] for a in {a.video: a for a in annotations}.values()]
    return float(np.median(ratios))


def window_settings(train: Sequence[Annotation], spr: float, rule: WindowRule, *,
                    rows_of: Mapping[str, int] | None = None, num_clips: int = 0) -> Any:
    """The ``WindowSettings`` a model trained on ``train`` records: the median duration rounded to
    whole rows of ``spr`` seconds, every ``rule.stride_fraction`` of it, beyond ``rule.longer_than`` x
    the longest training video; with ``rows_of``, of the videos of at most ``num_clips`` rows."""
    from cmagrounding.windows import WindowSettings

    # the videos the network saw whole (at most N rows): long training videos (seen only in
    # windows, e.g. the demo's 180-s ones) must not raise the length from which videos are windowed
    whole = [a for a in train if rows_of is None or rows_of[a.video] <= num_clips]
    durations = duration_summary(whole or train)
    median = max(1, int(round(durations["median"] / spr))) * spr
    settings = WindowSettings.from_trained_durations({**durations, "median": median}, stride_fraction=rule.stride_fraction,
                                                     nms_iou=rule.nms_iou, longer_than=rule.longer_than)
    return settings.replace(trained_durations=durations)


def load_absent(path: str | Path, known_videos: Any = None) -> dict[str, list[str]]:
    """A JSON Lines file of sentences known to be in no part of a video, ``{"video": ID, "query": TEXT}``
    per line -> ``{video: [query, ...]}``. ``known_videos``: refuse ids outside them."""
    path = Path(path)
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except OSError as e:
        raise DatasetError(f"{path}: cannot read the absent sentences ({e})") from None
    out: dict[str, list[str]] = {}
    known = set(known_videos) if known_videos is not None else None
    for i, line in enumerate(lines, 1):
        if not line.strip():
            continue
        row = loads(line, f"{path}:{i}", DatasetError)  # strict: a key twice, NaN, deep nesting refused
        if not isinstance(row, dict) or not isinstance(row.get("video"), str) or not isinstance(row.get("query"), str) \
                or not row["query"].strip():
            raise DatasetError(f'{path}:{i}: expected {{"video": ID, "query": TEXT}}, got {line.strip()[:120]}')
        if known is not None and row["video"] not in known:
            raise DatasetError(f"{path}:{i}: video {row['video']!r} is not a training video")
        out.setdefault(row["video"], []).append(row["query"])
    if not out:
        raise DatasetError(f"{path}: no absent sentences in it")
    return out


def head_windows(train: Sequence[Annotation], rows_of: Mapping[str, int], spr: float, head: HeadSettings,
                 num_clips: int, *, absent: Mapping[str, Sequence[str]] | None = None,
                 seed_offset: int = 0) -> tuple[list[Annotation], list[float], dict[str, Any]]:
    """The confidence head's windows of ``train`` (views that :class:`~cmagrounding.training.crops.CroppedStore`
    serves), their labels (1.0 / 0.0) and a summary of the draw.

    Window lengths: ``[min_rows, max_rows]`` of ``head.windows``, by default the shortest training
    video's rows up to the longest's, at most ``num_clips`` (N). Videos longer than the longest window give continuous
    windows, the others joined ones.
    """
    s = head.windows
    shortest = min(rows_of[a.video] for a in train)
    # at most N rows, and no longer than the longest video: with short videos only, a window of
    # more rows than any of them would never be seen at inference (windows of the median length)
    hi = s.max_rows if s.max_rows is not None else min(num_clips, max(rows_of[a.video] for a in train))
    lo = min(s.min_rows if s.min_rows is not None else shortest, hi)
    s = ConfidenceSettings(**{**s.to_dict(), "min_rows": lo, "max_rows": hi, "seed": s.seed + seed_offset})
    short = [a for a in train if rows_of[a.video] <= hi]
    long = [a for a in train if rows_of[a.video] > hi]
    wins: list[Annotation] = []
    labels: list[float] = []
    if len({a.video for a in short}) >= 2:  # joined windows need another video
        wins, labels = confidence_windows(short, rows_of, spr, s)
    if long:
        ls = s if head.long_negative_ratio is None else ConfidenceSettings(
            **{**s.to_dict(), "negative_ratio": head.long_negative_ratio})
        w, l = continuous_windows(long, rows_of, spr, ls, (lo, hi))
        wins, labels = wins + w, labels + l
    absent_count = mined_count = 0
    if absent:
        w, l = absent_windows(absent, rows_of, spr, (lo, hi), seed=s.seed, annotations=list(train),
                              hard_fraction=head.absent_hard_fraction)
        wins, labels, absent_count = wins + w, labels + l, len(w)
    if head.mined_absent > 0:
        mined = mine_absent(train, head.mined_absent, hard_fraction=head.mined_hard_fraction, seed=s.seed)
        if mined:
            w, l = absent_windows(mined, rows_of, spr, (lo, hi), seed=s.seed + 7, annotations=list(train),
                                  hard_fraction=head.absent_hard_fraction)
            wins, labels, mined_count = wins + w, labels + l, len(w)
    summary = {"windows": len(wins), "positives": int(sum(labels)), "lengths_rows": [lo, hi],
               "joined_from_videos": len({a.video for a in short}), "continuous_from_videos": len({a.video for a in long}),
               "absent_windows": absent_count, "mined_absent_windows": mined_count}
    if not wins:
        raise DatasetError(f"no confidence windows could be drawn from {len(train)} training annotations "
                           f"(window lengths {lo}-{hi} rows)")
    return wins, labels, summary


def head_auroc(network: Any, dataset: Any, batch: int = 256) -> float:
    """AUROC of the head's confidence on a :class:`~cmagrounding.training.confidence_data.ConfidenceDataset`
    (network in eval mode on the CPU)."""
    import torch

    from cmagrounding.training.dataset import collate

    network = network.cpu().eval()
    scores = []
    with torch.no_grad():
        for i in range(0, len(dataset), batch):
            b = collate([dataset[j] for j in range(i, min(i + batch, len(dataset)))])
            out = network(b["video"], b["video_mask"], b["words"], b["word_mask"])
            scores.append(torch.sigmoid(out.confidence_logit).numpy())
    return binary_auroc(np.concatenate(scores), np.asarray(dataset.labels) == 1.0)
