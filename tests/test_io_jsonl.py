"""One JSON Lines reader (``_io.jsonl_rows``) for annotations and predictions: the same bad line gives
each caller its own error class, naming the file and the line."""

from __future__ import annotations

import pytest

from cmagrounding._io import jsonl_rows
from cmagrounding.errors import DatasetError, PredictionsError
from cmagrounding.training.annotations import load_jsonl
from cmagrounding.training.predictions import load_predictions

GOOD_ANNOTATION = '{"video": "a", "duration": 10, "query": "q", "start": 1, "end": 2}'


def test_rows_skip_blank_lines_and_say_where(tmp_path):
    path = tmp_path / "rows.jsonl"
    path.write_text('{"x": 1}\n\n   \n[2]\n', encoding="utf-8")
    assert list(jsonl_rows(path, DatasetError)) == [(f"{path}:1", {"x": 1}), (f"{path}:4", [2])]


@pytest.mark.parametrize("reader, error", [(load_jsonl, DatasetError), (load_predictions, PredictionsError)])
def test_the_same_bad_line_in_both_readers(tmp_path, reader, error):
    path = tmp_path / "bad.jsonl"
    path.write_text("\n{not json\n", encoding="utf-8")  # line 1 blank, skipped
    with pytest.raises(error, match=r"bad.jsonl:2: not JSON \(.* at column 2\)"):
        reader(path)
    path.write_bytes(b"\xff\xfe{}\n")
    with pytest.raises(error, match=r"bad.jsonl:1: not UTF-8 text"):
        reader(path)


def test_annotation_rows_must_be_objects(tmp_path):
    path = tmp_path / "anns.jsonl"
    path.write_text(GOOD_ANNOTATION + "\n3\n", encoding="utf-8")  # a number: before, a bare TypeError
    with pytest.raises(DatasetError, match=r"anns.jsonl:2: expected a JSON object, got int"):
        load_jsonl(path)
    with pytest.raises(DatasetError, match="annotation file not found"):
        load_jsonl(tmp_path / "nope.jsonl")
