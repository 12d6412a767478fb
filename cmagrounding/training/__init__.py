"""Training, evaluation and the paper's recipes (needs the ``training`` extra for HDF5 features).

Components, one per module:

* ``annotations``: Charades-STA, ActivityNet Captions, QVHighlights, TACoS and JSON Lines loaders,
  with quirk repair (several ground-truth windows per query kept).
* ``stores``: where features come from (``.npy`` / ``.npz`` folders, joined sources, HDF5,
  on-the-fly extraction) and the coverage check (``align_to_store``).
* ``packed`` / ``packing``: every video's features in one memory-mapped file with an index: the
  reader, and its builder (``cmagrounding pack-features``).
* ``crops``: windows of a video's feature rows with the annotation re-timed (augmentation, views).
* ``standardize``: per-dimension input standardization, folded into the network after training.
* ``dataset``: the torch Dataset (sampling to N clips, LGI's rule) and its collate.
* ``metrics`` / ``evaluation``: R1@m and mIoU (conventions stated in every result), baselines.
* ``predictions`` / ``predictions_file`` / ``predictions_out``: scoring a predictions file against
  annotations, no model (docs/evaluation.md) / reading and checking its rows (the library's and
  Moment-DETR's) / writing a model's answers in both.
* ``window_metrics``: Moment-DETR's rules where a query has several windows (best-window R1, mAP).
* ``config`` / ``trainer`` / ``checkpoint`` / ``distributed``: the training loop, resume, DDP.
* ``recipes`` / ``protocol``: named runs (Tables 1-6, synthetic) and the end-to-end protocol.
* ``synthetic``: a feature-space grounding task that needs the query, for proof of learning.
* ``stats``: counts, quirks, Figure 4's moment-length ratio.

Names are imported lazily, so ``import cmagrounding.training`` is cheap.
"""

from __future__ import annotations

import importlib
from typing import Any

_LAZY = {
    "Annotation": "annotations", "AnnotationSet": "annotations", "load_annotations": "annotations",
    "load_charades_sta": "annotations", "load_activitynet_captions": "annotations", "load_jsonl": "annotations",
    "NpyFolderStore": "stores", "HDF5Store": "stores", "EncoderStore": "stores", "MemoryStore": "stores",
    "open_feature_store": "stores", "PackedStore": "packed", "pack_features": "packing",
    "CroppedStore": "crops", "crop_annotations": "crops",
    "StandardizedStore": "standardize", "feature_statistics": "standardize", "fold_standardization": "standardize",
    "GroundingDataset": "dataset", "compute_metrics": "metrics",
    "temporal_iou": "metrics", "GroundingMetrics": "metrics", "evaluate_network": "evaluation",
    "evaluate_grounder": "evaluation", "TrainConfig": "config", "Trainer": "trainer", "TrainResult": "trainer",
    "Recipe": "recipes", "RECIPES": "recipes", "get_recipe": "recipes", "run_recipe": "protocol",
    "SyntheticConfig": "synthetic", "make_synthetic": "synthetic", "dataset_stats": "stats",
    "score_predictions": "predictions", "load_predictions": "predictions",
    "load_qvhighlights": "annotations", "load_tacos": "annotations", "NpzFolderStore": "stores",
    "JoinedStore": "stores", "align_to_store": "stores", "window_map": "window_metrics",
}

__all__ = sorted(_LAZY)


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'cmagrounding.training' has no attribute {name!r}")
    return getattr(importlib.import_module(f"cmagrounding.training.{module}"), name)
