"""Two-stage training (``HeadSettings.stage_epochs``), the cosine learning rate and the absent
sentences mined from the training set (docs/training.md, "Two stages", "Absent sentences mined")."""

import dataclasses
import json
import math

import pytest

from cmagrounding.errors import ConfigError
from cmagrounding.training.annotations import Annotation
from cmagrounding.training.confidence_data import mine_absent
from cmagrounding.training.config import TrainConfig
from cmagrounding.training.recipes import get_recipe
from own_data_fixtures import SMALL, own_data  # noqa: F401 (own_data: a fixture)


def _recipe(epochs=3, stage_epochs=2, **head):
    r = get_recipe("own-data")
    return r.replace(model=dict(SMALL), train=TrainConfig(epochs=epochs, batch_size=16, num_threads=1, progress=False,
                                                          lr_schedule="cosine"),
                     head=dataclasses.replace(r.head, stage_epochs=stage_epochs, **head))


def _log(path):
    return [json.loads(line) for line in path.read_text().splitlines() if '"step"' not in line]


def test_cosine_schedule_per_epoch():
    cfg = TrainConfig(epochs=4, lr=1e-3, lr_schedule="cosine")
    assert [cfg.epoch_lr(e) for e in range(4)] == pytest.approx([1e-3, 1e-3 * (1 + math.cos(math.pi / 4)) / 2,
                                                                 5e-4, 1e-3 * (1 + math.cos(3 * math.pi / 4)) / 2])
    assert TrainConfig(epochs=4, lr=2e-3).epoch_lr(3) == 2e-3  # constant: the paper's
    with pytest.raises(ConfigError, match="lr_schedule must be 'constant' or 'cosine', got 'step'"):
        TrainConfig(lr_schedule="step")


def test_two_stages_network_then_head(own_data, tmp_path):
    from cmagrounding import Grounder
    from cmagrounding.training.checkpoint import latest_checkpoint, load_checkpoint
    from cmagrounding.training.protocol import run_recipe

    out = tmp_path / "run"
    result = run_recipe(_recipe(), out, annotations=own_data, features=own_data / "features")
    t = result.train
    assert t.epochs_completed == 5 and t.stages["network"]["epochs"] == 3 and t.stages["head"]["epochs"] == 2
    assert 1 <= t.stages["network"]["best_epoch"] <= 3 and t.best_metrics is not None  # the kept epoch's val
    # stage 1: the network alone (no head in its checkpoints), cosine rate; stage 2: the head's rate
    first = _log(out / "network" / "train_log.jsonl")
    assert [r["lr"] for r in first] == pytest.approx([TrainConfig(epochs=3, lr_schedule="cosine").epoch_lr(e)
                                                      for e in range(3)])
    stage1 = load_checkpoint(latest_checkpoint(out / "network" / "checkpoints"))
    assert not any(k.startswith("confidence.") for k in stage1.model)
    assert [r["lr"] for r in _log(out / "train_log.jsonl")] == [3e-4, 3e-4]
    config = json.loads((result.model_dir / "config.json").read_text())
    assert config["model"]["confidence_head"] and config["metrics"]["stages"]["head"]["epochs"] == 2
    assert "then the last of 2 epochs with the confidence head" in config["metrics"]["val_protocol"]
    # the second stage trained the network too, from the first stage's best weights
    g = Grounder.from_pretrained(result.model_dir, device="cpu")
    assert g.network.config.confidence_head
    # a resumed finished run trains nothing more and gives the same model
    again = run_recipe(_recipe(), out, annotations=own_data, features=own_data / "features", resume=True)
    assert again.train.epochs_completed == 5
    for k, v in result.network.state_dict().items():
        assert (again.network.state_dict()[k] == v).all(), k


def test_resuming_a_one_stage_run_as_two_stages_is_refused(own_data, tmp_path):
    from cmagrounding.training.protocol import run_recipe

    out = tmp_path / "run"
    run_recipe(_recipe(epochs=1, stage_epochs=0), out, annotations=own_data, features=own_data / "features")
    with pytest.raises(ConfigError, match="trained in one stage; resume it with --set head.stage_epochs=0"):
        run_recipe(_recipe(epochs=2), out, annotations=own_data, features=own_data / "features", resume=True)


def test_mined_absent_never_takes_a_videos_own_words():
    rows = [Annotation("a", 10.0, "the red circle grows", 1, 3), Annotation("a", 10.0, "the blue square spins", 4, 6),
            Annotation("b", 10.0, "the red circle shrinks", 1, 3), Annotation("b", 10.0, "grows the red circle", 5, 8),
            Annotation("c", 10.0, "a green star jumps", 2, 4)]
    mined = mine_absent(rows, 2.0, hard_fraction=1.0, seed=3)
    assert len(mined["a"]) == 4 and len(mined["b"]) == 4 and len(mined["c"]) == 2  # 2 per annotation
    words = lambda q: frozenset(q.split())  # noqa: E731
    for video, queries in mined.items():
        own = {words(r.query) for r in rows if r.video == video}
        assert not any(words(q) in own for q in queries), video  # same words, other order: not absent
    assert set(mined["a"]) == {"the red circle shrinks"}  # hard: the most alike to its own sentences
    rand = mine_absent(rows, 1.0, hard_fraction=0.0, seed=3)
    assert sum(len(q) for q in rand.values()) == 5
    with pytest.raises(ConfigError, match="hard_fraction in \\[0, 1\\]"):
        mine_absent(rows, 1.0, hard_fraction=2.0)


def test_own_data_recipe_mines_absent_sentences_for_the_head(own_data):
    from cmagrounding.training.head import feature_rows, head_windows
    from cmagrounding.training.annotations import load_annotations
    from cmagrounding.training.stores import open_feature_store

    r = get_recipe("own-data")
    assert (r.head.stage_epochs, r.head.mined_absent, r.crops, r.train.lr_schedule) == (10, 1.0, 4, "cosine")
    train = list(load_annotations("jsonl", own_data, "train"))
    rows_of = feature_rows(open_feature_store(own_data / "features"), {a.video for a in train})
    _, labels, summary = head_windows(train, rows_of, 1.0, r.head, 16)
    off, _, base = head_windows(train, rows_of, 1.0, dataclasses.replace(r.head, mined_absent=0.0), 16)
    assert summary["mined_absent_windows"] > 0 and base["mined_absent_windows"] == 0
    assert summary["windows"] == base["windows"] + summary["mined_absent_windows"]
    assert labels[-summary["mined_absent_windows"]:] == [0.0] * summary["mined_absent_windows"]


def test_a_first_stage_serves_a_second_stage_with_other_head_settings(own_data, tmp_path):
    """The first stage's configuration holds none of the head's settings, so its folder, copied into a
    new output folder and resumed there, trains another head (docs/training.md, "Two stages")."""
    import shutil

    from cmagrounding import Grounder
    from cmagrounding.training.protocol import run_recipe

    first = tmp_path / "first"
    run_recipe(_recipe(epochs=2, stage_epochs=1), first, annotations=own_data, features=own_data / "features")
    log = (first / "network" / "train_log.jsonl").read_text()
    fork = tmp_path / "wider-head"
    fork.mkdir()
    shutil.copytree(first / "network", fork / "network")
    shutil.copy(first / "tokenizer.json", fork / "tokenizer.json")
    result = run_recipe(_recipe(epochs=2, stage_epochs=1, hidden=48), fork, annotations=own_data,
                        features=own_data / "features", resume=True)
    assert (fork / "network" / "train_log.jsonl").read_text() == log  # the first stage was not trained again
    assert result.train.stages["network"]["epochs"] == 2 and result.train.stages["head"]["epochs"] == 1
    g = Grounder.from_pretrained(result.model_dir, device="cpu")
    assert g.network.config.confidence_hidden == 48 and g.network.confidence.mlp[0].out_features == 48
