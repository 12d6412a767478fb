"""A synthetic grounding task in feature space: proof that the trainer and network learn to read.

Every video is a sequence of clip features: background clips plus ``events_per_video`` distinct
events at random, non-overlapping places. An event is an (action, object) pair; its clips carry
the sum of the action's and the object's prototype vectors, plus noise. Each query names one
event of its video with words from a small vocabulary ("a person opens the door"), and the other
events of the same video are distractors that often share the action or the object. Without
reading the query (both words) a model can only guess which event is meant, so query-blind
baselines score low: the mean training span, or the model given another video's query.

Everything is drawn from one seed; train, validation and test videos come from disjoint streams of
the same distribution, so the test videos are held out. The result uses the same
:class:`AnnotationSet` / feature-store path as real data.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from cmagrounding._io import save_npy_atomic, write_json_atomic
from cmagrounding.training.annotations import Annotation, AnnotationSet, save_jsonl
from cmagrounding.training.stores import MemoryStore

__all__ = ["SyntheticConfig", "SyntheticData", "make_synthetic"]

_ACTIONS = ("opens", "closes", "holds", "throws", "washes", "takes")
_OBJECTS = ("door", "box", "cup", "book", "towel", "phone")
_TEMPLATES = (
    "a person {a} the {o}",
    "someone {a} a {o}",
    "the person {a} the {o} again",
    "person {a} {o}",
)


@dataclass
class SyntheticConfig:
    """Size and difficulty of the synthetic task (see the module docstring)."""

    train_videos: int = 1500
    val_videos: int = 150
    test_videos: int = 300
    feature_dim: int = 32
    min_clips: int = 24            # feature vectors per video: uniform in [min_clips, max_clips]
    max_clips: int = 48
    seconds_per_clip: float = 1.0
    events_per_video: int = 3
    min_event: float = 0.12        # event length as a fraction of the video
    max_event: float = 0.28
    num_actions: int = 6           # at most len(_ACTIONS)
    num_objects: int = 6
    noise: float = 0.5             # std of the per-clip Gaussian noise (prototypes: unit std per dim)
    seed: int = 0

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> "SyntheticConfig":
        from cmagrounding._config import dataclass_from_dict

        return dataclass_from_dict(cls, d)


@dataclass
class SyntheticData:
    """The generated splits and one store holding every video's features."""

    train: AnnotationSet
    val: AnnotationSet
    test: AnnotationSet
    store: MemoryStore
    config: SyntheticConfig = field(default_factory=SyntheticConfig)

    def save(self, folder: str | Path) -> None:
        """Write ``features/<video>.npy``, ``{train,val,test}.jsonl`` and ``config.json`` — the
        user data format that ``cmagrounding train --dataset jsonl`` reads."""
        folder = Path(folder)
        (folder / "features").mkdir(parents=True, exist_ok=True)
        for video, feats in self.store.features.items():
            save_npy_atomic(folder / "features" / f"{video}.npy", feats)
        for name, split in (("train", self.train), ("val", self.val), ("test", self.test)):
            save_jsonl(split, folder / f"{name}.jsonl")
        write_json_atomic(folder / "config.json", self.config.to_dict())


def _place_events(rng: np.random.Generator, n: int, k: int, lo: float, hi: float) -> list[tuple[int, int]]:
    """k non-overlapping [s, e) clip ranges in a video of n clips, at random places."""
    lengths = [max(2, int(round(rng.uniform(lo, hi) * n))) for _ in range(k)]
    free = n - sum(lengths)
    if free < 0:
        raise ValueError(f"{k} events of {lengths} clips do not fit in {n} clips")
    # split the free clips into k + 1 random gaps, then lay out gap, event, gap, event, ...
    cuts = np.sort(rng.integers(0, free + 1, size=k))
    gaps = np.diff(np.concatenate([[0], cuts, [free]]))
    order = rng.permutation(k)
    spans, pos = [], 0
    for j, i in enumerate(order):
        pos += int(gaps[j])
        spans.append((pos, pos + lengths[i]))
        pos += lengths[i]
    return spans


def make_synthetic(config: SyntheticConfig | None = None) -> SyntheticData:
    """Generate the synthetic train / val / test splits (deterministic for a given config)."""
    cfg = config or SyntheticConfig()
    if not (1 <= cfg.num_actions <= len(_ACTIONS) and 1 <= cfg.num_objects <= len(_OBJECTS)):
        raise ValueError(f"num_actions / num_objects must lie in [1, {len(_ACTIONS)}]")
    if cfg.events_per_video > cfg.num_actions * cfg.num_objects:
        raise ValueError("more events per video than distinct (action, object) pairs")
    root = np.random.default_rng(cfg.seed)
    d = cfg.feature_dim
    scale = 1.0
    # Prototypes: random directions with unit variance per dimension; an event's clips carry
    # action + object, so telling two events apart can need either word of the query.
    actions = root.normal(0.0, scale, size=(cfg.num_actions, d))
    objects = root.normal(0.0, scale, size=(cfg.num_objects, d))
    background = root.normal(0.0, scale, size=(d,))
    pairs = [(a, o) for a in range(cfg.num_actions) for o in range(cfg.num_objects)]

    features: dict[str, np.ndarray] = {}

    def split(name: str, count: int, stream: int) -> AnnotationSet:
        rng = np.random.default_rng([cfg.seed, stream])
        rows: list[Annotation] = []
        for v in range(count):
            video = f"syn-{name}-{v:05d}"
            n = int(rng.integers(cfg.min_clips, cfg.max_clips + 1))
            duration = n * cfg.seconds_per_clip
            feats = background + rng.normal(0.0, cfg.noise * scale, size=(n, d))
            chosen = rng.choice(len(pairs), size=cfg.events_per_video, replace=False)
            for (s, e), p in zip(_place_events(rng, n, cfg.events_per_video, cfg.min_event, cfg.max_event), chosen):
                a, o = pairs[p]
                feats[s:e] += actions[a] + objects[o] - background
                template = _TEMPLATES[int(rng.integers(len(_TEMPLATES)))]
                query = template.format(a=_ACTIONS[a], o=_OBJECTS[o])
                rows.append(Annotation(video, duration, query, s * cfg.seconds_per_clip, e * cfg.seconds_per_clip))
            features[video] = feats.astype(np.float32)
        return AnnotationSet("synthetic", name, rows, sources=[f"make_synthetic(seed={cfg.seed})"])

    train = split("train", cfg.train_videos, 1)
    val = split("val", cfg.val_videos, 2)
    test = split("test", cfg.test_videos, 3)
    return SyntheticData(train, val, test, MemoryStore(features), cfg)
