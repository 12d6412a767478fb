"""``cmagrounding demo --duration``: long generated videos with the training videos' event density."""

from __future__ import annotations

import pytest

from cmagrounding.demo.generator import GeneratorConfig, generate_scene
from cmagrounding.demo.runner import config_for_duration


@pytest.mark.parametrize("length", [60.0, 180.0])
def test_long_videos_keep_the_event_density(length):
    base = GeneratorConfig()
    cfg = config_for_duration(base, length)
    assert cfg.min_duration == pytest.approx(0.8 * length) and cfg.max_duration == pytest.approx(1.2 * length)
    assert cfg.min_events == round(3 * length / 20) and cfg.max_events == round(5 * length / 20)
    scenes = [generate_scene(cfg, seed=99, index=i) for i in range(3)]
    for s in scenes:
        assert 0.8 * length - 0.2 <= s.duration <= 1.2 * length + 0.2
        # events per second as in the 20-s training videos (3-5 per 16-24 s), minus slots with no new meaning
        assert len(s.events) >= 0.5 * cfg.min_events
        assert len({e.meaning for e in s.events}) == len(s.events)  # each sentence has one moment


def test_bad_duration():
    with pytest.raises(ValueError, match="duration"):
        config_for_duration(GeneratorConfig(), 0.0)
    from cmagrounding.cli import main

    assert main(["demo", "--duration", "-5"]) == 2
