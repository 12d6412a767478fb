"""``cmagrounding extract-features``: outputs, index, resume, broken videos, sharding."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from cmagrounding.cli import main
from tools.video import synthetic

TINY = ["--extractor", "i3d", "--fps", "10", "--clip-len", "8", "--stride", "4", "--resize", "32", "--crop", "32",
        "--precision", "fp32", "--device", "cpu", "--no-progress"]  # fmt: skip


pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture(scope="module")
def video_dir(tmp_path_factory):
    d = tmp_path_factory.mktemp("videos")
    synthetic.coloured_interval_video(d / "a.mp4", 1.0, 2.0, duration=3.0, fps=25.0, size=(48, 32))
    (d / "sub").mkdir()
    synthetic.coloured_interval_video(d / "sub" / "b.mkv", 0.5, 1.0, duration=2.0, fps=30.0, size=(32, 32))
    synthetic.coloured_interval_video(d / "sub" / "a.mp4", 0.0, 1.0, duration=1.6, fps=25.0, size=(32, 32))  # same stem
    (d / "broken.mp4").write_text("not a video at all " * 20)
    synthetic.write_audio_only(d / "voice.m4v")
    return d


def test_folder_extraction_index_and_failures(video_dir, tmp_path, capsys):
    out = tmp_path / "feats"
    assert main(["extract-features", str(video_dir), "-o", str(out), *TINY]) == 0
    text = capsys.readouterr().out
    assert "3 extracted, 0 already done, 2 failed" in text and "broken.mp4" in text and "voice.m4v" in text
    index = json.loads((out / "index.json").read_text())
    assert set(index["failed"]) == {"broken", "voice"}
    assert index["failed"]["voice"]["type"] == "VideoNoStreamError"
    assert index["settings"]["extractor"] == "i3d" and index["settings"]["fps"] == 10.0
    assert len(index["videos"]) == 3 and "b" in index["videos"]
    a_names = [n for n in index["videos"] if n.startswith("a-")]  # the two a.mp4 are told apart
    assert len(a_names) == 2
    entry = index["videos"]["b"]
    feats = np.load(out / entry["file"])
    side = json.loads((out / "b.json").read_text())
    assert feats.shape == (entry["num_features"], 1024) == (len(side["times"]), 1024)
    assert entry["duration"] == pytest.approx(2.0, abs=0.04)
    assert side["times"][0] == pytest.approx([0.0, 0.8])
    # resume: nothing is extracted twice, failures are retried
    assert main(["extract-features", str(video_dir), "-o", str(out), *TINY]) == 0
    assert "0 extracted, 3 already done, 2 failed" in capsys.readouterr().out
    # --strict turns failures into the exit status
    assert main(["extract-features", str(video_dir), "-o", str(out), "--strict", *TINY]) == 1
    # other settings into the same folder are refused
    assert main(["extract-features", str(video_dir), "-o", str(out), *TINY, "--stride", "8"]) == 2  # last wins
    assert "other settings" in capsys.readouterr().err


def test_sharding_and_lists(video_dir, tmp_path, capsys, monkeypatch):
    listing = tmp_path / "videos.txt"
    listing.write_text(f"# two videos and a missing one\n{video_dir / 'a.mp4'}\n{video_dir / 'sub' / 'b.mkv'}\n/nope/missing.mp4\n")
    out = tmp_path / "feats"
    monkeypatch.setenv("WORLD_SIZE", "2")
    for rank in (0, 1):
        monkeypatch.setenv("RANK", str(rank))
        assert main(["extract-features", str(listing), "-o", str(out), "--format", "safetensors", *TINY]) == 0
    text = capsys.readouterr().out
    # sorted paths [/nope/missing.mp4, .../a.mp4, .../sub/b.mkv]: rank 0 takes the 1st and 3rd
    assert "rank 0/2: 1 extracted, 0 already done, 1 failed" in text and "rank 1/2: 1 extracted, 0 already done, 0 failed" in text
    index = json.loads((out / "index.json").read_text())
    assert sorted(index["videos"]) == ["a", "b"] and list(index["failed"]) == ["missing"]
    from cmagrounding.video.features import VideoFeatures

    feats = VideoFeatures.load(out / "a.safetensors")
    assert feats.features.shape[1] == 1024 and feats.duration == pytest.approx(3.0, abs=0.04)
    assert main(["extract-features", str(listing), "-o", str(out), "--rank", "3", "--world-size", "2", *TINY]) == 2
