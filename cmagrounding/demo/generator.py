"""Random, reproducible scenes with timed events, and whole generated datasets.

``generate_scene(config, seed, index)`` draws one video from ``numpy.random.default_rng([seed,
index])``, so a video depends only on its (seed, index) and on the config: datasets can be made in
any order or in parallel, and the same seed always gives the same annotations and frames.

How a video is drawn: a length; 3-5 event slots of 2-5 s separated by gaps of at least half a
second (events never overlap, so that a sentence's interval is exactly where its change happens);
2-4 shapes of distinct (colour, shape); then, slot by slot, an event that is possible in the scene's
state at that time (a hidden shape can only appear, a move must stay on screen and not touch
another shape, ...) and whose meaning has not been used in this video yet.
"""

from __future__ import annotations

import json
import logging
import math
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Iterable

import numpy as np

from cmagrounding.demo.grammar import BACKGROUNDS, COLOURS, DIRECTIONS, SHAPES, sentence
from cmagrounding.demo.scene import Event, ObjectSpec, Scene, SceneState, apply_event, bounding_radius
from cmagrounding.errors import DatasetError

logger = logging.getLogger(__name__)

# Relative frequency of each event kind when all are possible.
KIND_WEIGHTS: dict[str, float] = {
    "move": 3.0,
    "recolour": 1.5,
    "grow": 1.0,
    "shrink": 1.0,
    "appear": 1.0,
    "disappear": 1.0,
    "background": 0.75,
}


@dataclass(frozen=True)
class GeneratorConfig:
    """How generated videos look. Sizes in pixels, times in seconds."""

    width: int = 112
    height: int = 112
    fps: float = 8.0
    min_duration: float = 16.0
    max_duration: float = 24.0
    min_events: int = 3
    max_events: int = 5
    min_event: float = 2.0
    max_event: float = 5.0
    min_gap: float = 0.5
    min_objects: int = 2
    max_objects: int = 3
    # Shapes are large (radius 12-16 px of 112) and few, and the palette leaves out orange (close to
    # red and yellow): pooled I3D features mostly see the whole frame, so small or look-alike
    # shapes would hardly change them.
    colours: tuple[str, ...] = ("red", "green", "blue", "yellow", "purple")
    min_size: float = 12.0
    max_size: float = 16.0
    scale: float = 1.4  # size ratio of a grow (its inverse for a shrink)
    min_move: float = 20.0
    max_move: float = 32.0
    margin: float = 3.0  # minimum distance kept between shapes and from the border
    p_hidden: float = 0.3  # chance that a shape starts hidden (so that it can appear)
    codec: str = "libx264"
    crf: int = 18

    def __post_init__(self) -> None:
        if self.min_events < 1 or self.max_events < self.min_events:
            raise ValueError(f"need 1 <= min_events <= max_events, got {self.min_events}, {self.max_events}")
        if self.min_objects < 1 or self.max_objects < self.min_objects:
            raise ValueError(f"need 1 <= min_objects <= max_objects, got {self.min_objects}, {self.max_objects}")
        object.__setattr__(self, "colours", tuple(self.colours))
        unknown = [c for c in self.colours if c not in COLOURS]
        if unknown or len(self.colours) < 2:
            raise ValueError(f"colours must be at least two of {list(COLOURS)}, got {list(self.colours)}")
        if self.max_objects > len(self.colours) * len(SHAPES):
            raise ValueError(f"max_objects must be <= {len(self.colours) * len(SHAPES)}, got {self.max_objects}")
        if self.min_event <= 0 or self.max_event < self.min_event:
            raise ValueError(f"need 0 < min_event <= max_event, got {self.min_event}, {self.max_event}")
        if self.min_duration < self.max_events * self.min_event + (self.max_events + 1) * self.min_gap:
            raise ValueError(
                f"min_duration {self.min_duration} s cannot hold {self.max_events} events of {self.min_event} s"
            )
        if self.fps <= 0 or self.max_duration < self.min_duration:
            raise ValueError(f"bad fps {self.fps} or duration range {self.min_duration}-{self.max_duration}")

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["colours"] = list(self.colours)
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> GeneratorConfig:
        from cmagrounding._config import dataclass_from_dict

        return dataclass_from_dict(cls, d)  # ConfigError (a ValueError) naming unknown keys


def _slots(cfg: GeneratorConfig, rng: np.random.Generator) -> tuple[int, list[tuple[int, int]]]:
    """Number of frames and the (start_frame, end_frame) of each event, disjoint and in order."""
    fps = cfg.fps
    num_frames = int(round(rng.uniform(cfg.min_duration, cfg.max_duration) * fps))
    k = int(rng.integers(cfg.min_events, cfg.max_events + 1))
    gap = max(1, int(math.ceil(cfg.min_gap * fps)))
    lo, hi = int(math.ceil(cfg.min_event * fps)), int(math.floor(cfg.max_event * fps))
    last = num_frames - 1  # the last frame an event may end on
    while True:
        lengths = rng.integers(lo, hi + 1, size=k)
        spare = last - int(lengths.sum()) - gap * (k + 1)
        if spare >= 0:
            break
    # spread the spare frames over the k + 1 gaps
    share = rng.dirichlet(np.ones(k + 1)) * spare
    gaps = np.floor(share).astype(int) + gap
    for i in rng.choice(k + 1, size=spare - int(np.floor(share).sum()), replace=True):
        gaps[i] += 1
    slots, t = [], 0
    for i in range(k):
        t += int(gaps[i])
        slots.append((t, t + int(lengths[i])))
        t += int(lengths[i])
    assert slots[-1][1] <= last
    return num_frames, slots


def _objects(cfg: GeneratorConfig, rng: np.random.Generator) -> list[ObjectSpec]:
    n = int(rng.integers(cfg.min_objects, cfg.max_objects + 1))
    pairs = [(c, s) for c in cfg.colours for s in SHAPES]
    chosen = [pairs[i] for i in rng.choice(len(pairs), size=n, replace=False)]
    objs: list[ObjectSpec] = []
    for colour, shape in chosen:
        for _ in range(200):
            size = float(rng.uniform(cfg.min_size, cfg.max_size))
            r = bounding_radius(shape, size)
            x = float(rng.uniform(r + cfg.margin, cfg.width - r - cfg.margin))
            y = float(rng.uniform(r + cfg.margin, cfg.height - r - cfg.margin))
            if all(
                math.hypot(x - o.x, y - o.y) > r + bounding_radius(o.shape, o.size) + cfg.margin for o in objs
            ):
                objs.append(ObjectSpec(shape, colour, round(x, 3), round(y, 3), round(size, 3), True))
                break
    if not objs:  # pragma: no cover - the canvas always holds one shape
        raise RuntimeError("could not place any shape")
    hidden = rng.random(len(objs)) < cfg.p_hidden
    hidden[int(rng.integers(len(objs)))] = False  # at least one shape is on screen at the start
    return [ObjectSpec(o.shape, o.colour, o.x, o.y, o.size, not h) for o, h in zip(objs, hidden)]


def _fits(cfg: GeneratorConfig, state: SceneState, target: int, x: float, y: float, size: float) -> bool:
    """Whether object ``target`` drawn at (x, y, size) stays on screen and clear of visible shapes."""
    obj = state.objects[target]
    r = bounding_radius(obj.shape, size)
    if x - r < cfg.margin or x + r > cfg.width - cfg.margin or y - r < cfg.margin or y + r > cfg.height - cfg.margin:
        return False
    for j, other in enumerate(state.objects):
        if j == target or other.alpha <= 0.0:
            continue
        if math.hypot(x - other.x, y - other.y) <= r + bounding_radius(other.shape, other.size) + cfg.margin:
            return False
    return True


def _propose(
    cfg: GeneratorConfig, state: SceneState, kind: str, rng: np.random.Generator
) -> tuple[int | None, str | None, float] | None:
    """(target, argument, amount) for an event of ``kind`` possible in ``state``, or None."""
    if kind == "background":
        options = [b for b in BACKGROUNDS if b != state.background]
        return None, options[int(rng.integers(len(options)))], 0.0
    visible = [i for i, o in enumerate(state.objects) if o.alpha >= 1.0]
    hidden = [i for i, o in enumerate(state.objects) if o.alpha <= 0.0]
    pool = hidden if kind == "appear" else visible
    if not pool:
        return None
    target = pool[int(rng.integers(len(pool)))]
    obj = state.objects[target]
    if kind == "appear":
        return (target, None, 0.0) if _fits(cfg, state, target, obj.x, obj.y, obj.size) else None
    if kind == "disappear":
        return target, None, 0.0
    if kind == "move":
        dist = float(round(rng.uniform(cfg.min_move, cfg.max_move), 3))
        for d in rng.permutation(len(DIRECTIONS)):
            direction = list(DIRECTIONS)[int(d)]
            dx, dy = DIRECTIONS[direction]
            # the whole path must stay clear, not only its end
            if all(
                _fits(cfg, state, target, obj.x + dx * dist * f, obj.y + dy * dist * f, obj.size)
                for f in np.linspace(0.0, 1.0, 17)
            ):
                return target, direction, dist
        return None
    if kind == "recolour":
        taken = {o.colour for j, o in enumerate(state.objects) if j != target and o.shape == obj.shape}
        options = [c for c in cfg.colours if c != obj.colour and c not in taken]
        if not options:
            return None
        return target, options[int(rng.integers(len(options)))], 0.0
    if kind == "grow":
        if obj.size > cfg.max_size:  # grow a shape at most once beyond its drawn range
            return None
        ok = _fits(cfg, state, target, obj.x, obj.y, obj.size * cfg.scale)
        return (target, None, cfg.scale) if ok else None
    if kind == "shrink":
        if obj.size < cfg.min_size:  # likewise for shrinking
            return None
        return target, None, 1.0 / cfg.scale
    raise ValueError(f"unknown event kind {kind!r}")


def generate_scene(config: GeneratorConfig | None = None, seed: int = 0, index: int = 0) -> Scene:
    """The ``index``-th video of the set drawn with ``seed``; deterministic in (config, seed, index)."""
    cfg = config or GeneratorConfig()
    rng = np.random.default_rng([int(seed), int(index)])
    num_frames, slots = _slots(cfg, rng)
    background = list(BACKGROUNDS)[int(rng.integers(len(BACKGROUNDS)))]
    objects = _objects(cfg, rng)
    scene = Scene(cfg.width, cfg.height, cfg.fps, num_frames, background, tuple(objects), (), seed, index)
    state = scene.initial_state()
    kinds = list(KIND_WEIGHTS)
    weights = np.asarray([KIND_WEIGHTS[k] for k in kinds])
    events: list[Event] = []
    used: set[tuple] = set()
    for start, end in slots:
        event = None
        for _ in range(100):
            kind = kinds[int(rng.choice(len(kinds), p=weights / weights.sum()))]
            proposal = _propose(cfg, state, kind, rng)
            if proposal is None:
                continue
            target, argument, amount = proposal
            obj = state.objects[target] if target is not None else None
            colour, shape = (obj.colour, obj.shape) if obj is not None else (None, None)
            if (kind, colour, shape, argument) in used:
                continue
            text = sentence(kind, colour, shape, argument, rng=rng)
            event = Event(kind, start, end, cfg.fps, text, target, colour, shape, argument, amount)
            break
        if event is None:  # pragma: no cover - a background change is almost always possible
            logger.debug("video (%d, %d): no possible event for slot %s; left empty", seed, index, (start, end))
            continue
        used.add(event.meaning)
        apply_event(state, event, 1.0)
        events.append(event)
    return Scene(cfg.width, cfg.height, cfg.fps, num_frames, background, tuple(objects), tuple(events), seed, index)


def video_name(index: int) -> str:
    """File name of the ``index``-th video of a generated set."""
    return f"{index:05d}.mp4"


def generate_dataset(
    out_dir: str | Path,
    count: int,
    *,
    seed: int,
    config: GeneratorConfig | None = None,
    start_index: int = 0,
    write_videos: bool = True,
    progress: bool = False,
) -> Path:
    """Render ``count`` videos into ``out_dir/videos/`` and write ``out_dir/annotations.json``.

    The annotation file holds ``{"generator": config, "seed": seed, "videos": [scene dicts]}``;
    each scene dict names its file (``"video"``) and lists its events with start/end in seconds.
    Videos already present are kept (the frames are a pure function of the scene), so an
    interrupted run can be resumed.
    """
    from cmagrounding.demo.renderer import write_video

    cfg = config or GeneratorConfig()
    out_dir = Path(out_dir)
    (out_dir / "videos").mkdir(parents=True, exist_ok=True)
    scenes = []
    indices: Iterable[int] = range(start_index, start_index + count)
    if progress:
        from tqdm import tqdm

        indices = tqdm(indices, desc="render", unit="video")
    for i in indices:
        scene = generate_scene(cfg, seed, i)
        d = scene.to_dict()
        d["video"] = f"videos/{video_name(i)}"
        scenes.append(d)
        path = out_dir / d["video"]
        if write_videos and not path.exists():
            tmp = path.with_suffix(".tmp.mp4")
            write_video(scene, tmp, codec=cfg.codec, crf=cfg.crf)
            tmp.replace(path)
    ann = out_dir / "annotations.json"
    ann.write_text(json.dumps({"generator": cfg.to_dict(), "seed": seed, "videos": scenes}, indent=1))
    return ann


def load_annotations(path: str | Path) -> tuple[GeneratorConfig, list[Scene], list[Path]]:
    """Read an ``annotations.json`` written by :func:`generate_dataset`: config, scenes, video paths."""
    from cmagrounding._strict_json import read

    path = Path(path)
    data = read(path, DatasetError, "demo annotations file")
    if not isinstance(data, dict) or not {"generator", "videos"} <= data.keys():
        raise DatasetError(f"{path}: not a demo annotations file (an object with \"generator\" and \"videos\")")
    cfg = GeneratorConfig.from_dict(data["generator"])
    scenes = [Scene.from_dict(d) for d in data["videos"]]
    videos = [path.parent / d["video"] for d in data["videos"]]
    return cfg, scenes, videos
