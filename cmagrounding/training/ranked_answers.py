"""A pretrained Grounder's ranked answers on a dataset split's precomputed features
(``cmagrounding evaluate --model ... --top-k K``).

Each video's stored features (n, D) become :class:`~cmagrounding.video.features.VideoFeatures`
whose rows evenly cover ``[0, duration]`` (the annotation's duration: the seconds the training
targets are normalized by, Eq. 22), and all its queries go once through the Grounder's one
inference path (``Grounder.localize(features, queries, top_k=K)``: windows -> network ->
candidates -> NMS -> top-k). A video run whole gives one candidate per query (the evaluation's
answer, offset-0 resampling); a model with recorded window settings, on a video longer than its
``windows.when_longer_than``, gives up to K windows' answers, ranked by score. In fp32, as all
evaluation.

Spans are written as the network answers them: Eq. 22's inverse on the candidate's window
(``Moment.span`` on ``Moment.window``, the whole video when None), before the facade's one-clip
widening of a very short answer, so a video run whole scores exactly as the default evaluation
(which maps ``span * duration``); the ranking is the Grounder's. One exception: a ReLU span head's
answer past the video's end is clamped to it here (``Moment.span`` lies in [0, 1]) but not in the
default evaluation; the library's convention clips it there too, so only LGI's row can differ.
"""

from __future__ import annotations

import warnings
from typing import TYPE_CHECKING, Sequence

import numpy as np

if TYPE_CHECKING:  # pragma: no cover
    from cmagrounding.grounder import Grounder
    from cmagrounding.training.annotations import Annotation
    from cmagrounding.training.stores import FeatureStore

__all__ = ["ranked_answers", "top1"]


def ranked_answers(grounder: "Grounder", annotations: Sequence["Annotation"], store: "FeatureStore", top_k: int,
                   batch_size: int = 64) -> list[tuple[np.ndarray, np.ndarray]]:
    """Per annotation, in order: its candidates' spans (K_i, 2) in seconds and scores (K_i,), best
    first, 1 <= K_i <= ``top_k``."""
    from cmagrounding.errors import QueryWarning
    from cmagrounding.video.features import VideoFeatures
    from cmagrounding.windows import check_top_k

    k = check_top_k(top_k)
    by_video: dict[tuple[str, float], list[int]] = {}
    for i, a in enumerate(annotations):
        by_video.setdefault((a.video, float(a.duration)), []).append(i)
    out: list[tuple[np.ndarray, np.ndarray] | None] = [None] * len(annotations)
    precision, grounder.network_precision = grounder.network_precision, "fp32"  # evaluation is fp32 everywhere
    try:
        for (video, duration), rows in by_video.items():
            feats = np.asarray(store.get(video), dtype=np.float32)
            edges = np.linspace(0.0, duration, feats.shape[0] + 1)
            vf = VideoFeatures(feats, np.stack([edges[:-1], edges[1:]], axis=1), duration, grounder.video_config,
                               source=video)
            with warnings.catch_warnings():  # long or unknown-word queries: read as the default evaluation
                warnings.simplefilter("ignore", QueryWarning)  # reads them, silently (no line per query)
                answers = grounder.localize(vf, [annotations[i].query for i in rows], top_k=k, batch_size=batch_size)
            for i, moments in zip(rows, answers):
                out[i] = (np.array([_unwidened(m) for m in moments], dtype=np.float64).reshape(-1, 2),
                          np.array([m.score for m in moments], dtype=np.float64))
    finally:
        grounder.network_precision = precision
    return [o for o in out if o is not None]  # every row answered: localize gives >= 1 moment without min_score


def _unwidened(moment) -> tuple[float, float]:
    """The Moment's answer in seconds without the one-clip widening (Eq. 22 on its window)."""
    w0, w1 = moment.window if moment.window is not None else (0.0, moment.duration)
    return w0 + moment.span[0] * (w1 - w0), w0 + moment.span[1] * (w1 - w0)


def top1(candidates: Sequence[tuple[np.ndarray, np.ndarray]]) -> tuple[np.ndarray, np.ndarray]:
    """The first candidate of each: spans (M, 2) seconds and scores (M,) (what R1 and mIoU score)."""
    return (np.array([s[0] for s, _ in candidates], dtype=np.float64).reshape(-1, 2),
            np.array([c[0] for _, c in candidates], dtype=np.float64))
