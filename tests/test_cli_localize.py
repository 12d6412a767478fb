"""``cmagrounding localize`` and ``cmagrounding info`` run as subprocesses, as a user runs them."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from grounder_fixtures import features, tiny_grounder


def cli(*args: str, timeout: float = 240) -> subprocess.CompletedProcess:
    env = dict(os.environ, HF_HUB_OFFLINE="1", PYTHONWARNINGS="default")
    return subprocess.run(
        [sys.executable, "-m", "cmagrounding", *args], capture_output=True, text=True, timeout=timeout, env=env
    )


@pytest.fixture(scope="module")
def model_and_features(tmp_path_factory):
    folder = tmp_path_factory.mktemp("cli")
    g = tiny_grounder()
    g.save_pretrained(folder / "model", metrics={"R1@0.5": 1.0})
    saved = features(n=12, duration=6.0).save(folder / "feats")
    path = saved if saved is not None else next(p for p in folder.iterdir() if p.name.startswith("feats"))
    return folder / "model", str(path)


def test_localize_text(model_and_features):
    model, feats = model_and_features
    r = cli("localize", feats, "the person sits", "a person opens the door", "--model", str(model))
    assert r.returncode == 0, r.stderr
    lines = r.stdout.strip().splitlines()
    assert "6.00 s" in lines[0] and len(lines) == 3
    assert "the person sits" in lines[1] and " s - " in lines[1]


def test_localize_json_and_plot(model_and_features, tmp_path):
    model, feats = model_and_features
    png = tmp_path / "out.png"
    r = cli("localize", feats, "the person sits", "zebra", "--model", str(model), "--json", "--attention", "--plot", str(png))
    assert r.returncode == 0, r.stderr
    out = json.loads(r.stdout)
    assert out["duration"] == 6.0 and [m["query"] for m in out["moments"]] == ["the person sits", "zebra"]
    for m in out["moments"]:
        assert 0 <= m["start"] < m["end"] <= 6.0 and len(m["attention"]) == len(m["clip_times"]) == 8  # 12 features -> N = 8 clips
    assert out["moments"][1]["tokens"] == ["<UNK>"]
    assert "sees only <UNK>" in r.stderr  # the documented warning reaches the user
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and png.stat().st_size > 5000


# error paths in-process (same main() as the console script; a subprocess each would cost ~10 s)
@pytest.mark.parametrize(
    "case, message",
    [("empty", "empty or whitespace"), ("model", "neither an existing local folder"), ("video", "nope.mp4")],
)
def test_localize_errors_are_one_line(model_and_features, tmp_path, capsys, case, message):
    from cmagrounding.cli import main

    model, feats = model_and_features
    args = {
        "empty": [feats, "   ", "--model", str(model)],
        "model": [feats, "q", "--model", str(tmp_path / "missing")],
        "video": [str(tmp_path / "nope.mp4"), "q", "--model", str(model)],
    }[case]
    assert main(["localize", *args]) == 1
    err = capsys.readouterr().err
    assert message in err and err.startswith("cmagrounding localize: error:")


def test_info_text(model_and_features, capsys):
    from cmagrounding.cli import main

    model, _ = model_and_features
    assert main(["info", str(model)]) == 0
    out = capsys.readouterr().out
    assert "format version 1" in out and "R1@0.5=1.0" in out and "precomputed" in out


def test_info_shows_the_long_video_settings(model_and_features, capsys):
    """A model without window settings says so; the demo model shows its trained durations and windows."""
    import json as _json

    from cmagrounding.cli import main
    from cmagrounding.demo import DEMO_MODEL_DIR

    model, _ = model_and_features
    assert main(["info", str(model)]) == 0
    assert "long videos: no window settings recorded" in capsys.readouterr().out
    assert main(["info", str(DEMO_MODEL_DIR)]) == 0
    w = _json.loads((DEMO_MODEL_DIR / "config.json").read_text())["windows"]
    d = w["trained_durations"]
    line = next(x for x in capsys.readouterr().out.splitlines() if "long videos:" in x)
    assert f"trained on {d['min']:g}-{d['max']:g} s videos" in line
    assert f"windows of {w['size_seconds']:g} s every {w['stride_seconds']:g} s" in line


def test_info_json_check(model_and_features):
    model, _ = model_and_features
    r = cli("info", str(model), "--json", "--check")
    assert r.returncode == 0, r.stderr
    info = json.loads(r.stdout)
    assert info["format_version"] == 1 and info["model"]["video_dim"] == 16 and "Grounder(" in info["check"]
    assert info["parameters"]["network_values"] > 0


def test_info_broken_folder(model_and_features, tmp_path, capsys):
    import shutil

    from cmagrounding.cli import main

    model, _ = model_and_features
    broken = tmp_path / "broken"
    shutil.copytree(model, broken)
    (broken / "tokenizer.json").unlink()
    assert main(["info", str(broken)]) == 1
    assert "lacks tokenizer.json" in capsys.readouterr().err


def test_localize_html_from_features(model_and_features, tmp_path, capsys):
    """--html on a features file: the page has one timeline per query and no player."""
    from cmagrounding.cli import main

    model, feats = model_and_features
    page = tmp_path / "report.html"
    assert main(["localize", feats, "the person sits", "a <b>door</b>", "--model", str(model), "--html", str(page)]) == 0
    out = capsys.readouterr().out
    assert "the person sits" in out and f"report saved to {page}" in out
    html = page.read_text(encoding="utf-8")
    assert html.count('class="timeline"') == 2 and "<video" not in html and "a &lt;b&gt;door&lt;/b&gt;" in html


def test_localize_embed_video_needs_html(model_and_features, capsys):
    from cmagrounding.cli import main

    model, feats = model_and_features
    assert main(["localize", feats, "q", "--model", str(model), "--embed-video"]) == 2
    assert "--embed-video needs --html" in capsys.readouterr().err


def test_localize_plot_without_matplotlib_prints_results_then_exits_3(model_and_features, tmp_path):
    """Without matplotlib, --plot still prints every answer, then says how to get the plot."""
    from cmagrounding.cli.localize import EXIT_PLOT_UNAVAILABLE

    model, feats = model_and_features
    png = tmp_path / "out.png"
    code = "import sys; sys.modules['matplotlib'] = None; from cmagrounding.cli import main; raise SystemExit(main(sys.argv[1:]))"
    env = dict(os.environ, HF_HUB_OFFLINE="1")
    r = subprocess.run(
        [sys.executable, "-c", code, "localize", feats, "the person sits", "zebra", "--model", str(model), "--plot", str(png), "--json"],
        capture_output=True, text=True, timeout=240, env=env,
    )
    assert r.returncode == EXIT_PLOT_UNAVAILABLE == 3, r.stderr
    out = json.loads(r.stdout)
    assert [m["query"] for m in out["moments"]] == ["the person sits", "zebra"] and out["plot"] is None
    assert "pip install 'cmagrounding[plot]'" in r.stderr and not png.exists()


def test_localize_min_score_rejecting_all_still_writes_plot_and_page(model_and_features, tmp_path, capsys):
    """--min-score that keeps nothing: exit 0 (not the missing-extra status), every query drawn."""
    from cmagrounding.cli import main

    model, feats = model_and_features
    png, page = tmp_path / "p.png", tmp_path / "r.html"
    args = ["localize", feats, "the person sits", "zebra", "--model", str(model), "--top-k", "2", "--min-score", "1.0",
            "--plot", str(png), "--html", str(page)]
    assert main(args) == 0, capsys.readouterr().err
    html = page.read_text(encoding="utf-8")
    assert html.count('class="timeline"') == 2 and html.count("no moment kept") == 2
    assert png.read_bytes()[:4] == b"\x89PNG"
