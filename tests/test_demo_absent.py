"""Absent sentences of a generated video: no event of it has their meaning; every other one is about
the video's own shapes (the hard case)."""

from __future__ import annotations

import numpy as np

from tools.demo.absent import absent_meanings, absent_sentences
from cmagrounding.demo.generator import GeneratorConfig, generate_scene
from cmagrounding.demo.grammar import templates


def _meaning_of(text: str, colours) -> set[tuple]:
    """Every meaning whose paraphrases include ``text`` (the grammar's templates, filled in)."""
    from cmagrounding.demo.grammar import BACKGROUNDS, DIRECTIONS, SHAPES

    found = set()
    for kind, args in (("appear", [None]), ("disappear", [None]), ("grow", [None]), ("shrink", [None]),
                       ("move", list(DIRECTIONS)), ("recolour", list(colours)), ("background", list(BACKGROUNDS))):
        for a in args:
            pairs = [(None, None)] if kind == "background" else [(c, s) for c in colours for s in SHAPES]
            for c, s in pairs:
                for t in templates(kind, a):
                    if t.format(c=c, s=s, a=a) == text:
                        found.add((kind, c, s, a))
    return found


def test_absent_sentences_describe_no_event_of_the_video_and_half_are_about_its_shapes():
    cfg = GeneratorConfig(min_duration=150.0, max_duration=180.0, min_events=20, max_events=30)
    for index in range(4):
        scene = generate_scene(cfg, seed=11, index=index)
        used = {e.meaning for e in scene.events}
        free, hard = absent_meanings(scene, cfg.colours)
        assert free and not used & set(free) and set(hard) <= set(free)
        own = {(o.colour, o.shape) for o in scene.objects} | {(e.colour, e.shape) for e in scene.events}
        assert all((m[1], m[2]) in own for m in hard)
        sents = absent_sentences(scene, cfg.colours, np.random.default_rng(index), 12)
        assert len(sents) == 12
        for i, text in enumerate(sents):
            meanings = _meaning_of(text, cfg.colours)
            assert meanings and not meanings & used, text  # some meaning fits, none of the video's
            if i % 2 == 0 and hard:
                assert any((m[1], m[2]) in own for m in meanings), text
