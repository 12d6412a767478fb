"""The video embedding V_in of Eq. 2, kept for repeated queries on the same video.

V_in = ReLU(W_v f_v(X)) + PE does not depend on the query, and for the paper's Charades-STA
model it is about 7 % of a query's arithmetic (a 1024 x 512 projection of every clip). Asking
many questions of one video's features (``Grounder.localize(features, query)``) computes it once.

Entries are keyed by the clips' content (compared exactly with a kept copy, so features changed
in place are never answered from a stale entry), by the network and the version of every weight
Eq. 2 reads (a training step or ``load_state_dict`` invalidates them), and by the caller's mode
(e.g. the precision). Shapes: n clips, d_v feature size, D hidden.
"""

from __future__ import annotations

import weakref
from collections import OrderedDict
from typing import Callable, Hashable

import torch
from torch import nn

from cmagrounding.model.weights_version import weights_key


class VideoEmbeddingCache:
    """The last ``size`` videos' embeddings (least recently used dropped first)."""

    def __init__(self, size: int = 4) -> None:
        self.size = size
        self._entries: OrderedDict[Hashable, tuple[torch.Tensor, torch.Tensor]] = OrderedDict()
        self.hits = 0
        self.misses = 0

    def get(self, modules: tuple[nn.Module, ...], clips: torch.Tensor,
            embed: Callable[[torch.Tensor], torch.Tensor], mode: Hashable = None) -> torch.Tensor:
        """``embed(clips)`` for clips (1, n, d_v), or the kept result for the same clips, weights
        of ``modules`` and ``mode`` -> (1, n, D)."""
        # a sample of the values finds the entry; the exact comparison below decides
        sample = clips.reshape(-1)[:: max(1, clips.numel() // 64)].tolist()
        key = (tuple(weights_key(m) for m in modules), mode, tuple(clips.shape), clips.dtype, clips.device,
               tuple(sample))
        entry = self._entries.get(key)
        if entry is not None and torch.equal(entry[0], clips):
            self._entries.move_to_end(key)
            self.hits += 1
            return entry[1]
        self.misses += 1
        value = embed(clips)
        self._entries[key] = (clips.clone(), value)
        while len(self._entries) > self.size:
            self._entries.popitem(last=False)
        return value

    def clear(self) -> None:
        self._entries.clear()


# one cache per network object, dropped with it
_CACHES: weakref.WeakKeyDictionary[nn.Module, VideoEmbeddingCache] = weakref.WeakKeyDictionary()


def cache_for(network: nn.Module) -> VideoEmbeddingCache:
    """The embedding cache of ``network`` (created on first use, freed with the network)."""
    cache = _CACHES.get(network)
    if cache is None:
        cache = _CACHES[network] = VideoEmbeddingCache()
    return cache
