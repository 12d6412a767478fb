"""What a generated video contains: its objects, its timed events, and the state at any frame.

A scene is fully described by its initial objects and its events; the state at frame ``k`` is the
initial state with every event applied up to its progress ``clip((k - start_frame) / (end_frame -
start_frame), 0, 1)``. Events never overlap in time, so outside an event's frames nothing that
event names changes, and a sentence's interval is exactly the frames in which its change happens.
Times are in seconds: frame ``k`` is shown at ``k / fps`` and the video lasts ``num_frames / fps``.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np

from cmagrounding.demo.grammar import BACKGROUNDS, COLOURS, DIRECTIONS

# Equal-area shapes: a circle of radius r, a square of half side r*sqrt(pi)/2 and an equilateral
# triangle of circumradius r*sqrt(4*pi/(3*sqrt(3))) all cover pi*r^2 pixels, so that size alone
# never tells the shapes apart.
SQUARE_HALF_SIDE = math.sqrt(math.pi) / 2.0
TRIANGLE_CIRCUMRADIUS = math.sqrt(4.0 * math.pi / (3.0 * math.sqrt(3.0)))


def bounding_radius(shape: str, size: float) -> float:
    """Radius of the smallest circle around a shape of ``size`` (pixels), for collision checks."""
    if shape == "circle":
        return size
    if shape == "square":
        return size * SQUARE_HALF_SIDE * math.sqrt(2.0)
    if shape == "triangle":
        return size * TRIANGLE_CIRCUMRADIUS
    raise ValueError(f"unknown shape {shape!r}")


@dataclass(frozen=True)
class ObjectSpec:
    """A shape's initial state. ``size`` is the radius of the equal-area circle, in pixels."""

    shape: str
    colour: str
    x: float
    y: float
    size: float
    visible: bool = True


@dataclass(frozen=True)
class Event:
    """One timed change and its sentence.

    ``target`` is the object's index (None for the background); ``colour`` and ``shape`` name the
    object as it is when the event starts. ``argument``: the direction of a move, the new colour of
    a recolour or background change. ``amount``: pixels for a move, the size ratio for grow/shrink.
    """

    kind: str
    start_frame: int
    end_frame: int
    fps: float
    sentence: str
    target: int | None = None
    colour: str | None = None
    shape: str | None = None
    argument: str | None = None
    amount: float = 0.0

    @property
    def start(self) -> float:
        """Start in seconds."""
        return self.start_frame / self.fps

    @property
    def end(self) -> float:
        """End in seconds."""
        return self.end_frame / self.fps

    @property
    def meaning(self) -> tuple[str, str | None, str | None, str | None]:
        """What the sentence says, whatever its wording; unique within a video."""
        return (self.kind, self.colour, self.shape, self.argument)

    def progress(self, frame: float) -> float:
        """How far the change has gone at ``frame``: 0 up to the start frame, 1 from the end frame."""
        return float(np.clip((frame - self.start_frame) / (self.end_frame - self.start_frame), 0.0, 1.0))


@dataclass
class ObjectState:
    """A shape as drawn in one frame: RGB as floats in [0, 255], alpha in [0, 1]."""

    shape: str
    colour: str
    rgb: np.ndarray
    x: float
    y: float
    size: float
    alpha: float


@dataclass
class SceneState:
    """Everything drawn in one frame."""

    background: str
    background_rgb: np.ndarray
    objects: list[ObjectState]


@dataclass
class Scene:
    """A generated video: canvas, frame rate, initial objects and time-ordered, disjoint events."""

    width: int
    height: int
    fps: float
    num_frames: int
    background: str
    objects: tuple[ObjectSpec, ...]
    events: tuple[Event, ...]
    seed: int = 0
    index: int = 0
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def duration(self) -> float:
        """Length of the video in seconds."""
        return self.num_frames / self.fps

    def initial_state(self) -> SceneState:
        objs = [
            ObjectState(o.shape, o.colour, np.asarray(COLOURS[o.colour], np.float64), o.x, o.y, o.size,
                        1.0 if o.visible else 0.0)
            for o in self.objects
        ]
        return SceneState(self.background, np.asarray(BACKGROUNDS[self.background], np.float64), objs)

    def state_at(self, frame: float) -> SceneState:
        """The state drawn at ``frame`` (may be fractional)."""
        state = self.initial_state()
        for event in self.events:
            p = event.progress(frame)
            if p <= 0.0:
                break  # events are time-ordered and disjoint: none later has started
            apply_event(state, event, p)
        return state

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready description; ``events`` also carry ``start``/``end`` in seconds."""
        return {
            "width": self.width,
            "height": self.height,
            "fps": self.fps,
            "num_frames": self.num_frames,
            "duration": self.duration,
            "background": self.background,
            "objects": [asdict(o) for o in self.objects],
            "events": [{**asdict(e), "start": e.start, "end": e.end} for e in self.events],
            "seed": self.seed,
            "index": self.index,
            **({"extra": self.extra} if self.extra else {}),
        }

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Scene:
        events = tuple(
            Event(**{k: v for k, v in e.items() if k not in ("start", "end")}) for e in d["events"]
        )
        return cls(
            width=int(d["width"]),
            height=int(d["height"]),
            fps=float(d["fps"]),
            num_frames=int(d["num_frames"]),
            background=d["background"],
            objects=tuple(ObjectSpec(**o) for o in d["objects"]),
            events=events,
            seed=int(d.get("seed", 0)),
            index=int(d.get("index", 0)),
            extra=dict(d.get("extra", {})),
        )


def apply_event(state: SceneState, event: Event, p: float) -> None:
    """Apply ``event`` at progress ``p`` in [0, 1] to ``state`` in place (linear interpolation)."""
    if event.kind == "background":
        new = np.asarray(BACKGROUNDS[event.argument], np.float64)
        state.background_rgb = state.background_rgb + (new - state.background_rgb) * p
        if p >= 1.0:
            state.background = event.argument
        return
    obj = state.objects[event.target]
    if event.kind == "appear":
        obj.alpha = p
    elif event.kind == "disappear":
        obj.alpha = 1.0 - p
    elif event.kind == "move":
        dx, dy = DIRECTIONS[event.argument]
        obj.x += dx * event.amount * p
        obj.y += dy * event.amount * p
    elif event.kind == "recolour":
        new = np.asarray(COLOURS[event.argument], np.float64)
        obj.rgb = obj.rgb + (new - obj.rgb) * p
        if p >= 1.0:
            obj.colour = event.argument
    elif event.kind in ("grow", "shrink"):
        obj.size = obj.size * (1.0 + (event.amount - 1.0) * p)
    else:
        raise ValueError(f"unknown event kind {event.kind!r}")
