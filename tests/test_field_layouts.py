"""The field's releases as their projects publish them (tiny files with the real names, keys,
shapes and dtypes, written here): each trains one tiny epoch and scores through the command line.

* QVHighlights (Moment-DETR): ``highlight_*_release.jsonl`` + SlowFast and CLIP ``.npz`` folders
  (key ``features``), joined and L2-normalized; the model records that and evaluate redoes it.
* TACoS (2D-TAN's JSON, frames + fps, ids ``s22-d55.avi``) with VSLNet-style ``s22-d55.npy``.
* ActivityNet Captions under 2D-TAN's names (train/val/test.json) with Lighthouse-style ``.npz``.
* ``.npz`` folders packed; features that miss annotated videos refused before training.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from cmagrounding.cli import main
from cmagrounding.errors import FeaturesMissingError
from cmagrounding.training.annotations import load_annotations
from cmagrounding.training.stores import JoinedStore, NpzFolderStore, align_to_store, open_feature_store

SMALL = ["--epochs", "1", "--batch-size", "8", "--threads", "1", "--set", "model.hidden=32",
         "--set", "model.lstm_hidden=16", "--set", "model.num_clips=16", "--set", "model.freeze_embeddings=false",
         "--set", "head.stage_epochs=0",  # one stage: these tests are about the files, not the head's schedule
         "--no-progress"]
WORDS = "man woman dog cat walks runs opens closes door car table kitchen".split()


def _sentence(rng: np.random.Generator) -> str:
    return " ".join(rng.choice(WORDS, 5))


def _train_and_score(tmp_path: Path, capsys, recipe: str, dataset: str, annotations: Path, features: str,
                     split: str, extra: list[str] = ()) -> dict:
    run = tmp_path / "run"
    assert main(["train", "--recipe", recipe, "--dataset", dataset, "--annotations", str(annotations),
                 "--features", features, "--output", str(run), *SMALL, *extra]) == 0
    assert "trained 1 epochs" in capsys.readouterr().out
    out = tmp_path / "eval.json"
    md = tmp_path / "md.jsonl"
    assert main(["evaluate", "--model", str(run / "model"), "--dataset", dataset, "--annotations", str(annotations),
                 "--split", split, "--features", features, "--json", str(out), "--save-moment-detr", str(md),
                 "--per-query", str(tmp_path / "pq.jsonl")]) == 0
    result = json.loads(out.read_text())
    # the written answers score the same again through --predictions (Moment-DETR's keys)
    again = tmp_path / "again.json"
    assert main(["evaluate", "--predictions", str(md), "--dataset", dataset, "--annotations", str(annotations),
                 "--split", split, "--json", str(again)]) == 0
    assert json.loads(again.read_text())["R1@0.5"] == pytest.approx(result["R1@0.5"], abs=1e-12)
    assert len((tmp_path / "pq.jsonl").read_text().splitlines()) == result["count"]
    capsys.readouterr()
    return result


def test_qvhighlights_with_joined_l2_normalized_npz_features(tmp_path, capsys):
    rng = np.random.default_rng(0)
    qvh, slowfast, clip = tmp_path / "qvh", tmp_path / "slowfast_features", tmp_path / "clip_features"
    for d in (qvh, slowfast, clip):
        d.mkdir()
    vids = [f"vid{i}_{60.0 * i}_{60.0 * i + 150}" for i in range(5)]
    for split, n, qid0 in (("train", 20, 0), ("val", 6, 100)):
        rows = []
        for i in range(n):
            s = int(rng.integers(0, 50)) * 2
            rows.append({"qid": qid0 + i, "query": _sentence(rng), "duration": 150, "vid": vids[i % 5],
                         "relevant_clip_ids": [s // 2], "saliency_scores": [[1, 2, 3]],
                         "relevant_windows": [[s, s + 20]] + ([[s + 30, s + 40]] if i % 2 else [])})
        (qvh / f"highlight_{split}_release.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    for v in vids:  # SlowFast (n, 2304) and CLIP (n, 512) in the release; narrower here, one row apart
        np.savez(slowfast / f"{v}.npz", features=rng.standard_normal((75, 12)).astype(np.float32))
        np.savez(clip / f"{v}.npz", features=rng.standard_normal((76, 4)).astype(np.float32))
    store = open_feature_store(f"{slowfast},{clip}", l2_normalize=True)
    assert isinstance(store, JoinedStore) and store.get(vids[0]).shape == (75, 16)
    assert np.linalg.norm(store.get(vids[0])[:, :12], axis=1) == pytest.approx(np.ones(75), abs=1e-4)
    result = _train_and_score(tmp_path, capsys, "qvhighlights-simple", "qvhighlights", qvh,
                              f"{slowfast},{clip}", "val", ["--l2-normalize"])
    config = json.loads((tmp_path / "run" / "model" / "config.json").read_text())
    assert config["video"]["extra"]["feature_join"] == {"sources": ["slowfast_features", "clip_features"],
                                                         "l2_normalize": True}
    assert config["model"]["confidence_head"] and config["windows"]["size_seconds"] > 0  # not a paper row: head on
    assert result["count"] == 6 and result["dataset"] == "qvhighlights"
    code = main(["evaluate", "--model", str(tmp_path / "run" / "model"), "--dataset", "qvhighlights", "--annotations",
                 str(qvh), "--split", "val", "--features", str(slowfast), "--json", str(tmp_path / "x.json")])
    err = capsys.readouterr().err
    assert code == 1 and "trained on 2 joined feature sources (slowfast_features, clip_features)" in err
    again = json.loads((tmp_path / "again.json").read_text())  # the written answers scored through --predictions
    assert result["mAP"] == pytest.approx(again["mAP"], abs=1e-12) and "mAP@0.75" in result


def test_tacos_from_2d_tan_json_with_features_named_without_avi(tmp_path, capsys):
    rng = np.random.default_rng(1)
    ann, feats = tmp_path / "tacos", tmp_path / "tacos_feats"
    ann.mkdir()
    feats.mkdir()
    videos = [f"s{20 + i}-d{50 + i}.avi" for i in range(4)]
    for split, per in (("train", 5), ("val", 2), ("test", 2)):
        data = {}
        for v in videos:
            fps, frames = 29.4, int(rng.integers(3000, 6000))
            stamps = [sorted(int(x) for x in rng.integers(0, frames, 2)) for _ in range(per)]
            data[v] = {"num_frames": frames, "fps": fps, "timestamps": stamps,
                       "sentences": [_sentence(rng) for _ in range(per)]}
        (ann / f"{split}.json").write_text(json.dumps(data))
    for v in videos:  # VSLNet's / Lighthouse's ids drop the .avi
        np.save(feats / f"{v[:-4]}.npy", rng.standard_normal((40, 8)).astype(np.float32))
    test = load_annotations("tacos", ann, "test")
    raw = json.loads((ann / "test.json").read_text())[videos[0]]
    a = test[0]
    assert a.video == videos[0] and a.duration == pytest.approx(raw["num_frames"] / 29.4)
    assert (a.start, a.end) == pytest.approx((raw["timestamps"][0][0] / 29.4, raw["timestamps"][0][1] / 29.4))
    aligned = align_to_store(test, open_feature_store(feats))
    assert aligned[0].video == videos[0][:-4] and len(aligned) == len(test)
    h5py = pytest.importorskip("h5py")
    with h5py.File(tmp_path / "tall_c3d_features.hdf5", "w") as f:  # 2D-TAN's: top-level ids with .avi
        for v in videos:
            f[v] = rng.standard_normal((40, 8)).astype(np.float32)
    assert align_to_store(test, open_feature_store(tmp_path / "tall_c3d_features.hdf5")) is test  # nothing renamed
    result = _train_and_score(tmp_path, capsys, "tacos-simple", "tacos", ann, str(feats), "test")
    assert result["count"] == 8


def test_activitynet_under_2d_tan_names_with_npz_features(tmp_path, capsys):
    rng = np.random.default_rng(2)
    ann, feats = tmp_path / "anet", tmp_path / "anet_npz"
    ann.mkdir()
    feats.mkdir()
    for name, ids in (("train.json", range(0, 4)), ("val.json", range(4, 6)), ("test.json", range(6, 8))):
        data = {}
        for i in ids:
            d = float(rng.uniform(60, 200))
            data[f"v_{i:011d}"] = {"duration": d, "timestamps": [sorted(rng.uniform(0, d, 2).tolist()) for _ in range(3)],
                                   "sentences": [_sentence(rng) for _ in range(3)]}
        (ann / name).write_text(json.dumps(data))
    for i in range(8):
        np.savez(feats / f"v_{i:011d}.npz", features=rng.standard_normal((30, 8)).astype(np.float32))
    test = load_annotations("activitynet-captions", ann, "test")  # the paper's test: val_1 + val_2
    assert len(test) == 12 and test.sources[0].endswith("val.json") and test.sources[1].endswith("test.json")
    assert isinstance(open_feature_store(feats), NpzFolderStore)
    result = _train_and_score(tmp_path, capsys, "own-data", "activitynet-captions", ann, str(feats), "test",
                              ["--val", "holdout"])
    assert result["count"] == 12
    # one window per query: evaluate's figures are evaluate_grounder's, to the last digit
    from cmagrounding import Grounder
    from cmagrounding.training.evaluation import evaluate_grounder, grounder_answers

    grounder = Grounder.from_pretrained(tmp_path / "run" / "model", device="cpu")
    store = open_feature_store(feats)
    before = evaluate_grounder(grounder, test, store).to_dict()
    after = grounder_answers(grounder, test, store)[0].to_dict()
    assert after == before and all(result[k] == v for k, v in before.items())


def test_npz_folders_pack_and_name_a_missing_key(tmp_path, capsys):
    from cmagrounding.errors import DatasetError

    feats = tmp_path / "npz"
    feats.mkdir()
    arrays = {f"v{i}": np.random.default_rng(i).standard_normal((6 + i, 4)).astype(np.float32) for i in range(3)}
    for v, a in arrays.items():
        np.savez(feats / f"{v}.npz", features=a)
    assert main(["pack-features", str(feats), "-o", str(tmp_path / "packed")]) == 0
    packed = open_feature_store(tmp_path / "packed")
    assert all(np.array_equal(packed.get(v), a) for v, a in arrays.items())
    np.savez(feats / "v9.npz", feats=arrays["v0"])
    with pytest.raises(DatasetError, match=r"v9.npz: holds \['feats'\], not 'features'"):
        NpzFolderStore(feats).get("v9")
    assert NpzFolderStore(feats, key="feats").get("v9").shape == (6, 4)


def test_training_on_features_that_miss_videos_is_refused_in_one_line(tmp_path, capsys):
    rng = np.random.default_rng(3)
    folder, feats = tmp_path / "own", tmp_path / "feats"
    folder.mkdir()
    feats.mkdir()
    for split in ("train", "val", "test"):
        rows = [{"video": f"v{i}", "duration": 30.0, "query": _sentence(rng), "start": 1.0, "end": 9.0}
                for i in range(12)]
        (folder / f"{split}.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    for i in range(5):
        np.save(feats / f"v{i}.npy", rng.standard_normal((10, 4)).astype(np.float32))
    with pytest.raises(FeaturesMissingError, match=r"no features for 7 of the 12 videos of train/train: 'v5', 'v6'"):
        align_to_store(load_annotations("jsonl", folder, "train"), open_feature_store(feats))
    code = main(["train", "--recipe", "own-data", "--annotations", str(folder), "--features", str(feats),
                 "--output", str(tmp_path / "run"), *SMALL])
    err = capsys.readouterr().err
    assert code == 1 and "no features for 7 of the 12 videos" in err and "(2 more)" in err and "Traceback" not in err


def test_a_data_error_from_a_dataloader_worker_is_one_line(tmp_path, capsys):
    """With --num-workers, torch re-raises a worker's DatasetError with the worker's traceback in
    its message; the command line prints the error's own line only."""
    rng = np.random.default_rng(4)
    folder, feats = tmp_path / "own", tmp_path / "feats"
    folder.mkdir()
    feats.mkdir()
    for split in ("train", "val", "test"):
        rows = [{"video": f"v{i}", "duration": 30.0, "query": _sentence(rng), "start": 1.0, "end": 9.0} for i in range(8)]
        (folder / f"{split}.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    for i in range(8):
        np.save(feats / f"v{i}.npy", rng.standard_normal((10, 4)).astype(np.float32))
    (feats / "v5.npy").write_bytes(b"not an array")  # present (the coverage check passes), unreadable
    code = main(["train", "--recipe", "own-data", "--annotations", str(folder), "--features", str(feats),
                 "--output", str(tmp_path / "run"), "--num-workers", "1", *SMALL])
    err = capsys.readouterr().err.strip()
    assert code == 1 and len(err.splitlines()) == 1 and "v5.npy" in err and "Traceback" not in err
