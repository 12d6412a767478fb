"""``cmagrounding localize --top-k K --min-score S``: every moment with its score; "not in this video"."""

from __future__ import annotations

import json

import numpy as np
import pytest

from cmagrounding.video.features import VideoFeatures
from cmagrounding.windows import WindowSettings
from grounder_fixtures import features, tiny_grounder


@pytest.fixture(scope="module")
def model_and_long_features(tmp_path_factory):
    folder = tmp_path_factory.mktemp("cli-topk")
    g = tiny_grounder(num_phrases=1)
    g.windows = WindowSettings(size=4.0, stride=1.0, nms_iou=0.3, when_longer_than=6.0)  # 4 s = 8 rows = N
    g.save_pretrained(folder / "model")
    long = features(n=120, duration=60.0)  # two rows per second: windowed
    long.save(folder / "long.safetensors")
    return folder / "model", str(folder / "long.safetensors")


def test_top_k_json_lists_every_moment_with_its_score(model_and_long_features, capsys):
    from cmagrounding.cli import main

    model, feats = model_and_long_features
    assert main(["localize", feats, "the person sits", "a person opens the door", "--model", str(model),
                 "--top-k", "3", "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["top_k"] == 3 and out["min_score"] is None and "moments" not in out
    assert [r["query"] for r in out["results"]] == ["the person sits", "a person opens the door"]
    for r in out["results"]:
        assert r["found"] and len(r["moments"]) == 3
        scores = [m["score"] for m in r["moments"]]
        assert scores == sorted(scores, reverse=True)
        for m in r["moments"]:
            assert 0 <= m["start"] < m["end"] <= 60.0
            assert m["window"][1] - m["window"][0] == pytest.approx(4.0)  # came from a window


def test_min_score_reports_not_in_this_video(model_and_long_features, capsys):
    from cmagrounding.cli import main

    model, feats = model_and_long_features
    assert main(["localize", feats, "the person sits", "--model", str(model), "--min-score", "1.5"]) == 0
    text = capsys.readouterr().out
    assert "not in this video" in text and "1.5" in text
    assert main(["localize", feats, "the person sits", "--model", str(model), "--min-score", "0", "--top-k", "2"]) == 0
    lines = [x for x in capsys.readouterr().out.splitlines() if "score" in x]
    assert len(lines) == 2 and "#1" in lines[0] and "#2" in lines[1]
    assert main(["localize", feats, "the person sits", "--model", str(model), "--min-score", "1.5", "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["results"] == [{"query": "the person sits", "found": False, "moments": []}]


def test_bad_top_k_is_a_usage_error(model_and_long_features, capsys):
    from cmagrounding.cli import main

    model, feats = model_and_long_features
    assert main(["localize", feats, "q", "--model", str(model), "--top-k", "0"]) == 2
    assert "--top-k must be >= 1" in capsys.readouterr().err


def test_network_precision_flag_runs_the_bf16_network(model_and_long_features, capsys):
    """--network-precision bf16 runs the network in bf16: the same windows, answers within bf16 rounding."""
    from cmagrounding.cli import main

    model, feats = model_and_long_features
    runs = {}
    for precision in ("fp32", "bf16"):
        assert main(["localize", feats, "the person sits", "--model", str(model), "--top-k", "2", "--json",
                     "--network-precision", precision]) == 0
        runs[precision] = json.loads(capsys.readouterr().out)["results"][0]["moments"]
    fp32, bf16 = runs["fp32"], runs["bf16"]
    assert [m["start"] for m in fp32] != [m["start"] for m in bf16] or [m["score"] for m in fp32] != [m["score"] for m in bf16]
    assert np.allclose([m["start"] for m in fp32], [m["start"] for m in bf16], atol=0.5)
    with pytest.raises(SystemExit):
        main(["localize", feats, "q", "--model", str(model), "--network-precision", "int8"])
