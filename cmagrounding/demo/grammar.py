"""The small grammar of the generated grounding task: colours, shapes, event kinds and sentences.

Every event is described by a *meaning* (kind, colour, shape, argument) and one of a few
paraphrases of it, so that the model must read the colour, the shape and the verb, not memorise
one string per event. Within one video no two events share a meaning (see ``Event.meaning``), so
each sentence has exactly one moment.
"""

from __future__ import annotations

import numpy as np

#: Object colours (RGB, uint8), chosen far apart in RGB and in hue.
COLOURS: dict[str, tuple[int, int, int]] = {
    "red": (230, 30, 30),
    "green": (30, 190, 50),
    "blue": (40, 70, 240),
    "yellow": (245, 225, 30),
    "purple": (150, 40, 200),
    "orange": (250, 130, 10),
}

#: Background colours: disjoint from the object colours so that no shape can vanish into it.
BACKGROUNDS: dict[str, tuple[int, int, int]] = {
    "black": (0, 0, 0),
    "gray": (128, 128, 128),
    "white": (255, 255, 255),
}

SHAPES: tuple[str, ...] = ("circle", "square", "triangle")

#: Event kinds. "move" carries a direction, "recolour" the new colour, "background" the new
#: background colour; the others carry no argument.
KINDS: tuple[str, ...] = ("appear", "disappear", "move", "recolour", "grow", "shrink", "background")
DIRECTIONS: dict[str, tuple[int, int]] = {"left": (-1, 0), "right": (1, 0), "up": (0, -1), "down": (0, 1)}

# Paraphrases per kind; {c} colour, {s} shape, {a} argument.
_TEMPLATES: dict[str, tuple[str, ...]] = {
    "appear": ("a {c} {s} appears", "the {c} {s} appears", "a {c} {s} fades in"),
    "disappear": ("the {c} {s} disappears", "the {c} {s} fades out", "the {c} {s} vanishes"),
    "move_h": ("the {c} {s} moves to the {a}", "the {c} {s} moves {a}", "the {c} {s} slides to the {a}"),
    "move_v": ("the {c} {s} moves {a}", "the {c} {s} goes {a}", "the {c} {s} slides {a}"),
    "recolour": ("the {c} {s} turns {a}", "the {c} {s} changes colour to {a}", "the {c} {s} becomes {a}"),
    "grow": ("the {c} {s} grows", "the {c} {s} gets bigger", "the {c} {s} becomes larger"),
    "shrink": ("the {c} {s} shrinks", "the {c} {s} gets smaller", "the {c} {s} becomes smaller"),
    "background": ("the background turns {a}", "the background changes to {a}", "the background becomes {a}"),
}


def templates(kind: str, argument: str | None = None) -> tuple[str, ...]:
    """The paraphrase templates of an event kind (for "move", by the direction's axis)."""
    if kind == "move":
        return _TEMPLATES["move_h" if argument in ("left", "right") else "move_v"]
    if kind not in _TEMPLATES:
        raise ValueError(f"unknown event kind {kind!r}; expected one of {KINDS}")
    return _TEMPLATES[kind]


def sentence(
    kind: str,
    colour: str | None,
    shape: str | None,
    argument: str | None,
    rng: np.random.Generator | None = None,
    variant: int | None = None,
) -> str:
    """A sentence for an event: the ``variant``-th paraphrase, or one drawn with ``rng``, or the first."""
    options = templates(kind, argument)
    if variant is None:
        variant = int(rng.integers(len(options))) if rng is not None else 0
    return options[variant % len(options)].format(c=colour, s=shape, a=argument)


def vocabulary() -> list[str]:
    """Every word the grammar can produce, sorted."""
    words: set[str] = set()
    for kind in KINDS:
        args = list(DIRECTIONS) if kind == "move" else list(COLOURS) if kind == "recolour" else (
            list(BACKGROUNDS) if kind == "background" else [None])
        for arg in args:
            for t in templates(kind, arg):
                for c in COLOURS:
                    for s in SHAPES:
                        words.update(t.format(c=c, s=s, a=arg).split())
    return sorted(words)
