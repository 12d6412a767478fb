"""Moment-DETR's scoring rules on rows written here (several windows, mAP, its predictions rows),
clip-and-count for out-of-range predictions, and the JSON Lines limits (duplicate keys, huge
numbers, deep nesting). The same rules reproduce Moment-DETR's own printed sample metrics
(benchmarks/check_moment_detr.py, opt-in: its files are not part of this project)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from cmagrounding.cli import main
from cmagrounding.errors import (
    DatasetError,
    JSONDuplicateKeyError,
    JSONNumberTooLargeError,
    JSONTooDeepError,
    NoGroundTruthError,
    PredictionsError,
)
from cmagrounding.training.annotations import load_annotations
from cmagrounding.training.metrics import compute_metrics
from cmagrounding.training.predictions import score_predictions
from cmagrounding.training.window_metrics import MAP_THRESHOLDS, average_precision


def _write(path: Path, rows: list) -> Path:
    path.write_text("".join((r if isinstance(r, str) else json.dumps(r)) + "\n" for r in rows), encoding="utf-8")
    return path


def _qvh(folder: Path) -> Path:
    """Two QVHighlights val rows (one with two windows) and one test row without windows."""
    folder.mkdir(exist_ok=True)
    _write(folder / "highlight_val_release.jsonl", [
        {"qid": 7, "query": "A man opens a door.", "duration": 150, "vid": "abc_60.0_210.0",
         "relevant_clip_ids": [0], "saliency_scores": [[1, 2, 3]], "relevant_windows": [[0, 10], [20, 30]]},
        {"qid": 8, "query": "A dog runs.", "duration": 20, "vid": "def_0.0_150.0",
         "relevant_clip_ids": [0], "saliency_scores": [[1, 2, 3]], "relevant_windows": [[5, 15]]},
    ])
    _write(folder / "highlight_test_release.jsonl", [
        {"qid": 9, "query": "A cat sleeps.", "duration": 150, "vid": "ghi_0.0_150.0"},
    ])
    return folder


def test_qvhighlights_keeps_every_window_and_its_qid(tmp_path):
    val = load_annotations("qvhighlights", _qvh(tmp_path / "qvh"), "val")
    assert (val.name, val.split, len(val)) == ("qvhighlights", "val", 2)
    a, b = val
    assert a.gt_windows == ((0.0, 10.0), (20.0, 30.0)) and (a.start, a.end) == (0.0, 10.0) and a.qid == 7
    assert b.windows == () and b.gt_windows == ((5.0, 15.0),) and b.qid == 8
    assert a.to_dict()["windows"] == [[0.0, 10.0], [20.0, 30.0]] and "windows" not in b.to_dict()


def test_several_windows_round_trip_through_the_own_data_format(tmp_path):
    from cmagrounding.training.annotations import load_jsonl, save_jsonl

    val = load_annotations("qvhighlights", _qvh(tmp_path / "qvh"), "val")
    save_jsonl(val, tmp_path / "val.jsonl")
    again = load_jsonl(tmp_path / "val.jsonl")
    assert [a.gt_windows for a in again] == [a.gt_windows for a in val] and [a.qid for a in again] == [7, 8]
    (tmp_path / "bad.jsonl").write_text('{"video": "v", "duration": 9, "query": "q", "windows": [[1]]}\n')
    with pytest.raises(DatasetError, match=r"bad.jsonl:1: 'windows' must be a non-empty list of \[start, end\]"):
        load_jsonl(tmp_path / "bad.jsonl")


def test_the_test_split_has_no_ground_truth_and_scoring_it_is_refused(tmp_path, capsys):
    folder = _qvh(tmp_path / "qvh")
    test = load_annotations("qvhighlights", folder, "test")
    assert len(test) == 1 and test[0].qid == 9
    rows = _write(tmp_path / "p.jsonl", [{"video": "ghi_0.0_150.0", "query": "A cat sleeps.", "pred": [0, 5]}])
    with pytest.raises(NoGroundTruthError, match="test split has no ground-truth windows"):
        score_predictions(rows, test)
    code = main(["evaluate", "--predictions", str(rows), "--dataset", "qvhighlights", "--annotations", str(folder),
                 "--split", "test", "--json", str(tmp_path / "e.json")])
    err = capsys.readouterr().err
    assert code == 1 and "no ground-truth windows" in err and "Traceback" not in err


def test_average_precision_by_hand():
    windows = np.array([[0.0, 10.0], [20.0, 30.0]])
    # scores out of order on purpose: AP sorts them. Best-scored [0, 10] takes window 0 (IoU 1);
    # [20, 25] reaches window 1 at IoU 0.5 only; the second [0, 10] finds window 0 taken.
    spans = np.array([[20.0, 25.0], [0.0, 10.0], [0.0, 10.0]])
    scores = np.array([0.8, 0.9, 0.7])
    ap = average_precision(spans, scores, windows)
    # at 0.5: TP, TP, FP -> precision 1, 1, 2/3 at recall .5, 1, 1 -> AP 1.0; above 0.5: TP, FP, FP -> 0.5
    assert ap[0] == pytest.approx(1.0) and ap[1:] == pytest.approx([0.5] * 9)
    assert MAP_THRESHOLDS == (0.5, 0.55, 0.6, 0.65, 0.7, 0.75, 0.8, 0.85, 0.9, 0.95)
    # a miss ranked first halves the precision of the later hit: AP 0.5 at every threshold
    assert average_precision(np.array([[0.0, 4.0], [5.0, 15.0]]), np.array([0.9, 0.5]),
                             np.array([[5.0, 15.0]])) == pytest.approx([0.5] * 10)


def test_best_window_iou_and_r1_miou_have_one_implementation_each():
    """best_window_ious is the IoU that predictions files and model answers are scored by (top-1
    and best of 5), metrics_of_ious the R1/mIoU of every scorer."""
    from types import SimpleNamespace

    from cmagrounding.training.metrics import metrics_of_ious
    from cmagrounding.training.window_metrics import best_window_ious, top1_ious, window_metrics

    windows = [[0.0, 10.0], [20.0, 30.0]]
    spans = np.array([[20.0, 25.0], [5.0, 15.0], [-5.0, 5.0], [40.0, 60.0]])
    got = best_window_ious(spans, windows, duration=50.0)  # the last span is clipped to [40, 50]
    np.testing.assert_allclose(got, [0.5, 5.0 / 15.0, 0.5, 0.0])
    ann = SimpleNamespace(gt_windows=windows, duration=50.0)
    assert top1_ious(spans, [ann] * 4).tolist() == got.tolist()
    m = metrics_of_ious(got, (0.3, 0.5))
    assert m.recall == {0.3: 0.75, 0.5: 0.5} and m.miou == got.mean() and m.count == 4
    assert window_metrics(spans, [ann] * 4, (0.3, 0.5)) == m
    with pytest.raises(ValueError, match="no predictions"):
        metrics_of_ious(np.zeros(0))


def test_moment_detr_rows_scored_with_its_rules(tmp_path, capsys):
    folder = _qvh(tmp_path / "qvh")
    rows = _write(tmp_path / "md.jsonl", [
        # qid 7: the first window is the top-1 (R1 takes it as given, best window: IoU 1); mAP sorts by score
        {"qid": 7, "query": "A man opens a door.", "vid": "abc_60.0_210.0",
         "pred_relevant_windows": [[0.0, 10.0, 0.9], [20.0, 25.0, 0.8], [0.0, 10.0, 0.7]],
         "pred_saliency_scores": [0.1, 0.2]},
        # qid 8: windows not sorted by score, read as they are: top-1 [5, 15] (IoU 1), mAP ranks [0, 4] first
        {"qid": 8, "query": "A dog runs.", "vid": "def_0.0_150.0",
         "pred_relevant_windows": [[5.0, 15.0, 0.5], [-0.1683, 4.0, 0.9]]},
    ])
    r = score_predictions(rows, load_annotations("qvhighlights", folder, "val"), thresholds=(0.5, 0.7))
    d = r.to_dict()
    assert d["R1@0.5"] == 1.0 and d["R1@0.7"] == 1.0
    assert d["mAP@0.5"] == pytest.approx((1.0 + 0.5) / 2) and d["mAP@0.75"] == pytest.approx((0.5 + 0.5) / 2)
    assert d["mAP"] == pytest.approx(((1.0 + 9 * 0.5) / 10 + 0.5) / 2)
    assert d["mAP-short"] == pytest.approx(d["mAP"]) and "mAP-long" not in d  # all windows are 10 s
    assert (r.windows, r.clipped) == (3, 1)  # the negative start is clipped and counted, not refused
    # the same through the command line, with --thresholds choosing the printed R1@m
    out_json = tmp_path / "e.json"
    assert main(["evaluate", "--predictions", str(rows), "--dataset", "qvhighlights", "--annotations", str(folder),
                 "--split", "val", "--thresholds", "0.5,0.7,0.9", "--json", str(out_json)]) == 0
    out = capsys.readouterr().out
    assert "R1@0.9" in out and "R1@0.3" not in out and "mAP@0.5 75.00" in out and "best-matching window" in out
    assert json.loads(out_json.read_text())["mAP@0.5"] == pytest.approx(0.75)


def test_thresholds_outside_the_range_are_refused(tmp_path, capsys):
    with pytest.raises(SystemExit):
        main(["evaluate", "--predictions", "p.jsonl", "--dataset", "jsonl", "--annotations", "a", "--thresholds", "0.99"])
    assert "thresholds must lie in [0.1, 0.95]" in capsys.readouterr().err


def test_single_window_rows_keep_compute_metrics_numbers_to_the_last_digit(tmp_path):
    rng = np.random.default_rng(3)
    folder = tmp_path / "own"
    folder.mkdir()
    gt, pred, rows, anns = [], [], [], []
    for i in range(200):
        d = float(rng.uniform(10, 100))
        s, e = sorted(rng.uniform(0, d, 2))
        ps, pe = sorted(rng.uniform(-5, d + 5, 2))  # some before 0 / past the end: clipped
        anns.append({"video": f"v{i}", "duration": d, "query": f"q {i}", "start": s, "end": e})
        rows.append({"video": f"v{i}", "query": f"q {i}", "pred": [ps, pe]})
        gt.append((s, e))
        pred.append((ps, pe))
    _write(folder / "test.jsonl", anns)
    r = score_predictions(_write(tmp_path / "p.jsonl", rows), load_annotations("jsonl", folder, "test"))
    ref = compute_metrics(np.array(pred), np.array(gt), np.array([a["duration"] for a in anns]))
    assert r.top1.recall == ref.recall and r.top1.miou == ref.miou  # exactly, not approximately
    assert r.clipped > 0


@pytest.mark.parametrize("line, error, message", [
    ('{"video": "a", "query": "q", "pred": [1, 2], "pred": [5, 6]}', JSONDuplicateKeyError, "key 'pred' is given twice"),
    ('{"video": "a", "query": "q", "pred": [1, ' + "9" * 400 + "]}", JSONNumberTooLargeError, "an integer of 400 digits"),
    ('{"video": "a", "query": "q", "pred": ' + "[" * 100000 + "]" * 100000 + "}", JSONTooDeepError, "nested too deeply"),
])
def test_rows_that_decode_but_must_not_be_used_are_refused_by_name(tmp_path, capsys, line, error, message):
    folder = tmp_path / "own"
    folder.mkdir()
    _write(folder / "test.jsonl", [{"video": "a", "duration": 10, "query": "q", "start": 1, "end": 2}])
    path = _write(tmp_path / "p.jsonl", ['{"video": "b", "query": "q", "pred": [1, 2]}', line])
    with pytest.raises(error, match="p.jsonl:2: " + message):
        score_predictions(path, load_annotations("jsonl", folder, "test"))
    code = main(["evaluate", "--predictions", str(path), "--dataset", "jsonl", "--annotations", str(folder),
                 "--split", "test", "--json", str(tmp_path / "e.json")])
    err = capsys.readouterr().err
    assert code == 1 and "p.jsonl:2" in err and "Traceback" not in err and len(err.strip().splitlines()) == 1


def test_a_score_too_large_for_a_float_is_refused_not_an_overflow(tmp_path):
    folder = tmp_path / "own"
    folder.mkdir()
    _write(folder / "test.jsonl", [{"video": "a", "duration": 10, "query": "q", "start": 1, "end": 2}])
    path = _write(tmp_path / "p.jsonl", ['{"video": "a", "query": "q", "pred": [[1, 2, 1e400]]}'])
    with pytest.raises(PredictionsError, match="p.jsonl:1: pred\\[0\\] score must be a finite number"):
        score_predictions(path, load_annotations("jsonl", folder, "test"))


def test_the_predictions_file_is_streamed_not_held(tmp_path, monkeypatch):
    """Rows that match nothing are counted and dropped as they are read: a 20,000-row file with 3
    matching rows keeps 3 Prediction objects alive, and the first 20 extra rows are named."""
    import cmagrounding.training.predictions_file as pf

    folder = tmp_path / "own"
    folder.mkdir()
    _write(folder / "test.jsonl", [{"video": f"v{i}", "duration": 10, "query": "q", "start": 1, "end": 2}
                                   for i in range(3)])
    lines = [json.dumps({"video": f"x{i}", "query": "q", "pred": [1, 2]}) for i in range(20000)]
    lines[5000:5000] = [json.dumps({"video": f"v{i}", "query": "q", "pred": [1, 2]}) for i in range(3)]
    path = _write(tmp_path / "p.jsonl", lines)
    alive, peak = [0], [0]
    original = pf.Prediction.__init__

    def counting_init(self, *args, **kwargs):
        original(self, *args, **kwargs)
        alive[0] += 1
        peak[0] = max(peak[0], alive[0])

    monkeypatch.setattr(pf.Prediction, "__init__", counting_init)
    monkeypatch.setattr(pf.Prediction, "__del__", lambda self: alive.__setitem__(0, alive[0] - 1), raising=False)
    r = score_predictions(path, load_annotations("jsonl", folder, "test"))
    assert (r.rows, r.extra, r.scored, r["R1@0.5"]) == (20003, 20000, 3, 1.0)
    assert len(r.extra_rows) == 20 and peak[0] <= 10


@pytest.mark.skipif(not __import__("os").environ.get("CMAGROUNDING_MOMENT_DETR"),
                    reason="opt-in: CMAGROUNDING_MOMENT_DETR=<a checkout of Moment-DETR's public repository>")
def test_moment_detr_sample_predictions_reproduce_its_printed_metrics():
    """Moment-DETR's own sample predictions against QVHighlights val: every brief moment-retrieval
    figure of its sample_val_preds_metrics_raw.json to 0.01 (its files are never part of this project)."""
    import os

    repo = Path(os.environ["CMAGROUNDING_MOMENT_DETR"])
    brief = json.loads((repo / "standalone_eval" / "sample_val_preds_metrics_raw.json").read_text())["brief"]
    report = score_predictions(repo / "standalone_eval" / "sample_val_preds.jsonl",
                               load_annotations("qvhighlights", repo / "data", "val"), thresholds=(0.5, 0.7)).to_dict()
    ours = {"MR-full-R1@0.5": "R1@0.5", "MR-full-R1@0.7": "R1@0.7", "MR-full-mAP": "mAP", "MR-full-mAP@0.5": "mAP@0.5",
            "MR-full-mAP@0.75": "mAP@0.75", "MR-short-mAP": "mAP-short", "MR-middle-mAP": "mAP-middle",
            "MR-long-mAP": "mAP-long"}
    for theirs, key in ours.items():
        assert abs(round(100 * report[key], 2) - brief[theirs]) <= 0.01 + 1e-9, (theirs, report[key], brief[theirs])
