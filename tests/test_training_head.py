"""One training path: a recipe's standardization, crops and confidence head; window settings for
every model; a head trained alone on a frozen model (docs/training.md, "One training path")."""

import dataclasses
import json

import numpy as np
import pytest

from cmagrounding.cli import main
from cmagrounding.errors import DatasetError
from cmagrounding.training.config import TrainConfig
from cmagrounding.training.head import binary_auroc, load_absent
from cmagrounding.training.recipes import RECIPES, get_recipe
from cmagrounding.training.synthetic import make_synthetic
from own_data_fixtures import OWN_DATA, SMALL, own_data  # noqa: F401 (own_data: a fixture)

PAPER = [name for name, r in RECIPES.items() if r.paper]


def _features(grounder, store, row):
    """The stored features of ``row``'s video as the VideoFeatures ``localize`` takes."""
    from cmagrounding.video.features import VideoFeatures

    x = store.get(row["video"])
    spr = row["duration"] / len(x)
    times = np.stack([np.arange(len(x)) * spr, (np.arange(len(x)) + 1) * spr], axis=1)
    return VideoFeatures(x, times, row["duration"], grounder.video_config, row["video"])


def _recipe(**changes):
    r = get_recipe("own-data")
    r = r.replace(head=dataclasses.replace(r.head, stage_epochs=1))  # two stages, the second short
    return r.replace(model=dict(SMALL), train=TrainConfig(epochs=2, batch_size=16, num_threads=1, progress=False),
                     **changes)


def test_paper_presets_leave_every_addition_off_and_own_data_turns_them_on():
    for name in PAPER:
        r = get_recipe(name)
        assert (r.head.enabled, r.standardize, r.crops) == (False, False, 0), name
    for name, r in RECIPES.items():  # every other recipe but the learning proof has the additions on
        if not r.paper and name != "synthetic":
            assert r.head.enabled and r.standardize, name
    own = get_recipe("own-data")
    assert own.head.enabled and own.standardize
    assert own.head.windows.negative_ratio == 2.0 and own.head.windows.hard_fraction == 0.5
    # a recipe read back from its dict (as a checkpoint stores it) is the same recipe
    assert get_recipe("own-data").from_dict(own.to_dict()) == own
    old = own.to_dict()
    for key in ("head", "standardize", "crops", "windows"):  # recipes saved before these existed still load
        old.pop(key)
    assert not type(own).from_dict(old).head.enabled


def test_train_gives_a_model_with_a_head_window_settings_and_raw_feature_input(own_data, tmp_path):
    from cmagrounding import Grounder
    from cmagrounding.training.protocol import run_recipe
    from cmagrounding.training.stores import open_feature_store

    result = run_recipe(_recipe(crops=1), tmp_path / "run", annotations=own_data, features=own_data / "features")
    config = json.loads((result.model_dir / "config.json").read_text())
    assert config["model"]["confidence_head"] is True
    durations = [a.duration for a in make_synthetic(OWN_DATA).train]
    # from the videos the network saw whole (1 row per second here: at most N = 16 s); the longer
    # ones (17-20 rows) trained the head through continuous windows
    whole = [d for d in durations if d <= SMALL["num_clips"]]
    w = config["windows"]
    assert max(durations) > SMALL["num_clips"] and w["trained_durations"]["max"] == pytest.approx(max(whole))
    assert w["when_longer_than"] == pytest.approx(1.5 * max(whole))
    assert 0.0 <= config["metrics"]["confidence_auroc"] <= 1.0
    parts = config["recipe"]["training_parts"]
    assert parts["crops"] > 0 and parts["head"]["windows"] > parts["head"]["positives"] > 0
    assert parts["head"]["continuous_from_videos"] > 0 and parts["head"]["joined_from_videos"] > 0
    # the standardization is folded in: the saved model reads raw features and answers as the
    # network that was tested on standardized ones
    g = Grounder.from_pretrained(result.model_dir, device="cpu")
    assert g.windows is not None and g.windows.size == pytest.approx(w["size_seconds"])
    store = open_feature_store(own_data / "features")
    test = [json.loads(line) for line in (own_data / "test.jsonl").read_text().splitlines()][:4]
    for row in test:
        m = g.localize(_features(g, store, row), row["query"], windowed=False)
        assert 0.0 <= m.start <= m.end <= row["duration"] + 1e-6 and 0.0 <= m.score <= 1.0


def test_head_only_keeps_the_networks_answers_and_adds_a_head(own_data, tmp_path):
    from cmagrounding import Grounder
    from cmagrounding.training.protocol import run_head_only, run_recipe
    from cmagrounding.training.stores import open_feature_store

    base = run_recipe(_recipe(head=get_recipe("synthetic").head), tmp_path / "base", annotations=own_data,
                      features=own_data / "features")  # the synthetic recipe's head: off
    assert not json.loads((base.model_dir / "config.json").read_text())["model"]["confidence_head"]
    absent = tmp_path / "absent.jsonl"
    train = [json.loads(line) for line in (own_data / "train.jsonl").read_text().splitlines()]
    absent.write_text("".join(json.dumps({"video": r["video"], "query": "a person juggles the moon"}) + "\n"
                              for r in train[:10]))
    result = run_head_only(_recipe(), base.model_dir, tmp_path / "head", annotations=own_data,
                           features=own_data / "features", absent=absent)
    config = json.loads((result.model_dir / "config.json").read_text())
    assert config["model"]["confidence_head"] is True and config["windows"]["size_seconds"] > 0
    assert config["recipe"]["training_parts"]["head"]["absent_windows"] == 10
    assert config["metrics"]["head_only"]["span_change"] <= 1e-5
    old = Grounder.from_pretrained(base.model_dir, device="cpu")
    new = Grounder.from_pretrained(result.model_dir, device="cpu")
    store = open_feature_store(own_data / "features")
    test = [json.loads(line) for line in (own_data / "test.jsonl").read_text().splitlines()]
    for row in test[:6]:
        feats = _features(old, store, row)
        a, b = old.localize(feats, row["query"], windowed=False), new.localize(feats, row["query"], windowed=False)
        assert (a.start, a.end) == pytest.approx((b.start, b.end), abs=1e-4)
    for name, p in new.network.state_dict().items():  # every weight but the head's is the old model's
        if not name.startswith("confidence."):
            np.testing.assert_array_equal(p.numpy(), old.network.state_dict()[name].numpy(), err_msg=name)


def test_head_only_command_line_refusals(tmp_path):
    base = ["train", "--recipe", "own-data", "--annotations", str(tmp_path), "--features", str(tmp_path)]
    with pytest.raises(SystemExit, match="--head-only needs --init"):
        main([*base, "--head-only"])
    with pytest.raises(SystemExit, match="--init is for --head-only"):
        main([*base, "--init", str(tmp_path)])
    with pytest.raises(SystemExit, match="--set does not apply to --head-only"):
        main([*base, "--head-only", "--init", str(tmp_path), "--set", "model.hidden=64"])


def test_absent_sentences_file_is_checked_line_by_line(tmp_path):
    path = tmp_path / "absent.jsonl"
    path.write_text('{"video": "a", "query": "the red circle grows"}\n\n{"video": "a", "query": "it rains"}\n')
    assert load_absent(path, ["a", "b"]) == {"a": ["the red circle grows", "it rains"]}
    with pytest.raises(DatasetError, match=r"absent.jsonl:1: video 'a' is not a training video"):
        load_absent(path, ["b"])
    path.write_text('{"video": "a"}\n')
    with pytest.raises(DatasetError, match=r'absent.jsonl:1: expected \{"video": ID, "query": TEXT\}'):
        load_absent(path)
    path.write_text("not json\n")
    with pytest.raises(DatasetError, match=r"absent.jsonl:1: "):
        load_absent(path)
    path.write_text('{"video": "a", "query": "x", "query": "y"}\n')  # read strictly: a key twice is refused
    with pytest.raises(DatasetError, match=r"absent.jsonl:1: .*query"):
        load_absent(path)


def test_binary_auroc_counts_ties_one_half():
    assert binary_auroc([0.9, 0.8, 0.1], [1, 1, 0]) == 1.0
    assert binary_auroc([0.5, 0.5], [1, 0]) == 0.5
    assert binary_auroc([0.2, 0.6, 0.4, 0.6], [1, 1, 0, 0]) == pytest.approx(1.5 / 4)  # pairs (pos, neg): 0, 0, 1, 0.5


def test_head_only_refuses_an_output_that_is_an_input_file(tmp_path, capsys):
    absent = tmp_path / "absent.jsonl"
    absent.write_text('{"video": "a", "query": "it rains"}\n')
    rc = main(["train", "--recipe", "own-data", "--head-only", "--init", str(tmp_path), "--annotations", str(tmp_path),
               "--features", str(tmp_path), "--absent", str(absent), "--output", str(absent)])
    assert rc != 0 and "an output never replaces an input" in capsys.readouterr().err
    assert absent.read_text() == '{"video": "a", "query": "it rains"}\n'
