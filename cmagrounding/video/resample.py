"""Bring a variable-length feature sequence to the network's fixed number of clips N.

This follows LGI's rule (Mun et al. 2020, its released code), which the released Charades-STA /
ActivityNet features were trained with: a video with at most N feature vectors keeps them all,
zero-padded and masked; a longer one is subsampled at ``round(arange(offset, n - 0.5, n / N))``, with a random offset in
training and none in evaluation. The Eq. 25 clip mask of a span lives in
``cmagrounding.spans.clip_mask_for_span``.
"""

from __future__ import annotations

import numpy as np


def resample_indices(n: int, num_clips: int, offset: float = 0.0) -> np.ndarray:
    """Indices (<= num_clips,) of the feature vectors kept from a sequence of ``n``.

    ``offset`` in [0, n / num_clips) shifts the sampling grid (random in training, 0 in evaluation).
    """
    if n <= 0:
        raise ValueError(f"cannot resample an empty feature sequence (n={n})")
    if num_clips <= 0:
        raise ValueError(f"num_clips must be positive, got {num_clips}")
    if n <= num_clips:
        return np.arange(n)
    step = n / num_clips
    if not 0.0 <= offset < step:
        raise ValueError(f"offset must lie in [0, {step:g}) for n={n}, num_clips={num_clips}; got {offset}")
    idx = np.round(np.arange(offset, n - 0.5, step)).astype(np.int64)
    return np.clip(idx, 0, n - 1)[:num_clips]


def resample_features(
    features: np.ndarray, num_clips: int, offset: float = 0.0
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Resample ``features`` (n, D) to exactly ``num_clips`` rows.

    Returns ``(clips (N, D) float32, mask (N,) bool, index (N,) int64)``: padded rows are zero,
    ``mask`` is True on real rows, and ``index`` gives each row's position in the input (-1 for
    padding) so that callers can map clips back to seconds.
    """
    features = np.asarray(features)
    if features.ndim != 2:
        raise ValueError(f"features must be 2-D (n, D), got shape {features.shape}")
    idx = resample_indices(features.shape[0], num_clips, offset)
    out = np.zeros((num_clips, features.shape[1]), dtype=np.float32)
    out[: len(idx)] = features[idx]
    mask = np.zeros(num_clips, dtype=bool)
    mask[: len(idx)] = True
    index = np.full(num_clips, -1, dtype=np.int64)
    index[: len(idx)] = idx
    return out, mask, index

