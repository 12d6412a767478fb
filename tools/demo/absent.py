"""Sentences of events that a generated video does not have ("not in this video").

Used by ``benchmarks/bench_windows.py`` and ``bench_own_data.py`` to measure how well the
confidence tells present from absent sentences, and by ``tools.demo.build --absent-ratio`` to
write them into the ``--absent`` file that ``cmagrounding train`` turns into label-0 windows.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from cmagrounding.demo.scene import Scene


def absent_meanings(scene: Scene, colours: Sequence[str]) -> tuple[list[tuple], list[tuple]]:
    """Meanings (kind, colour, shape, argument) no event of ``scene`` has: all of them, and the "hard"
    ones, about a (colour, shape) the video shows (an object's, or an event's)."""
    from cmagrounding.demo.grammar import BACKGROUNDS, DIRECTIONS, SHAPES

    used = {e.meaning for e in scene.events}
    own = {(e.colour, e.shape) for e in scene.events if e.colour is not None}
    own |= {(o.colour, o.shape) for o in scene.objects}
    meanings: list[tuple] = []
    for c in colours:
        for s in SHAPES:
            for kind in ("appear", "disappear", "grow", "shrink"):
                meanings.append((kind, c, s, None))
            meanings += [("move", c, s, d) for d in DIRECTIONS]
            meanings += [("recolour", c, s, a) for a in colours if a != c]
    meanings += [("background", None, None, b) for b in BACKGROUNDS]
    free = [m for m in meanings if m not in used]
    hard = [m for m in free if (m[1], m[2]) in own]
    return free, hard


def absent_sentences(scene: Scene, colours: Sequence[str], rng: np.random.Generator, count: int) -> list[str]:
    """``count`` sentences whose meaning no event of ``scene`` has; every other one (the 1st, 3rd, ...)
    about the video's own shapes when there is such a meaning (the hard case: same words, other event)."""
    from cmagrounding.demo.grammar import sentence

    free, hard = absent_meanings(scene, colours)
    out = []
    for i in range(count):
        pool = hard if (i % 2 == 0 and hard) else free
        m = pool[int(rng.integers(len(pool)))]
        out.append(sentence(m[0], m[1], m[2], m[3], rng=rng))
    return out
