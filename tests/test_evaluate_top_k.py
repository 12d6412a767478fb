"""``cmagrounding evaluate --model ... --top-k K``: the Grounder's ranked, scored candidates written
in Moment-DETR's keys and the library's; R1 from the first, mAP from all; the written file
rescored by ``--predictions`` gives the printed numbers. QVHighlights rows and ``.npy`` features
written here; a tiny model with the confidence head and window settings built here."""

from __future__ import annotations

import json
import warnings

import numpy as np
import pytest
import torch

from cmagrounding import Grounder
from cmagrounding.cli import main
from cmagrounding.errors import QueryWarning
from cmagrounding.model.config import CMAConfig
from cmagrounding.model.network import CMANetwork
from cmagrounding.text.tokenizer import WordTokenizer
from cmagrounding.video.features import VideoFeatures
from cmagrounding.windows import WindowSettings
from grounder_fixtures import D, SENTENCES, tiny_video_config

LONG, SHORT = 30.0, 8.0  # seconds; 2 feature rows a second; windowed beyond 10 s


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    root = tmp_path_factory.mktemp("eval-topk")
    tok = WordTokenizer.build(SENTENCES)
    cfg = CMAConfig(video_dim=D, vocab_size=tok.vocab_size, word_dim=8, num_clips=8, max_words=6, hidden=16,
                    lstm_hidden=8, spe_hidden=8, ffn_dim=16, head_hidden=16, num_heads=2, encoder_layers=1,
                    decoder_layers=1, num_phrases=1, confidence_head=True, confidence_hidden=8)
    torch.manual_seed(0)
    g = Grounder(CMANetwork(cfg), tok, tiny_video_config(), device="cpu")
    g.windows = WindowSettings(size=4.0, stride=2.0, nms_iou=0.3, when_longer_than=10.0)  # 4 s = 8 rows = N
    g.save_pretrained(root / "model")
    rng = np.random.default_rng(3)
    feats, qvh = root / "feats", root / "qvh"
    feats.mkdir()
    qvh.mkdir()
    videos = {"long_a": LONG, "long_b": LONG, "short_c": SHORT}
    for v, d in videos.items():
        np.save(feats / f"{v}.npy", rng.standard_normal((int(2 * d), D)).astype(np.float32))
    rows = []
    for i, (v, d) in enumerate([(v, d) for v, d in videos.items() for _ in range(2)]):
        s = float(rng.integers(0, int(d) - 4))
        windows = [[s, s + 4.0]] + ([[0.0, 2.0]] if i % 2 else [])  # several windows on some queries
        query = SENTENCES[i % 3] if i != 4 else "someone drinks a cup of coffee on the chair"  # > max_words
        if d == LONG and i % 2:  # a window where the model's second candidate lies: only the ranked list finds it
            second = _answers(g, np.load(feats / f"{v}.npy"), d, query, 3)[1]
            windows = [[s, s + 4.0], second[:2]]
        rows.append({"qid": 10 + i, "query": query, "duration": d, "vid": v,
                     "relevant_windows": windows})
    (qvh / "highlight_val_release.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    return root, g, videos, rows


def _answers(g, x, duration, query, k=None):
    """The Grounder's answer(s) on features ``x`` (n, D) over [0, duration]: [start, end] unwidened."""
    edges = np.linspace(0.0, duration, len(x) + 1)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", QueryWarning)
        got = g.localize(VideoFeatures(x, np.stack([edges[:-1], edges[1:]], 1), duration, g.video_config), query,
                         top_k=k)
    out = []
    for m in (got if k else [got]):
        w0, w1 = m.window if m.window is not None else (0.0, duration)
        out.append([w0 + m.span[0] * (w1 - w0), w0 + m.span[1] * (w1 - w0), m.score])
    return out if k else out[0]


def _evaluate(root, *extra):
    return main(["evaluate", "--model", str(root / "model"), "--dataset", "qvhighlights", "--annotations",
                 str(root / "qvh"), "--split", "val", "--features", str(root / "feats"), *extra])


def _read(path):
    return [json.loads(x) for x in path.read_text().splitlines()]


def test_top_k_writes_ranked_scored_candidates_that_rescore_as_printed(setup, capsys):
    root, g, videos, rows = setup
    assert _evaluate(root, "--json", str(root / "one.json"), "--save-moment-detr", str(root / "one.jsonl")) == 0
    with warnings.catch_warnings():  # a long query is read as the default evaluation reads it: silently
        warnings.simplefilter("error", QueryWarning)
        assert _evaluate(root, "--top-k", "3", "--json", str(root / "k.json"), "--save-moment-detr",
                         str(root / "k.jsonl"), "--save-predictions", str(root / "lib.jsonl")) == 0
    printed = capsys.readouterr().out
    assert "up to 3 ranked candidates per query" in printed
    md, lib, one = _read(root / "k.jsonl"), _read(root / "lib.jsonl"), _read(root / "one.jsonl")
    assert [r["qid"] for r in md] == [r["qid"] for r in rows] and len(lib) == len(rows)
    assert all(len(r["pred_relevant_windows"]) == 1 for r in one)  # the default: one answer, as before
    for r, lr, o, a in zip(md, lib, one, rows):
        cands = r["pred_relevant_windows"]
        assert lr["pred"] == cands and (lr["video"], lr["query"]) == (r["vid"], r["query"]) == (a["vid"], a["query"])
        assert len(cands) == (3 if videos[a["vid"]] == LONG else 1)  # windows ranked; a whole video: one
        scores = [c[2] for c in cands]
        assert scores == sorted(scores, reverse=True) and all(0.0 <= s <= 1.0 for s in scores)
        assert all(0.0 <= c[0] <= c[1] <= a["duration"] for c in cands)
        # the first candidate is the Grounder's default answer on the same features (fp32: asked
        # alone here, beside the video's other query there, the products round differently)
        best = _answers(g, np.load(root / "feats" / f"{a['vid']}.npy"), a["duration"], a["query"])
        assert cands[0] == pytest.approx(best, abs=1e-5)
        if videos[a["vid"]] == SHORT:  # run whole: today's evaluation answer (clipped to the video)
            o_start, o_end, o_score = o["pred_relevant_windows"][0]
            assert cands[0] == pytest.approx([o_start, o_end, o_score], abs=1e-5)
    result = json.loads((root / "k.json").read_text())
    assert _evaluate(root, "--json", str(root / "one-again.json")) == 0
    assert json.loads((root / "one-again.json").read_text()) == json.loads((root / "one.json").read_text())
    capsys.readouterr()
    assert main(["evaluate", "--predictions", str(root / "k.jsonl"), "--dataset", "qvhighlights", "--annotations",
                 str(root / "qvh"), "--split", "val", "--json", str(root / "again.json")]) == 0
    again = json.loads((root / "again.json").read_text())
    for key in ("R1@0.5", "R1@0.7", "mIoU", "mAP", "mAP@0.5", "mAP@0.75"):
        assert again[key] == pytest.approx(result[key], abs=1e-12), key
    # the ranked list reaches the windows only second candidates match: mAP counts them, R1 does not
    first = json.loads((root / "one.json").read_text())
    assert result["mAP@0.5"] > first["mAP@0.5"] and result["R1@0.5"] == first["R1@0.5"]


def test_top_k_is_refused_with_predictions_and_below_one(setup, capsys):
    root, *_ = setup
    assert main(["evaluate", "--predictions", str(root / "x.jsonl"), "--dataset", "qvhighlights", "--annotations",
                 str(root / "qvh"), "--split", "val", "--top-k", "2"]) == 2
    assert "--top-k apply to --model" in capsys.readouterr().err
    with pytest.raises(SystemExit) as e:
        _evaluate(root, "--top-k", "0")
    assert e.value.code == 2 and "--top-k must be an integer >= 1" in capsys.readouterr().err
