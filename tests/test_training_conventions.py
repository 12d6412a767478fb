"""Both scoring conventions (the library's, GT clipped; LGI's, raw GT), side by side and labelled;
evaluation in fp32 whatever the training precision."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from cmagrounding.cli import main
from cmagrounding.errors import ConfigError
from cmagrounding.training.annotations import load_annotations, load_charades_sta, save_jsonl
from cmagrounding.training.dataset import GroundingDataset
from cmagrounding.training.evaluation import evaluate_network, predict_spans
from cmagrounding.training.metrics import (
    CONVENTION,
    CONVENTION_LABELS,
    LGI_CONVENTION,
    PAPER_CONVENTION_REASON,
    GroundingMetrics,
    compute_conventions,
    compute_metrics,
)
from cmagrounding.training.predictions import score_predictions
from cmagrounding.training.protocol import run_recipe
from cmagrounding.training.synthetic import make_synthetic

from test_training_trainer import tiny_recipe


def test_lgi_scores_the_raw_ground_truth_and_unclipped_predictions():
    durations = np.array([10.0, 10.0])
    pred = np.array([[5.0, 10.0], [-2.0, 4.0]])
    gt = np.array([[5.0, 10.0], [0.0, 4.0]])  # as the loader clipped it
    raw = np.array([[5.0, 12.0], [0.0, 4.0]])  # as the file gave it
    m = compute_conventions(pred, gt, raw, durations)
    assert m.miou == pytest.approx(1.0) and m.convention == CONVENTION  # library: both clipped to [0, 10]
    lgi = m.alternatives["lgi"]
    assert lgi.convention == LGI_CONVENTION
    assert lgi.miou == pytest.approx((5 / 7 + 4 / 6) / 2)  # nothing clipped, LGI's compute_tiou
    assert lgi.recall == {0.1: 1.0, 0.3: 1.0, 0.5: 1.0, 0.7: 0.5}
    with pytest.raises(ConfigError, match="unknown scoring convention"):
        compute_metrics(pred, gt, durations, convention="2d-tan")


def test_both_conventions_round_trip_and_are_labelled_in_the_table():
    m = compute_conventions(np.array([[5.0, 10.0]]), np.array([[5.0, 10.0]]), np.array([[5.0, 12.0]]), [10.0])
    d = m.to_dict()
    assert d["convention"] == CONVENTION and d["lgi"]["convention"] == LGI_CONVENTION
    assert d["R1@0.7"] == 1.0 and d["lgi"]["R1@0.7"] == 1.0 and d["lgi"]["mIoU"] == pytest.approx(5 / 7)
    assert GroundingMetrics.from_dict(json.loads(json.dumps(d))).to_dict() == d
    table = m.table({"R1@0.5": 57.56}, title="charades-simple")
    lines = table.splitlines()
    assert lines[1].startswith(f"charades-simple, {CONVENTION_LABELS['library']}") and "100.00" in lines[1]
    assert lines[2].startswith(f"charades-simple, {CONVENTION_LABELS['lgi']}") and "71.43" in lines[2]
    assert lines[3].startswith("paper") and "57.56" in lines[3]
    assert PAPER_CONVENTION_REASON in table and CONVENTION in table and LGI_CONVENTION in table
    assert PAPER_CONVENTION_REASON not in m.table(title="x")  # no paper row, no comparison to explain


def _charades_files(root, rows, durations):
    root.mkdir(parents=True, exist_ok=True)
    (root / "charades_sta_test.txt").write_text("".join(f"{v} {s} {e}##{q}\n" for v, s, e, q in rows))
    (root / "Charades_v1_test.csv").write_text("id,length\n" + "".join(f"{v},{d}\n" for v, d in durations.items()))
    return root


def test_loaders_keep_the_files_ground_truth_beside_the_repaired_one(tmp_path):
    root = _charades_files(tmp_path, [("A", 2.0, 12.5, "person opens a door."), ("B", 4.0, 1.0, "person sits."),
                                      ("A", 1.0, 3.0, "person laughs.")], {"A": 10.0, "B": 8.0})
    anns = load_charades_sta(root / "charades_sta_test.txt", root / "Charades_v1_test.csv", split="test")
    a, b, c = anns
    assert (a.start, a.end, a.raw_span) == (2.0, 10.0, (2.0, 12.5))
    assert (b.start, b.end, b.raw_span) == (1.0, 4.0, (4.0, 1.0))
    assert c.raw is None and c.raw_span == (1.0, 3.0)
    assert "raw" not in a.to_dict() and a == type(a)(a.video, a.duration, a.query, a.start, a.end)
    save_jsonl(anns, tmp_path / "x.jsonl")  # the JSON Lines format is unchanged
    assert set(json.loads((tmp_path / "x.jsonl").read_text().splitlines()[0])) == {"video", "duration", "query",
                                                                                 "start", "end"}


def test_predictions_file_is_scored_under_both_and_the_cli_says_which_the_paper_uses(tmp_path, capsys):
    root = _charades_files(tmp_path / "ann", [("A", 5.0, 12.0, "person opens a door."),
                                              ("B", 0.0, 4.0, "person sits.")], {"A": 10.0, "B": 8.0})
    preds = tmp_path / "p.jsonl"
    preds.write_text(json.dumps({"video": "A", "query": "person opens a door.", "pred": [5.0, 10.0]}) + "\n"
                     + json.dumps({"video": "B", "query": "person sits.", "pred": [0.0, 4.0]}) + "\n")
    report = score_predictions(preds, load_annotations("charades-sta", root, "test"))
    d = report.to_dict()
    assert d["mIoU"] == pytest.approx(1.0) and d["lgi"]["mIoU"] == pytest.approx((5 / 7 + 1.0) / 2)
    assert d["lgi"]["R1@0.7"] == 1.0 and d["lgi"]["R1@0.5"] == 1.0 and d["lgi"]["convention"] == LGI_CONVENTION
    out = tmp_path / "e.json"
    assert main(["evaluate", "--predictions", str(preds), "--dataset", "charades-sta", "--annotations", str(root),
                 "--json", str(out)]) == 0
    printed = capsys.readouterr().out
    assert CONVENTION_LABELS["library"] in printed and CONVENTION_LABELS["lgi"] in printed
    assert PAPER_CONVENTION_REASON in printed
    assert json.loads(out.read_text())["lgi"]["mIoU"] == pytest.approx(d["lgi"]["mIoU"])


def test_real_charades_test_split_scores_lower_under_lgi(shared_data):
    test = load_annotations("charades-sta", shared_data / "charades_sta", "test")
    raw = np.array([a.raw_span for a in test])
    durations = np.array([a.duration for a in test])
    assert int((raw[:, 1] > durations).sum()) == 562
    gt = np.array([[a.start, a.end] for a in test])
    rng = np.random.default_rng(0)  # seeded predictions: the ground truth plus noise, inside the video
    pred = np.sort(np.clip(gt / durations[:, None] + rng.normal(0.0, 0.05, gt.shape), 0.0, 1.0), 1) * durations[:, None]
    m = compute_conventions(pred, gt, raw, durations)
    lgi = m.alternatives["lgi"]
    # a prediction inside the video has the same intersection and a wider union with the raw end
    assert all(lgi.recall[t] <= m.recall[t] for t in m.recall) and lgi.miou < m.miou
    assert lgi.recall[0.5] < m.recall[0.5] and lgi.recall[0.7] < m.recall[0.7]


def _tiny_network_and_test_set():
    recipe = tiny_recipe()
    data = make_synthetic(recipe.synthetic)
    from cmagrounding.model.config import CMAConfig
    from cmagrounding.model.network import CMANetwork
    from cmagrounding.text.tokenizer import WordTokenizer

    tok = WordTokenizer.build(data.train.sentences, style="lgi")
    cfg = CMAConfig.from_dict({**recipe.model, "vocab_size": tok.vocab_size})
    torch.manual_seed(0)
    net = CMANetwork(cfg).eval()
    return net, GroundingDataset(data.test, data.store, tok, cfg.num_clips, cfg.max_words)


def test_evaluation_is_fp32_even_inside_a_reduced_precision_region():
    net, ds = _tiny_network_and_test_set()
    fp32 = predict_spans(net, ds, device="cpu")
    with torch.autocast("cpu", dtype=torch.bfloat16):
        inside = predict_spans(net, ds, device="cpu")
        from cmagrounding.training.dataset import collate

        batch = collate([ds[i] for i in range(len(ds))])
        with torch.no_grad():
            bf16 = net(batch["video"], batch["video_mask"], batch["words"], batch["word_mask"]).span.float().numpy()
    np.testing.assert_array_equal(inside, fp32)
    assert np.abs(bf16 - fp32[batch["index"].numpy()]).max() > 1e-4  # autocast would have moved the spans
    with pytest.warns(DeprecationWarning, match="fp32"):
        np.testing.assert_array_equal(predict_spans(net, ds, device="cpu", amp=True), fp32)


def test_training_in_bf16_logs_fp32_scores_under_both_conventions(tmp_path):
    result = run_recipe(tiny_recipe(epochs=1, amp=True), tmp_path)  # CPU autocast: bf16 training steps
    data = make_synthetic(result.recipe.synthetic)
    from cmagrounding.text.tokenizer import WordTokenizer

    tok = WordTokenizer.from_file(tmp_path / "tokenizer.json")
    cfg = result.network.config
    test_ds = GroundingDataset(data.test, data.store, tok, cfg.num_clips, cfg.max_words)
    assert result.test.to_dict() == evaluate_network(result.network, test_ds, device="cpu").to_dict()
    log = [json.loads(line) for line in (tmp_path / "train_log.jsonl").read_text().splitlines()]
    vals = [r["val"] for r in log if isinstance(r.get("val"), dict)]
    assert vals and all(v["convention"] == CONVENTION and v["lgi"]["convention"] == LGI_CONVENTION for v in vals)
    saved = json.loads((tmp_path / "result.json").read_text())
    assert saved["paper_convention"] == "lgi" and saved["test"]["lgi"]["convention"] == LGI_CONVENTION


def test_evaluate_shows_the_paper_row_of_the_models_recipe_only_for_its_dataset(tmp_path):
    from cmagrounding.cli.evaluate import _paper_row
    from cmagrounding.training.recipes import get_recipe

    from grounder_fixtures import tiny_grounder

    recipe = get_recipe("charades-simple-relu")
    tiny_grounder().save_pretrained(tmp_path / "m", recipe=recipe.to_dict())
    assert _paper_row(str(tmp_path / "m"), "charades-sta", "test") == recipe.paper
    assert _paper_row(str(tmp_path / "m"), "charades-sta", "train") is None
    assert _paper_row(str(tmp_path / "m"), "activitynet-captions", "test") is None


def test_the_shuffled_query_baseline_keeps_each_rows_ground_truth_as_the_file_gave_it(tmp_path):
    from cmagrounding.training.evaluation import shuffle_queries

    root = _charades_files(tmp_path, [("A", 2.0, 12.5, "person opens a door."), ("B", 1.0, 3.0, "person sits.")],
                           {"A": 10.0, "B": 8.0})
    anns = load_annotations("charades-sta", root, "test")
    shuffled = shuffle_queries(anns)
    assert [a.query for a in shuffled] == ["person sits.", "person opens a door."]
    assert [a.raw_span for a in shuffled] == [(2.0, 12.5), (1.0, 3.0)]
