"""Recipes: every named configuration builds, ablations change one setting, protocols split right."""

import pytest

from cmagrounding.errors import ConfigError
from cmagrounding.model.config import CMAConfig, LossConfig
from cmagrounding.model.presets import get_preset
from cmagrounding.training.protocol import holdout_split, load_recipe_data
from cmagrounding.training.recipes import RECIPES, Recipe, get_recipe
from cmagrounding.training.stores import MemoryStore

ABLATIONS = {  # FACTS.md: Charades-STA R1@0.5 of Tables 3-6
    "charades-encoder-only": 51.16, "charades-decoder-only": 55.81, "charades-pe-none": 53.63,
    "charades-pe-learned": 56.29, "charades-fusion-add": 53.42, "charades-fusion-concat": 56.45,
    "charades-loss-smoothl1": 56.45, "charades-loss-a2-b0.1": 56.59, "charades-loss-a2-b0.2": 57.07,
}


def _configs(r: Recipe) -> tuple[CMAConfig, LossConfig]:
    if r.preset is None:
        return CMAConfig.from_dict(r.model), LossConfig.from_dict(r.loss)
    p = get_preset(r.preset)
    return p.model.replace(**r.model), p.loss.replace(**r.loss)


@pytest.mark.parametrize("name", list(RECIPES))
def test_every_recipe_builds_and_round_trips(name):
    r = get_recipe(name)
    model, loss = _configs(r)  # validates
    assert Recipe.from_dict(r.to_dict()).to_dict() == r.to_dict()
    if r.dataset == "jsonl":  # own-data and demo: the demo model's batch (docs/training.md, "One training path")
        assert r.train.batch_size == 32 and r.train.lr == 1e-3 and r.head.enabled and r.standardize
    else:
        assert r.train.batch_size == 100 and r.train.lr == 1e-3  # the paper's settings


def test_paper_numbers_and_ablations_change_one_setting():
    assert RECIPES["charades-simple"].paper == {"R1@0.3": 71.38, "R1@0.5": 57.56, "R1@0.7": 35.18, "mIoU": 50.01}
    assert RECIPES["charades-full"].paper["R1@0.5"] == 59.81
    assert RECIPES["activitynet-full"].paper == {"R1@0.3": 59.10, "R1@0.5": 41.93, "R1@0.7": 24.23, "mIoU": 41.96}
    base_model, base_loss = _configs(RECIPES["charades-simple"])
    for name, r5 in ABLATIONS.items():
        r = RECIPES[name]
        assert r.paper == {"R1@0.5": r5}
        model, loss = _configs(r)
        changed = {k for k, v in model.to_dict().items() if base_model.to_dict()[k] != v}
        changed |= {f"loss.{k}" for k, v in loss.to_dict().items() if base_loss.to_dict()[k] != v}
        if "-loss-" in name:  # Table 6 varies the regression loss only
            assert changed and all(k.startswith("loss.") for k in changed), (name, changed)
        else:  # Tables 3-5: exactly one model setting
            assert len(changed) == 1 and not next(iter(changed)).startswith("loss."), (name, changed)
    smooth = _configs(RECIPES["charades-loss-smoothl1"])[1]
    assert (smooth.kind, smooth.alpha, smooth.beta) == ("smooth_l1", 0.5, 1.0)  # Table 6's row
    assert _configs(RECIPES["activitynet-full"])[1].alpha == 2.0 and RECIPES["activitynet-full"].hdf5_key == "c3d_features"


def test_unknown_recipe_is_refused():
    with pytest.raises(ConfigError, match="charades-full"):
        get_recipe("charades-fulll")


def test_validation_protocols_on_real_annotations(shared_data):
    r = get_recipe("charades-full")
    store = MemoryStore({})
    lgi = load_recipe_data(r, shared_data / "charades_sta", store)
    assert (len(lgi.train), len(lgi.test)) == (12408, 3720) and lgi.val is lgi.test
    assert "test split" in lgi.val_protocol
    held = load_recipe_data(r, shared_data / "charades_sta", store, val="holdout")
    assert len(held.train) + len(held.val) == 12408
    assert not set(held.train.videos) & set(held.val.videos)  # whole videos are held out
    assert round(len(held.val.videos) / 5338, 2) == 0.10
    again, _ = holdout_split(lgi.train, 0.1, seed=0)
    assert again.videos == held.train.videos  # deterministic for a seed
