"""Scoring a predictions file with no model: hand-computed metrics, the matching rules, bad rows,
the CLI end to end, and real annotations from ``../shared/data``."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from cmagrounding.cli import main
from cmagrounding.errors import DatasetError, PredictionsError
from cmagrounding.spans import span_iou
from cmagrounding.training.annotations import Annotation, AnnotationSet, load_annotations, save_jsonl
from cmagrounding.training.predictions import load_predictions, normalize_query, score_predictions


def _anns() -> AnnotationSet:
    # Three queries on two videos; ground truth chosen so every IoU below is a simple fraction.
    return AnnotationSet("toy", "test", [
        Annotation("a", 10.0, "person opens the door.", 2.0, 6.0),
        Annotation("a", 10.0, "Person sits down.", 0.0, 10.0),
        Annotation("b", 20.0, "a dog runs", 10.0, 20.0),
    ])


def _write(path: Path, rows: list) -> Path:
    path.write_text("".join((r if isinstance(r, str) else json.dumps(r)) + "\n" for r in rows), encoding="utf-8")
    return path


def test_hand_computed_top1(tmp_path):
    # a/door: [3, 6] vs [2, 6] -> 3/4 = 0.75
    # a/sits: [0, 3] vs [0, 10] -> 0.3
    # b/dog: [12, 30] clipped to [12, 20] vs [10, 20] -> 8/10 = 0.8
    rows = [
        {"video": "a", "query": "person opens the door.", "pred": [3, 6], "extra": "ignored"},
        {"video": "a", "query": "  person   SITS down. ", "pred": [0.0, 3.0]},  # matched case/space-insensitively
        {"video": "b", "query": "a dog runs", "pred": [12, 30]},
    ]
    r = score_predictions(_write(tmp_path / "p.jsonl", rows), _anns())
    assert [q.iou for q in r.per_query] == pytest.approx([0.75, 0.3, 0.8])
    assert r["R1@0.1"] == 1.0 and r["R1@0.3"] == 1.0  # 0.3 >= 0.3 counts (LGI, Moment-DETR)
    assert r["R1@0.5"] == pytest.approx(2 / 3) and r["R1@0.7"] == pytest.approx(2 / 3)
    assert r["mIoU"] == pytest.approx((0.75 + 0.3 + 0.8) / 3)
    assert r.recall5 is None and "R5@0.5" not in r.to_dict()
    assert (r.annotations, r.scored, r.missing, r.extra, r.shared, r.clipped) == (3, 3, 0, 0, 0, 1)
    assert r.per_query[2].pred == (12.0, 20.0)
    assert "R1@0.5" in r.table() and "3 annotations: 3 scored, 0 missing" in r.table()


def test_hand_computed_top5():
    rows = [
        # first candidate 0.25 ([2,3] vs [2,6]), the third exact: R1 misses 0.5, R5 hits 0.7
        {"video": "a", "query": "person opens the door.", "pred": [[2, 3, 0.9], [7, 9, 0.8], [2, 6, 0.7]]},
        # a single span is a list of one: R5 = R1 (IoU 0.5)
        {"video": "a", "query": "person sits down.", "pred": [0, 5]},
        # the correct candidate is 6th: outside the top 5
        {"video": "b", "query": "a dog runs", "pred": [[0, 1]] * 5 + [[10, 20]]},
    ]
    r = score_predictions(rows, _anns())
    assert r["R1@0.5"] == pytest.approx(1 / 3)  # only sits (0.5 >= 0.5)
    assert r["R5@0.5"] == pytest.approx(2 / 3) and r["R5@0.7"] == pytest.approx(1 / 3)
    assert r["R5@0.1"] == pytest.approx(2 / 3)
    assert [q.iou_top5 for q in r.per_query] == pytest.approx([1.0, 0.5, 0.0])
    assert r["mIoU"] == pytest.approx((0.25 + 0.5 + 0.0) / 3)
    assert r.fewer_than_5 == 2  # door ranks 3, sits 1


def test_iou_is_the_library_convention():
    rows = [{"video": "a", "query": "person opens the door.", "pred": [4.0, 9.0]}]
    r = score_predictions(rows, _anns()[:1])
    assert r.per_query[0].iou == pytest.approx(span_iou((4, 9), (2, 6))) == pytest.approx(2 / 7)
    assert r.convention.startswith("IoU = intersection / (max(ends) - min(starts))")


def test_missing_rows_are_an_error_or_counted_as_zero():
    rows = [{"video": "a", "query": "person opens the door.", "pred": [2, 6]}]
    with pytest.raises(PredictionsError, match=r"no prediction for 2 of 3 annotations.*'b', 'a dog runs'"):
        score_predictions(rows, _anns())
    r = score_predictions(rows, _anns(), allow_missing=True)
    assert (r.missing, r.scored, r.annotations) == (2, 1, 3)
    assert r["R1@0.7"] == pytest.approx(1 / 3) and r["mIoU"] == pytest.approx(1 / 3)
    assert [q.pred for q in r.per_query] == [(2.0, 6.0), None, None]
    assert "2 missing (IoU 0)" in r.table()


def test_duplicate_rows_name_both_lines(tmp_path):
    rows = [
        {"video": "a", "query": "person opens the door.", "pred": [2, 6]},
        "",
        {"video": "a", "query": "Person opens  the door.", "pred": [1, 6]},
    ]
    path = _write(tmp_path / "dup.jsonl", rows)
    with pytest.raises(PredictionsError, match=r"dup.jsonl:3: duplicate prediction .* first given at .*dup.jsonl:1"):
        score_predictions(path, _anns(), allow_missing=True)


def test_extra_rows_are_counted_and_listed(tmp_path, caplog):
    rows = [
        {"video": "a", "query": "person opens the door.", "pred": [2, 6]},
        {"video": "a", "query": "person sits down.", "pred": [0, 10]},
        {"video": "b", "query": "a dog runs", "pred": [10, 20]},
        {"video": "zzz", "query": "a dog runs", "pred": [10, 20]},
        {"video": "b", "query": "a cat runs", "pred": [10, 20]},
    ]
    r = score_predictions(_write(tmp_path / "p.jsonl", rows), _anns())
    assert (r.rows, r.extra, r.scored, r["R1@0.7"]) == (5, 2, 3, 1.0)
    assert r.extra_rows[0].startswith(f"{tmp_path / 'p.jsonl'}:4") and "'zzz'" in r.extra_rows[0]
    assert "2 rows match no annotation" in caplog.text


def test_no_matching_row_at_all_is_an_error():
    rows = [{"video": "GGSY1Qvo990", "query": "a dog runs", "pred": [1, 2]}]
    with pytest.raises(PredictionsError, match="none of its 1 rows matches.*first annotation: video 'a'"):
        score_predictions(rows, _anns(), allow_missing=True)


def test_shared_annotation_key_is_scored_once_per_annotation():
    # ActivityNet has the same sentence twice in a video with different truth: one row answers both.
    anns = AnnotationSet("toy", "test", [
        Annotation("v", 10.0, "He jumps.", 0.0, 2.0),
        Annotation("v", 10.0, "he jumps.", 6.0, 8.0),
    ])
    r = score_predictions([{"video": "v", "query": "He jumps.", "pred": [0, 2]}], anns)
    assert (r.annotations, r.scored, r.shared) == (2, 2, 2)
    assert [q.iou for q in r.per_query] == [1.0, 0.0] and r["R1@0.5"] == 0.5


@pytest.mark.parametrize("line, message", [
    ("not json", r":2: not JSON"),
    ("[1, 2]", r":2: expected a JSON object, got list"),
    ('{"video": "a", "query": "q"}', r":2: missing keys \['pred'\]"),
    ('{"video": null, "query": "q", "pred": [1, 2]}', r":2: 'video' must be a non-empty string"),
    ('{"video": "a", "query": "  ", "pred": [1, 2]}', r":2: 'query' must be a non-empty string"),
    ('{"video": "a", "query": 3, "pred": [1, 2]}', r":2: 'query' must be a non-empty string"),
    ('{"video": "a", "query": "q", "pred": []}', r":2: 'pred' must be"),
    ('{"video": "a", "query": "q", "pred": "1-2"}', r":2: 'pred' must be"),
    ('{"video": "a", "query": "q", "pred": [1, 2, 3]}', r":2: pred must be \[start, end\]"),
    ('{"video": "a", "query": "q", "pred": ["1", 2]}', r":2: pred start must be a number"),
    ('{"video": "a", "query": "q", "pred": [true, 2]}', r":2: pred start must be a number"),
    ('{"video": "a", "query": "q", "pred": [NaN, 2]}', r":2: pred start is nan"),
    ('{"video": "a", "query": "q", "pred": [1, Infinity]}', r":2: pred end is inf"),
    ('{"video": "a", "query": "q", "pred": [5, 2]}', r":2: pred starts after it ends \(5.0 > 2.0\)"),
    ('{"video": "a", "query": "q", "pred": [[1, 2, 0.9], [3, 2, 0.5]]}', r":2: pred\[1\] starts after it ends"),
    ('{"video": "a", "query": "q", "pred": [[1, 2, 0.1], [3, 4, 0.5]]}', r":2: candidates must be best first"),
    ('{"video": "a", "query": "q", "pred": [[1, 2, 0.9], [3, 4]]}', r":2: give a score for every candidate"),
    ('{"video": "a", "query": "q", "pred": [[1, 2, NaN]]}', r":2: pred\[0\] score must be a finite number"),
    ('{"video": "a", "query": "q", "pred": [[1, 2, 0.5, 1]]}', r":2: pred\[0\] must be \[start, end\] or"),
])
def test_bad_rows_name_file_and_line(tmp_path, line, message):
    path = tmp_path / "bad.jsonl"
    path.write_text('{"video": "a", "query": "person sits down.", "pred": [0, 1]}\n' + line + "\n", encoding="utf-8")
    with pytest.raises(PredictionsError, match="bad.jsonl" + message) as info:
        load_predictions(path)
    assert isinstance(info.value, DatasetError)  # one family with the annotation loaders' errors


def test_missing_and_empty_files(tmp_path):
    with pytest.raises(PredictionsError, match="predictions file not found"):
        load_predictions(tmp_path / "nope.jsonl")
    (tmp_path / "empty.jsonl").write_text("\n\n", encoding="utf-8")
    with pytest.raises(PredictionsError, match="no prediction rows"):
        load_predictions(tmp_path / "empty.jsonl")


def test_normalize_query():
    assert normalize_query("  Person\tOPENS  the door. ") == "person opens the door."
    assert normalize_query("person opens the door") != normalize_query("person opens the door.")


# --- the CLI -----------------------------------------------------------------------------------


def test_cli_end_to_end_on_jsonl(tmp_path, capsys):
    ann = tmp_path / "test.jsonl"
    save_jsonl(_anns(), ann)
    preds = _write(tmp_path / "preds.jsonl", [
        {"video": "a", "query": "person opens the door.", "pred": [[3, 6, 0.9], [2, 6, 0.1]]},
        {"video": "a", "query": "person sits down.", "pred": [[0, 3, 1.0]]},
        {"video": "b", "query": "a dog runs", "pred": [[12, 30, 0.5]]},
        {"video": "c", "query": "extra", "pred": [[1, 2, 0.5]]},
    ])
    out = tmp_path / "result.json"
    per_query = tmp_path / "per_query.jsonl"
    code = main(["evaluate", "--predictions", str(preds), "--dataset", "jsonl", "--annotations", str(ann),
                 "--json", str(out), "--per-query", str(per_query)])
    assert code == 0
    printed = capsys.readouterr().out
    assert "R1@0.5" in printed and "R5@0.7" in printed and "1 extra" in printed
    result = json.loads(out.read_text())
    # top-5 IoUs: door 1.0 (second candidate exact), sits 0.3, dog 0.8
    assert result["R1@0.5"] == pytest.approx(2 / 3) and result["R5@0.7"] == pytest.approx(2 / 3)
    assert result["R1@0.7"] == pytest.approx(2 / 3) and result["R5@0.3"] == 1.0
    assert result["mIoU"] == pytest.approx((0.75 + 0.3 + 0.8) / 3)
    assert (result["count"], result["extra"], result["missing"]) == (3, 1, 0)
    assert result["predictions"] == str(preds) and result["convention"].startswith("IoU =")
    lines = [json.loads(x) for x in per_query.read_text().splitlines()]
    assert [x["iou"] for x in lines] == pytest.approx([0.75, 0.3, 0.8])
    assert lines[0]["row"].endswith("preds.jsonl:1")


def test_cli_missing_rows_exit_code_and_allow_missing(tmp_path, capsys):
    ann = tmp_path / "test.jsonl"
    save_jsonl(_anns(), ann)
    preds = _write(tmp_path / "preds.jsonl", [{"video": "a", "query": "person opens the door.", "pred": [2, 6]}])
    args = ["evaluate", "--predictions", str(preds), "--dataset", "jsonl", "--annotations", str(ann),
            "--json", str(tmp_path / "r.json")]
    assert main(args) == 1
    assert "no prediction for 2 of 3 annotations" in capsys.readouterr().err
    assert main(args + ["--allow-missing"]) == 0
    result = json.loads((tmp_path / "r.json").read_text())
    assert result["missing"] == 2 and result["R1@0.7"] == pytest.approx(1 / 3)


def test_cli_bad_row_and_argument_errors(tmp_path, capsys):
    ann = tmp_path / "test.jsonl"
    save_jsonl(_anns(), ann)
    preds = _write(tmp_path / "preds.jsonl", ['{"video": "a", "query": "q", "pred": [3, 1]}'])
    assert main(["evaluate", "--predictions", str(preds), "--dataset", "jsonl", "--annotations", str(ann)]) == 1
    assert "preds.jsonl:1: pred starts after it ends" in capsys.readouterr().err
    with pytest.raises(SystemExit):  # neither --model nor --predictions
        main(["evaluate", "--dataset", "jsonl", "--annotations", str(ann)])
    with pytest.raises(SystemExit):  # both
        main(["evaluate", "--model", "m", "--predictions", str(preds), "--dataset", "jsonl", "--annotations", str(ann)])
    assert main(["evaluate", "--predictions", str(preds), "--dataset", "synthetic"]) == 2
    assert "--predictions needs" in capsys.readouterr().err


# --- real annotations ------------------------------------------------------------------------------


def _folder(shared_data: Path, name: str, files: tuple[str, ...]) -> Path:
    folder = shared_data / name
    absent = [f for f in files if not (folder / f).is_file()]
    if absent:
        pytest.skip(f"{folder}: {absent} not found")
    return folder


def test_real_charades_sta_test_split(shared_data, tmp_path):
    """All 3,720 Charades-STA test queries: ground truth as predictions scores 1 everywhere; a fixed
    span per video scores exactly what compute_metrics gives on the same spans."""
    folder = _folder(shared_data, "charades_sta", ("charades_sta_test.txt", "Charades_v1_test.csv"))
    anns = load_annotations("charades-sta", folder, "test")
    perfect = [{"video": v, "query": q, "pred": [s, e]} for v, q, s, e in
               dict.fromkeys((a.video, a.query, a.start, a.end) for a in anns)]
    r = score_predictions(perfect, anns)
    assert (r.annotations, r.scored, r.missing, r.extra) == (3720, 3720, 0, 0)
    assert r["R1@0.7"] == 1.0 and r["mIoU"] == 1.0

    from cmagrounding.training.metrics import compute_metrics
    import numpy as np

    path = _write(tmp_path / "half.jsonl", [{"video": a.video, "query": a.query.upper(), "pred": [0, a.duration / 2]}
                                            for a in anns])
    r = score_predictions(path, anns)
    expected = compute_metrics(np.array([[0, a.duration / 2] for a in anns]),
                               np.array([[a.start, a.end] for a in anns]), np.array([a.duration for a in anns]))
    assert r["mIoU"] == pytest.approx(expected.miou) and r["R1@0.5"] == pytest.approx(expected.recall[0.5])
    assert 0 < r["mIoU"] < 1


def test_real_activitynet_test_split_shared_keys(shared_data):
    """The merged test split has the same sentence twice in a video (with other truth): one row
    answers both, and each still counts as a query."""
    from collections import Counter

    folder = _folder(shared_data, "activitynet_captions", ("val_1.json", "val_2.json"))
    anns = load_annotations("activitynet-captions", folder, "test")
    keys = Counter((a.video, normalize_query(a.query)) for a in anns)
    rows = {}
    for a in anns:  # the first annotation's truth for each key
        rows.setdefault((a.video, normalize_query(a.query)), {"video": a.video, "query": a.query, "pred": [a.start, a.end]})
    r = score_predictions(list(rows.values()), anns)
    assert (r.annotations, r.scored, r.missing, r.extra) == (34536, 34536, 0, 0)
    assert r.rows == len(keys) < 34536
    assert r.shared == sum(c for c in keys.values() if c > 1) == 24  # 12 keys, docs/evaluation.md
    wrong = [q for q in r.per_query if q.iou < 1.0]  # later annotations of a shared key only
    assert wrong and all(keys[(q.video, normalize_query(q.query))] > 1 for q in wrong)
    assert r["mIoU"] == pytest.approx(sum(q.iou for q in r.per_query) / 34536)
