"""Score a network or a pretrained :class:`~cmagrounding.Grounder` on annotated data.

Evaluation samples every video with offset 0 (LGI's evaluation), predicts one span per query, maps it to
seconds with the video's duration (the targets' axis, ``seconds / duration``) and scores it with
:func:`~cmagrounding.training.metrics.compute_conventions`: the library's convention, with LGI's
(raw ground truth) beside it, each stated in the result. Two query-blind baselines tell whether a
model reads its query at all.

Evaluation runs in fp32 on every device, whatever precision training used: under bf16 autocast a
span would come out with 8 significant bits, about 1/256 of the video's duration.
"""

from __future__ import annotations

import contextlib
import functools
import warnings
from typing import TYPE_CHECKING, Any, Sequence

import numpy as np
import torch
from torch.utils.data import DataLoader

from cmagrounding.training.annotations import Annotation, AnnotationSet
from cmagrounding.training.dataset import GroundingDataset, collate
from cmagrounding.training.metrics import THRESHOLDS, GroundingMetrics, compute_conventions
from cmagrounding.training.stores import FeatureStore

if TYPE_CHECKING:  # pragma: no cover
    from cmagrounding.grounder import Grounder

__all__ = [
    "predict_spans",
    "predict_spans_scores",
    "evaluate_network",
    "evaluate_grounder",
    "grounder_answers",
    "score_answers",
    "shuffle_queries",
    "mean_span_baseline",
]


def _fp32(device: torch.device) -> Any:
    """fp32, even inside a caller's autocast region (e.g. a training step's)."""
    return torch.autocast(device.type, enabled=False) if device.type in ("cpu", "cuda") else contextlib.nullcontext()


@torch.no_grad()
def predict_spans(network: torch.nn.Module, dataset: GroundingDataset, batch_size: int = 256,
                  device: torch.device | str | None = None, amp: bool = False,
                  num_workers: int = 0) -> np.ndarray:
    """Normalized top-1 spans (M, 2) for the M items of ``dataset``, in its order.

    Always in fp32 on every device (training precision does not carry over); ``amp`` is ignored,
    kept so that older calls still run (True warns).
    """
    if amp:
        warnings.warn("evaluation runs in fp32 whatever amp says (reduced precision quantizes spans to about "
                      "1/256 of the duration); the amp argument is ignored", DeprecationWarning, stacklevel=3)
    return predict_spans_scores(network, dataset, batch_size, device, num_workers)[0]


@torch.no_grad()
def predict_spans_scores(network: torch.nn.Module, dataset: GroundingDataset, batch_size: int = 256,
                         device: torch.device | str | None = None,
                         num_workers: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Normalized top-1 spans (M, 2) and their scores (M,) for the M items of ``dataset``: the
    confidence head's probability where the network has one, else 1.0 (one candidate per query);
    in fp32, as :func:`predict_spans`."""
    device = torch.device(device) if device is not None else next(network.parameters()).device
    was_training = network.training
    network.eval()
    pad = getattr(dataset.tokenizer, "pad_id", 0)
    loader = DataLoader(dataset, batch_size=batch_size, shuffle=False, num_workers=num_workers,
                        collate_fn=functools.partial(collate, pad_id=pad))
    spans = np.zeros((len(dataset), 2), dtype=np.float64)
    scores = np.ones(len(dataset), dtype=np.float64)
    try:
        for batch in loader:
            b = batch.to(device)
            with _fp32(device):
                out = network(b["video"], b["video_mask"], b["words"], b["word_mask"])
            index = batch["index"].numpy()
            spans[index] = out.span.float().cpu().numpy()
            if out.confidence_logit is not None:
                scores[index] = torch.sigmoid(out.confidence_logit.float()).cpu().numpy()
    finally:
        network.train(was_training)
    return spans, scores


def _score(dataset: GroundingDataset, spans: np.ndarray, thresholds: Sequence[float] = THRESHOLDS) -> GroundingMetrics:
    return _score_rows(dataset.annotations, spans * np.array([a.duration for a in dataset.annotations])[:, None],
                       thresholds)


def _score_rows(annotations: Any, pred: np.ndarray, thresholds: Sequence[float] = THRESHOLDS) -> GroundingMetrics:
    """``pred`` (M, 2) seconds against the M annotations, under both conventions; where a query has
    several windows (QVHighlights), R1 on the best-matching one (Moment-DETR's rule; the library's
    convention only: LGI's scores one span)."""
    if any(getattr(a, "windows", ()) for a in annotations):
        from cmagrounding.training.window_metrics import window_metrics

        return window_metrics(pred, annotations, thresholds)
    durations = np.array([a.duration for a in annotations])
    gt = np.array([[a.start, a.end] for a in annotations])
    raw = np.array([getattr(a, "raw_span", (a.start, a.end)) for a in annotations])
    return compute_conventions(pred, gt, raw, durations, thresholds)


def evaluate_network(network: torch.nn.Module, dataset: GroundingDataset, batch_size: int = 256,
                     device: torch.device | str | None = None, amp: bool = False,
                     num_workers: int = 0) -> GroundingMetrics:
    """R1@{0.1,0.3,0.5,0.7} and mIoU of ``network`` on ``dataset`` (evaluation sampling, fp32),
    under the library's convention with LGI's in ``alternatives["lgi"]``."""
    if dataset.train:
        raise ValueError("evaluate on a dataset built with train=False (no random sampling offset)")
    return _score(dataset, predict_spans(network, dataset, batch_size, device, amp, num_workers))


def evaluate_grounder(grounder: "Grounder", annotations: AnnotationSet | list[Annotation], store: FeatureStore,
                      batch_size: int = 256, amp: bool = False) -> GroundingMetrics:
    """Score a pretrained :class:`~cmagrounding.Grounder` on annotations whose features ``store`` holds
    (features made with the grounder's extraction settings)."""
    cfg = grounder.network.config
    dataset = GroundingDataset(annotations, store, grounder.tokenizer, cfg.num_clips, cfg.max_words, train=False)
    return evaluate_network(grounder.network, dataset, batch_size, grounder.device, amp)


def grounder_answers(grounder: "Grounder", annotations: AnnotationSet | list[Annotation], store: FeatureStore,
                     batch_size: int = 256, thresholds: Sequence[float] = THRESHOLDS
                     ) -> tuple[GroundingMetrics, np.ndarray, np.ndarray]:
    """:func:`evaluate_grounder`'s metrics (R1 at ``thresholds``) with the answers they score: spans
    (M, 2) in seconds and their scores (M,) (:func:`predict_spans_scores`), for writing them out."""
    cfg = grounder.network.config
    dataset = GroundingDataset(annotations, store, grounder.tokenizer, cfg.num_clips, cfg.max_words, train=False)
    spans, scores = predict_spans_scores(grounder.network, dataset, batch_size, grounder.device)
    durations = np.array([a.duration for a in dataset.annotations])
    return _score(dataset, spans, thresholds), spans * durations[:, None], scores


def score_answers(annotations: Sequence[Annotation], spans: np.ndarray,
                  thresholds: Sequence[float] = THRESHOLDS) -> GroundingMetrics:
    """Top-1 answers ``spans`` (M, 2) seconds scored as :func:`grounder_answers` scores its own
    (both conventions; best window where a query has several)."""
    return _score_rows(list(annotations), np.asarray(spans, dtype=np.float64).reshape(-1, 2), thresholds)


def shuffle_queries(annotations: AnnotationSet, seed: int = 0) -> AnnotationSet:
    """The same moments with each query replaced by another video's query (a query-blind baseline).

    A random permutation is drawn, then rows whose query would come from the same video are
    swapped with a neighbour's so that no row keeps a query of its own video where avoidable.
    """
    rows = list(annotations)
    rng = np.random.default_rng(seed)
    perm = rng.permutation(len(rows))
    for i in range(len(rows)):
        if rows[perm[i]].video == rows[i].video:
            for j in range(len(rows)):
                if rows[perm[j]].video != rows[i].video and rows[perm[i]].video != rows[j].video:
                    perm[i], perm[j] = perm[j], perm[i]
                    break
    shuffled = [Annotation(a.video, a.duration, rows[p].query, a.start, a.end, raw=a.raw, windows=a.windows)
                for a, p in zip(rows, perm)]
    return AnnotationSet(annotations.name, f"{annotations.split}-shuffled-queries", shuffled,
                         annotations.quirks, annotations.sources)


def mean_span_baseline(train: AnnotationSet, test: AnnotationSet) -> GroundingMetrics:
    """Predict, for every test query, the mean normalized training span (ignores video and query)."""
    mean = np.mean([[a.start / a.duration, a.end / a.duration] for a in train], axis=0)
    durations = np.array([a.duration for a in test])
    return _score_rows(list(test), mean[None, :] * durations[:, None])
