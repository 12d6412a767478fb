"""A generated raw-video grounding task and the small demo model trained on it.

The generator renders simple scenes (circles, squares and triangles of a few colours) in which
events happen at random, exactly known times: a shape appears, disappears, moves, changes colour,
grows or shrinks, or the background changes. Each event has a sentence from a small grammar and a
start and end in seconds, so a fresh video with ground truth can be made anywhere, offline.

    >>> from cmagrounding.demo.generator import GeneratorConfig, generate_scene
    >>> scene = generate_scene(GeneratorConfig(), seed=0, index=0)
    >>> [(e.sentence, e.start, e.end) for e in scene.events]          # doctest: +SKIP

The shipped demo model (``cmagrounding/demo/model/``) was trained on such videos only: it is a
demonstration of the whole path from a video file to seconds, not a model of real-world footage.
"""

from __future__ import annotations

from pathlib import Path

from cmagrounding.model_card import ModelCard

#: The shipped pretrained folder (package data).
DEMO_MODEL_DIR = Path(__file__).resolve().parent / "model"

#: What the demo model is for (config.json's "card"; written by ``tools.demo.build``).
DEMO_CARD = ModelCard(
    domain="generated videos of coloured shapes (demo), not real footage",
    intended_use=(
        "showing the whole path from a video file to seconds (cmagrounding demo) on videos made by "
        "cmagrounding.demo; on real videos its answers carry no meaning"
    ),
    vocabulary=(
        "43 entries: the 39 words of the demo sentence grammar (cmagrounding.demo.grammar) and 4 special "
        "tokens; every other word is unknown to it"
    ),
    demo=True,
)
