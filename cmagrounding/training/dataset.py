"""A torch Dataset of (clip features, query tokens, target span) built from annotations + features.

Sampling to N clips follows LGI's rule (``cmagrounding.video.resample``): a video with at
most N feature vectors keeps them all (zero-padded, masked); a longer one is subsampled with a
random grid offset in training and none in evaluation. The offset of item ``i`` in epoch ``e`` is
drawn from a generator seeded by ``(seed, e, i)``, so a resumed run sees the same samples as an
uninterrupted one whatever the number of workers.
"""

from __future__ import annotations

from typing import Any, Protocol, Sequence

import numpy as np
import torch
from torch.utils.data import Dataset

from cmagrounding.errors import DatasetError
from cmagrounding.spans import clip_mask_for_span, seconds_to_unit
from cmagrounding.training.annotations import Annotation, AnnotationSet
from cmagrounding.training.stores import FeatureStore
from cmagrounding.video.resample import resample_features

__all__ = ["GroundingDataset", "GroundingBatch", "collate"]


class _Tokenizer(Protocol):
    pad_id: int
    unk_id: int

    def encode(self, sentence: str) -> list[int]: ...


class GroundingDataset(Dataset):
    """Items of one split. ``train=True`` draws a random sampling offset per item and epoch.

    An item is a dict: ``video`` (N, D) float32, ``video_mask`` (N,) bool, ``words`` (L_i,) long
    (at most ``max_words``; never empty: an all-unknown or empty query becomes ``[unk]``),
    ``target`` (2,) float32 normalized (start, end), ``clip_mask`` (N,) bool (clips inside the
    ground truth, Eq. 25), ``span`` (2,) seconds, ``duration`` float, ``index`` int.
    """

    def __init__(self, annotations: AnnotationSet | Sequence[Annotation], store: FeatureStore,
                 tokenizer: _Tokenizer, num_clips: int, max_words: int, train: bool = False, seed: int = 0):
        self.annotations = list(annotations)
        if not self.annotations:
            raise DatasetError("a grounding dataset needs at least one annotation")
        self.store = store
        self.tokenizer = tokenizer
        self.num_clips = int(num_clips)
        self.max_words = int(max_words)
        self.train = train
        self.seed = int(seed)
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        """Choose the epoch whose sampling offsets items use (training only)."""
        self.epoch = int(epoch)

    def __len__(self) -> int:
        return len(self.annotations)

    def encode_query(self, query: str) -> list[int]:
        ids = list(self.tokenizer.encode(query))[: self.max_words]
        return ids or [self.tokenizer.unk_id]

    def __getitem__(self, index: int) -> dict[str, Any]:
        a = self.annotations[index]
        feats = self.store.get(a.video)
        n = feats.shape[0]
        offset = 0.0
        if self.train and n > self.num_clips:
            rng = np.random.default_rng([self.seed, self.epoch, index])
            offset = float(rng.uniform(0.0, n / self.num_clips))
            offset = min(offset, np.nextafter(n / self.num_clips, 0.0))
        clips, mask, _ = resample_features(feats, self.num_clips, offset)
        num_valid = int(mask.sum())
        return {
            "video": torch.from_numpy(clips),
            "video_mask": torch.from_numpy(mask),
            "words": torch.tensor(self.encode_query(a.query), dtype=torch.long),
            "target": torch.tensor(seconds_to_unit(a.start, a.end, a.duration), dtype=torch.float32),  # Eq. 22
            "clip_mask": torch.from_numpy(  # Eq. 25
                clip_mask_for_span(a.start, a.end, a.duration, num_valid, self.num_clips)),
            "span": torch.tensor([a.start, a.end], dtype=torch.float64),
            "duration": float(a.duration),
            "index": int(index),
        }


class GroundingBatch(dict):
    """A collated batch: ``video`` (B, N, D), ``video_mask`` (B, N), ``words`` (B, L),
    ``word_mask`` (B, L), ``target`` (B, 2), ``clip_mask`` (B, N), ``span`` (B, 2) seconds,
    ``duration`` (B,), ``index`` (B,)."""

    def to(self, device: torch.device | str) -> "GroundingBatch":
        return GroundingBatch({k: v.to(device) if torch.is_tensor(v) and k != "span" else v for k, v in self.items()})


def collate(items: list[dict[str, Any]], pad_id: int = 0) -> GroundingBatch:
    """Stack items; pad the word ids to the longest query of the batch (``pad_id``, mask False)."""
    lengths = [len(it["words"]) for it in items]
    words = torch.full((len(items), max(lengths)), pad_id, dtype=torch.long)
    word_mask = torch.zeros((len(items), max(lengths)), dtype=torch.bool)
    for i, it in enumerate(items):
        words[i, : lengths[i]] = it["words"]
        word_mask[i, : lengths[i]] = True
    extra = {}
    if "confidence" in items[0]:  # confidence-head labels (cmagrounding.training.confidence_data)
        extra["confidence"] = torch.stack([it["confidence"] for it in items])
    return GroundingBatch(
        **extra,
        video=torch.stack([it["video"] for it in items]),
        video_mask=torch.stack([it["video_mask"] for it in items]),
        words=words,
        word_mask=word_mask,
        target=torch.stack([it["target"] for it in items]),
        clip_mask=torch.stack([it["clip_mask"] for it in items]),
        span=torch.stack([it["span"] for it in items]),
        duration=torch.tensor([it["duration"] for it in items], dtype=torch.float64),
        index=torch.tensor([it["index"] for it in items], dtype=torch.long),
    )
