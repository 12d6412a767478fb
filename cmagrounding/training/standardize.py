"""Input standardization for training, folded into the network afterwards.

Raw pooled I3D features are all positive with a large common component, so the clips of one video
look alike to a freshly initialized network and training stalls at uniform attention; standardized
inputs ``(x - mean) / std`` train from the first epoch. After training the statistics are folded
into the network's first linear layer (:func:`fold_standardization`), so the saved model takes the
raw features the video side extracts and needs no extra step at inference (docs/training.md).

Shapes: n feature rows, D feature width, B batch, N clips.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Iterable, Sequence

import numpy as np

from cmagrounding.errors import DatasetError

__all__ = ["StandardizedStore", "feature_statistics", "fold_standardization", "fold_with_check"]

STD_FLOOR = 1e-3  # added to every std: a constant dimension is left as it is, never divided by ~0


class StandardizedStore:
    """A feature store that standardizes every feature dimension: ``(x - mean) / std``, (n, D)."""

    def __init__(self, store: Any, mean: np.ndarray, std: np.ndarray) -> None:
        self.store, self.mean, self.std = store, np.asarray(mean, np.float32), np.asarray(std, np.float32)

    def get(self, video: str) -> np.ndarray:
        return (self.store.get(video) - self.mean) / self.std

    def __contains__(self, video: object) -> bool:
        return video in self.store

    def __repr__(self) -> str:
        return f"StandardizedStore({self.store!r})"


def feature_statistics(source: Any, videos: Iterable[str] | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Per-dimension mean and standard deviation (+ :data:`STD_FLOOR`) over every feature row, (D,) each.

    ``source`` is a feature store or a path :func:`~cmagrounding.training.stores.open_feature_store`
    opens (a folder of ``.npy`` files, a packed store, an HDF5 file); ``videos`` are the ids to
    include (default: every video of the store, in sorted order).
    """
    from cmagrounding.training.stores import open_feature_store, store_videos

    store = open_feature_store(source) if isinstance(source, (str, Path)) else source
    ids = sorted(set(videos)) if videos is not None else store_videos(store)
    if not ids:
        raise DatasetError(f"{source}: no features to take statistics of")
    rows = np.concatenate([store.get(v) for v in ids])
    return rows.mean(axis=0), rows.std(axis=0) + STD_FLOOR


def fold_standardization(network: Any, mean: np.ndarray, std: np.ndarray) -> None:
    """Fold ``(x - mean) / std`` into ``network.video_proj[0]`` (Linear): W' = W / std, b' = b - W' mean."""
    import torch

    linear = network.video_proj[0]
    with torch.no_grad():
        m = torch.as_tensor(mean, dtype=linear.weight.dtype, device=linear.weight.device)
        s = torch.as_tensor(std, dtype=linear.weight.dtype, device=linear.weight.device)
        linear.weight.div_(s)  # (hidden, D) / (D,)
        linear.bias.sub_(linear.weight @ m)


def fold_with_check(network: Any, items: Sequence[dict[str, Any]], mean: np.ndarray, std: np.ndarray) -> tuple[Any, Any]:
    """Fold the standardization into ``network`` (on the CPU, in eval mode) and return its outputs
    ``(before, after)``: on ``items`` (dataset items of standardized features) before the fold, and
    on the same items with the raw features (``x * std + mean`` on the valid clips) after it.

    The caller compares the fields it needs (e.g. ``(before.span - after.span).abs().max()``).
    """
    import torch

    from cmagrounding.training.dataset import collate

    raw = [dict(it, video=torch.from_numpy(np.where(it["video_mask"].numpy()[:, None],
                                                    it["video"].numpy() * std + mean, 0.0).astype(np.float32)))
           for it in items]
    network = network.cpu().eval()
    with torch.no_grad():
        b = collate(list(items))
        before = network(b["video"], b["video_mask"], b["words"], b["word_mask"])
        fold_standardization(network, mean, std)
        r = collate(raw)
        after = network(r["video"], r["video_mask"], r["words"], r["word_mask"])
    return before, after
