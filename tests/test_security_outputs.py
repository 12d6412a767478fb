"""Issue 22, output side: no output replaces an input, outputs are checked before any work, and a
failed write keeps the answers. Commands run in-process through ``cli.main`` (same code as the
console script)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from cmagrounding.cli import main
from cmagrounding.training.annotations import Annotation, AnnotationSet, save_jsonl
from grounder_fixtures import features, tiny_grounder


@pytest.fixture(scope="module")
def model_and_feats(tmp_path_factory):
    folder = tmp_path_factory.mktemp("out")
    tiny_grounder().save_pretrained(folder / "model")
    feats = folder / "v.safetensors"
    features(n=12, duration=6.0).save(feats)
    return folder / "model", feats


def _snapshot(*paths: Path) -> dict[Path, bytes]:
    return {p: p.read_bytes() for p in paths}


@pytest.mark.parametrize("option", ["--html", "--save-features", "--plot"])
def test_localize_refuses_an_output_that_is_the_video(model_and_feats, capsys, option):
    model, feats = model_and_feats
    before = _snapshot(feats)
    code = main(["localize", str(feats), "a person sits", "--model", str(model), option, str(feats)])
    err = capsys.readouterr().err
    assert code == 1 and f"{option} {str(feats)!r} is the video" in err
    assert _snapshot(feats) == before


def test_localize_refuses_an_output_that_is_a_model_file_or_another_output(model_and_feats, tmp_path, capsys):
    model, feats = model_and_feats
    before = _snapshot(model / "config.json")
    assert main(["localize", str(feats), "a", "--model", str(model), "--html", str(model / "config.json")]) == 1
    assert "is the model file" in capsys.readouterr().err
    assert _snapshot(model / "config.json") == before
    page = tmp_path / "x.html"
    assert main(["localize", str(feats), "a", "--model", str(model), "--html", str(page), "--plot", str(page)]) == 1
    assert "--html and --plot name the same file" in capsys.readouterr().err


def test_save_features_failure_keeps_the_answers(model_and_feats, tmp_path, capsys, monkeypatch):
    """A read-only folder (simulated: this suite may run as root, where chmod does not stop writes)."""
    from cmagrounding.grounder import Grounder
    from cmagrounding.video.features import VideoFeatures

    model, _ = model_and_feats
    video = tmp_path / "clip.mp4"
    video.write_bytes(b"not decoded: encode_video is replaced below")
    monkeypatch.setattr(Grounder, "encode_video", lambda self, v: features(n=12, duration=6.0))

    def refuse(self, path):
        raise PermissionError(13, "Permission denied", str(path))

    monkeypatch.setattr(VideoFeatures, "save", refuse)
    code = main(["localize", str(video), "a person sits", "--model", str(model), "--save-features", str(tmp_path / "f")])
    out, err = capsys.readouterr()
    assert code == 1
    assert "a person sits" in out and " s - " in out  # the answer is printed
    assert "save-features not written" in err and "Permission denied" in err


def test_output_under_a_file_is_refused_before_any_work(model_and_feats, tmp_path, capsys):
    model, feats = model_and_feats
    blocker = tmp_path / "file"
    blocker.write_text("x")
    assert main(["localize", str(feats), "a", "--model", str(model), "--save-features", str(blocker / "f")]) == 1
    assert "is a file" in capsys.readouterr().err


def _anns() -> AnnotationSet:
    return AnnotationSet("toy", "test", [Annotation("a", 10.0, "person opens the door", 2.0, 6.0)])


@pytest.mark.parametrize("option", ["--json", "--per-query"])
def test_evaluate_refuses_to_write_over_the_predictions(tmp_path, capsys, option):
    ann = tmp_path / "test.jsonl"
    save_jsonl(_anns(), ann)
    preds = tmp_path / "p.jsonl"
    preds.write_text(json.dumps({"video": "a", "query": "person opens the door", "pred": [2, 6]}) + "\n")
    before = _snapshot(preds, ann)
    code = main(["evaluate", "--predictions", str(preds), "--dataset", "jsonl", "--annotations", str(ann),
                 option, str(preds)])
    assert code == 1 and "is the predictions file" in capsys.readouterr().err
    assert main(["evaluate", "--predictions", str(preds), "--dataset", "jsonl", "--annotations", str(ann),
                 option, str(ann)]) == 1
    assert "is the annotations" in capsys.readouterr().err
    assert _snapshot(preds, ann) == before


def test_evaluate_rerun_may_replace_its_own_output_beside_the_annotations(tmp_path, capsys):
    """Only the annotation files read are inputs: a --json written into their folder by a first run
    is no input of the second, while the split's file there still is."""
    save_jsonl(_anns(), tmp_path / "test.jsonl")
    preds = tmp_path / "p.jsonl"
    preds.write_text(json.dumps({"video": "a", "query": "person opens the door", "pred": [2, 6]}) + "\n")
    args = ["evaluate", "--predictions", str(preds), "--dataset", "jsonl", "--annotations", str(tmp_path),
            "--split", "test", "--json"]
    assert main(args + [str(tmp_path / "out.json")]) == 0
    assert main(args + [str(tmp_path / "out.json")]) == 0
    assert json.loads((tmp_path / "out.json").read_text())["R1@0.5"] == 1.0
    capsys.readouterr()
    assert main(args + [str(tmp_path / "test.jsonl")]) == 1
    assert "is the annotations" in capsys.readouterr().err


def test_evaluate_model_rerun_may_replace_its_outputs_beside_its_inputs(tmp_path, capsys):
    """evaluate --model: the inputs are the files read (the split's annotations, the model's files,
    the annotated videos' features), not every file of their folders: outputs that a first run wrote
    into those folders do not stop a rerun, while each file read is still refused."""
    import numpy as np

    tiny_grounder().save_pretrained(tmp_path / "model")
    (tmp_path / "feats").mkdir()
    np.save(tmp_path / "feats" / "a.npy", features(n=12, duration=10.0).features)
    save_jsonl(_anns(), tmp_path / "test.jsonl")
    base = ["evaluate", "--model", str(tmp_path / "model"), "--dataset", "jsonl", "--annotations", str(tmp_path),
            "--features", str(tmp_path / "feats")]
    outs = ["--json", str(tmp_path / "feats" / "out.json"), "--per-query", str(tmp_path / "q.jsonl"),
            "--save-predictions", str(tmp_path / "model" / "p.jsonl")]
    assert main(base + outs) == 0
    first = (tmp_path / "model" / "p.jsonl").read_text()
    assert main(base + outs) == 0  # was refused: out.json counted as one of the features
    assert (tmp_path / "model" / "p.jsonl").read_text() == first
    capsys.readouterr()
    inputs = {"annotations": tmp_path / "test.jsonl", "features": tmp_path / "feats" / "a.npy",
              "model file": tmp_path / "model" / "config.json"}
    before = _snapshot(*inputs.values())
    for what, path in inputs.items():
        assert main(base + ["--json", str(path)]) == 1
        assert f"is the {what}" in capsys.readouterr().err
    assert _snapshot(*inputs.values()) == before


def test_evaluate_write_failure_still_prints_the_scores(tmp_path, capsys):
    ann = tmp_path / "test.jsonl"
    save_jsonl(_anns(), ann)
    preds = tmp_path / "p.jsonl"
    preds.write_text(json.dumps({"video": "a", "query": "person opens the door", "pred": [2, 6]}) + "\n")
    blocker = tmp_path / "file"
    blocker.write_text("x")
    # the folder check passes (tmp_path is writable); the write itself fails: results are printed first
    code = main(["evaluate", "--predictions", str(preds), "--dataset", "jsonl", "--annotations", str(ann),
                 "--json", str(tmp_path / "out.json"), "--per-query", str(tmp_path / "out.json" / "q.jsonl")])
    out, err = capsys.readouterr()
    assert code == 1 and "out.json" in err
    assert "R1@0.5" in out


@pytest.mark.parametrize("command", ["train", "extract-features"])
def test_run_outputs_that_are_existing_files_are_refused(tmp_path, capsys, command):
    existing = tmp_path / "existing"
    existing.write_text("keep me")
    args = (["train", "--recipe", "synthetic", "--output", str(existing)] if command == "train"
            else ["extract-features", str(tmp_path / "nope.mp4"), "-o", str(existing)])
    code = main(args)
    assert code in (1, 2)
    assert f"{str(existing)!r} is an existing file, not a folder" in capsys.readouterr().err
    assert existing.read_text() == "keep me"
    under = existing / "run"  # cannot be created: its parent is a file
    args[args.index(str(existing))] = str(under)
    assert main(args) in (1, 2)
    assert "is a file" in capsys.readouterr().err


def test_extract_output_that_is_an_input_video_is_refused(tmp_path, capsys):
    video = tmp_path / "v.mp4"
    video.write_bytes(b"\x00" * 64)
    assert main(["extract-features", str(video), "-o", str(video)]) == 2
    assert video.read_bytes() == b"\x00" * 64
    capsys.readouterr()


def test_pack_output_that_is_the_source_file_is_refused(tmp_path, capsys):
    h5 = tmp_path / "feats.h5"
    h5.write_bytes(b"\x89HDF\r\n\x1a\n")
    assert main(["pack-features", str(h5), "-o", str(h5)]) == 1
    assert f"--output {str(h5)!r} is the source" in capsys.readouterr().err
    assert h5.read_bytes() == b"\x89HDF\r\n\x1a\n"


def test_stale_temporaries_of_killed_writers_are_removed(tmp_path):
    """kill -9 skips atomic_path's cleanup; the next extraction into the folder removes what is left,
    once old enough that no running writer (another shard) can still own it."""
    import os
    import time

    from cmagrounding._io import atomic_path, remove_stale_temporaries

    with atomic_path(tmp_path / "v.npy") as tmp:  # the name a writer uses
        stale = tmp.with_name(tmp.name.replace(".v.", ".w."))
    stale.write_bytes(b"half a file")
    os.utime(stale, (time.time() - 7200, time.time() - 7200))
    fresh = tmp_path / ".x.abc.tmp.npy"
    fresh.write_bytes(b"being written")
    keep = tmp_path / "v.npy"
    keep.write_bytes(b"a finished file")
    assert remove_stale_temporaries(tmp_path) == [stale]
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted([fresh.name, keep.name])
