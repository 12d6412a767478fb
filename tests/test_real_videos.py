"""Three real camera videos end to end: decoding, both sampling schemes, the Kinetics-400 I3D
extractor, the facade with the shipped demo model (answers, plot, HTML report), and scoring the
facade's answers to the ActivityNet videos' real queries with ``evaluate --predictions``.

The videos live in ``../shared/data/videos`` (``CMAGROUNDING_SHARED_DATA``): two ActivityNet
Captions videos with real ground truth and a Charades video. Everything skips when they are
absent. The demo model was trained on generated shapes, so its answers here are only checked to be
well formed (inside the video), never for accuracy; the I3D extractor is checked on what it was
trained for (Kinetics-400 classes). Each video is extracted once per module, on one torch thread.
"""

from __future__ import annotations

import contextlib
import io
import json
import math
import warnings
from pathlib import Path

import numpy as np
import pytest

from cmagrounding.spans import temporal_iou

# name -> (the ActivityNet id or None, duration the shared data's README gives)
VIDEOS = {
    "v_GGSY1Qvo990": ("v_GGSY1Qvo990", 18.16),
    "v_ZNVhz7ctTq0": ("v_ZNVhz7ctTq0", 14.05),
    "charades_sample": (None, 30.7),
}
ANET = [name for name, (vid, _) in VIDEOS.items() if vid]
QUERY_SPLITS = ("val_1", "val_2", "train")
# Kinetics-400 classes the real I3D must rank in its top 5 for each ActivityNet video
# (a woman lifting a barbell; a dog walking ahead of a child on a scooter).
KINETICS = {
    "v_GGSY1Qvo990": {"clean and jerk", "snatch weight lifting", "deadlifting", "squat"},
    "v_ZNVhz7ctTq0": {"walking the dog", "riding scooter"},
}
CHARADES_QUERIES = ["person opens the door.", "a person is sitting on a chair."]

@pytest.fixture(scope="module")
def videos(shared_data) -> dict[str, Path]:
    folder = shared_data / "videos"
    paths = {name: folder / f"{name}.mp4" for name in VIDEOS}
    absent = [str(p) for p in paths.values() if not p.is_file()]
    if absent:
        pytest.skip(f"real videos not found: {absent}")
    return paths


@pytest.fixture(scope="module")
def raw_truth(shared_data) -> dict[str, list[dict]]:
    """The ActivityNet videos' queries straight from the original JSON files (not via the loader)."""
    files = [shared_data / "activitynet_captions" / f"{split}.json" for split in QUERY_SPLITS]
    if not all(f.is_file() for f in files):
        pytest.skip(f"ActivityNet Captions files not found: {[str(f) for f in files if not f.is_file()]}")
    out: dict[str, list[dict]] = {name: [] for name in ANET}
    for split, file in zip(QUERY_SPLITS, files):
        data = json.loads(file.read_text(encoding="utf-8"))
        for name in ANET:
            item = data.get(VIDEOS[name][0])
            if item is None:
                continue
            for (s, e), sentence in zip(item["timestamps"], item["sentences"]):
                out[name].append({"split": split, "query": sentence.strip(), "start": s, "end": e,
                                  "duration": item["duration"]})
    return out


@pytest.fixture(scope="module")
def grounder(one_torch_thread):
    from cmagrounding.demo import DEMO_MODEL_DIR
    from cmagrounding.grounder import Grounder

    return Grounder.from_pretrained(DEMO_MODEL_DIR, device="cpu")


@pytest.fixture(scope="module")
def infos(videos):
    from cmagrounding.video.decode import probe

    return {name: probe(p) for name, p in videos.items()}


@pytest.fixture(scope="module")
def fixed_features(grounder, videos):
    """The demo model's own settings: ``fixed_rate``, 8 fps, windows of 8 frames, 64 px."""
    assert grounder.video_config.scheme == "fixed_rate"
    return {name: grounder.encode_video(p) for name, p in videos.items()}


@pytest.fixture(scope="module")
def uniform_features(grounder, videos):
    """The paper's ``uniform_clips`` with the demo model's other settings (12 clips)."""
    from cmagrounding.video.encoder import VideoEncoder

    encoder = VideoEncoder(grounder.video_config.replace(scheme="uniform_clips", num_clips=12), device="cpu")
    return {name: encoder.encode(p) for name, p in videos.items()}


def _queries(name: str, raw_truth) -> list[str]:
    return [q["query"] for q in raw_truth[name]] if name in raw_truth else CHARADES_QUERIES


@pytest.fixture(scope="module")
def answers(grounder, fixed_features, raw_truth):
    """The facade's answers (from the extracted features) to each video's queries."""
    with pytest.warns(UserWarning):  # QueryWarning: real sentences are mostly unknown to the demo vocabulary
        return {name: grounder.localize(feats, _queries(name, raw_truth)) for name, feats in fixed_features.items()}


# --- decoding --------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", list(VIDEOS))
def test_probe_agrees_with_the_container(name, videos, infos, raw_truth):
    import av

    info = infos[name]
    with av.open(str(videos[name])) as container:
        stream = container.streams.video[0]
        stream_seconds = float(stream.duration * stream.time_base)
        container_seconds = container.duration / 1_000_000
        frames, rate = stream.frames, float(stream.average_rate)
    # the video stream's own duration is the timeline (their audio tracks run a little longer)
    assert info.duration_source == "stream" and info.duration == pytest.approx(stream_seconds, abs=1e-9)
    assert info.container_duration == pytest.approx(container_seconds, abs=1e-6)
    assert info.num_frames == frames and info.fps == pytest.approx(rate)
    assert abs(frames / rate - info.duration) <= 1.01 / rate  # frame count and duration agree to a frame
    assert 0 <= container_seconds - info.duration < 0.15
    readme_seconds = VIDEOS[name][1]
    assert container_seconds == pytest.approx(readme_seconds, abs=0.03)
    if name in ANET:  # ActivityNet's durations are the container's, to 0.01 s
        assert {q["duration"] for q in raw_truth[name]} == {readme_seconds}
        assert round(container_seconds, 2) == readme_seconds


@pytest.mark.parametrize("name", list(VIDEOS))
def test_decoding_native_and_resampled(name, videos, infos, one_torch_thread):
    from cmagrounding.video.decode import iter_frames, num_output_frames

    info = infos[name]
    native = [(f.index, f.time, f.image.shape) for f in iter_frames(videos[name], None, 32)]
    assert len(native) == info.num_frames
    times = np.array([t for _, t, _ in native])
    assert times[0] == pytest.approx(0.0, abs=1e-6) and np.all(np.diff(times) > 0)
    assert times[-1] < info.duration and info.duration - times[-1] <= 1.5 / info.fps
    assert np.allclose(np.diff(times), 1 / info.fps, atol=2e-3)  # constant frame rate videos
    short = min(s[0] for _, _, s in native), min(s[1] for _, _, s in native)
    assert min(short) == 32  # short side resized, aspect kept
    at8 = [(f.index, f.time) for f in iter_frames(videos[name], 8.0, 32)]
    assert len(at8) == num_output_frames(info, 8.0) == math.ceil(info.duration * 8 - 1e-6)
    assert [t for _, t in at8] == pytest.approx([k / 8 for k in range(len(at8))])


# --- sampling schemes and the extractor ------------------------------------------------------------


@pytest.mark.parametrize("name", list(VIDEOS))
def test_fixed_rate_clip_times(name, grounder, infos, fixed_features):
    from cmagrounding.video.decode import num_output_frames
    from cmagrounding.video.sampling import fixed_rate_clip_starts

    cfg, info, feats = grounder.video_config, infos[name], fixed_features[name]
    n = num_output_frames(info, cfg.fps)
    starts = fixed_rate_clip_starts(n, cfg.clip_len, cfg.stride)
    assert feats.features.shape == (len(starts), 1024) and feats.duration == info.duration
    assert feats.times[:, 0] == pytest.approx(starts / cfg.fps)
    assert feats.times[:, 1] == pytest.approx(np.minimum((starts + cfg.clip_len) / cfg.fps, info.duration))
    assert np.all(np.diff(feats.times[:, 0]) > 0) and np.all(np.diff(feats.times[:, 1]) > 0)
    assert feats.times.min() >= 0 and feats.times.max() <= info.duration
    # windows must fit inside the video: only a tail shorter than one stride is left uncovered
    assert 0 <= info.duration - feats.times[-1, 1] < cfg.stride / cfg.fps


@pytest.mark.parametrize("name", list(VIDEOS))
def test_uniform_clips_times(name, grounder, infos, uniform_features):
    from cmagrounding.video.decode import num_output_frames
    from cmagrounding.video.sampling import uniform_clip_starts

    cfg, info, feats = grounder.video_config, infos[name], uniform_features[name]
    N = feats.config.num_clips
    starts = uniform_clip_starts(num_output_frames(info, cfg.fps), N, cfg.clip_len)
    assert feats.config.scheme == "uniform_clips" and feats.features.shape == (N, 1024)
    assert feats.times[:, 0] == pytest.approx(starts / cfg.fps)
    assert np.all(np.diff(feats.times[:, 0]) > 0) and np.all(feats.times[:, 1] > feats.times[:, 0])
    assert feats.times.min() >= 0 and feats.times.max() <= info.duration
    # centres spread uniformly over the video (Sec. 4), to within a frame
    ideal = (np.arange(N) + 0.5) * info.duration / N
    assert np.abs(feats.centers - ideal).max() <= 1.0 / cfg.fps


@pytest.mark.parametrize("name", list(VIDEOS))
def test_extractor_features_are_real(name, fixed_features, uniform_features):
    for feats in (fixed_features[name], uniform_features[name]):
        x = feats.features
        assert x.dtype == np.float32 and np.isfinite(x).all()
        assert x.min() >= 0  # mean of post-ReLU mixed_5c activations
        assert np.std(x, axis=0).mean() > 0.01  # the clips of a real video differ
    others = [fixed_features[o].features.mean(0) for o in VIDEOS if o != name]
    mine = fixed_features[name].features.mean(0)
    assert all(np.abs(mine - o).mean() > 0.01 for o in others)  # and so do the videos


@pytest.mark.parametrize("name", ANET)
def test_kinetics_classes_of_the_real_i3d(name, videos, one_torch_thread):
    """The converted Kinetics-400 I3D names what happens in the two ActivityNet videos (3 clips at
    the network's own 224 px: the one check here of the weights and preprocessing, not just shapes)."""
    from cmagrounding.video.config import VideoConfig
    from cmagrounding.video.encoder import VideoEncoder, iter_clips

    cfg = VideoConfig(scheme="uniform_clips", num_clips=3, clip_len=16, fps=25.0, resize=224, crop=224, batch_size=3)
    encoder = VideoEncoder(cfg, device="cpu")
    clips = list(iter_clips(cfg, videos[name]))
    logits = encoder.clip_logits(np.stack([c.frames for c in clips]))
    labels = encoder.labels()
    top5 = {labels[i] for i in np.argsort(logits.mean(axis=0))[::-1][:5]}
    assert top5 & KINETICS[name], f"{name}: top-5 Kinetics classes {sorted(top5)}"


# --- the facade, the plot and the report -----------------------------------------------------------


@pytest.mark.parametrize("name", list(VIDEOS))
def test_facade_answers_inside_the_video(name, infos, answers, raw_truth):
    info = infos[name]
    moments = answers[name]
    assert [m.query for m in moments] == _queries(name, raw_truth)
    for m in moments:
        assert m.duration == info.duration
        assert 0.0 <= m.start < m.end <= info.duration
        assert m.clip_times.min() >= 0 and m.clip_times.max() <= info.duration
        assert len(m.attention) == len(m.clip_times) and np.isfinite(m.attention).all()
        assert m.unknown_words  # real sentences: the demo vocabulary lacks most words, and says so


@pytest.fixture(scope="module")
def cli_runs(videos, raw_truth, tmp_path_factory):
    """``cmagrounding localize VIDEO QUERIES --json --plot --html`` once per video."""
    from cmagrounding.cli import main
    from cmagrounding.demo import DEMO_MODEL_DIR

    out = {}
    for name, path in videos.items():
        folder = tmp_path_factory.mktemp(name)
        stdout = io.StringIO()
        # the CLI routes warnings to logging (captureWarnings); catch_warnings undoes that afterwards
        with contextlib.redirect_stdout(stdout), warnings.catch_warnings():
            warnings.simplefilter("ignore")  # QueryWarnings: the answers fixture expects them
            code = main(["localize", str(path), *_queries(name, raw_truth), "--model", str(DEMO_MODEL_DIR),
                         "--device", "cpu", "--json", "--plot", str(folder / "plot.png"),
                         "--html", str(folder / "report.html")])
        out[name] = (code, json.loads(stdout.getvalue()), folder)
    return out


@pytest.mark.parametrize("name", list(VIDEOS))
def test_cli_localize_writes_plot_and_report(name, videos, infos, answers, cli_runs):
    import importlib.util

    from cmagrounding.cli.localize import EXIT_PLOT_UNAVAILABLE

    has_matplotlib = importlib.util.find_spec("matplotlib") is not None
    code, result, folder = cli_runs[name]
    assert code == (0 if has_matplotlib else EXIT_PLOT_UNAVAILABLE)
    assert result["duration"] == pytest.approx(infos[name].duration)
    assert result["model_card"]["demo"] is True
    # from the file in one call: the same answers as from the features extracted once
    got = np.array([(m["start"], m["end"]) for m in result["moments"]])
    assert got == pytest.approx(np.array([(m.start, m.end) for m in answers[name]]), abs=1e-4)
    if has_matplotlib:
        png = (folder / "plot.png").read_bytes()
        assert png.startswith(b"\x89PNG\r\n\x1a\n") and len(png) > 20_000
    page = (folder / "report.html").read_text(encoding="utf-8")
    assert "<video" in page and videos[name].name in page
    assert f'data-duration="{infos[name].duration:.3f}"' in page
    for m in answers[name]:
        assert f'data-start="{m.start:.3f}" data-end="{m.end:.3f}"' in page


@pytest.mark.parametrize("name", ANET)
def test_report_with_real_ground_truth(name, videos, answers, raw_truth, tmp_path):
    from cmagrounding.report import write_report

    truth = [(q["start"], q["end"]) for q in raw_truth[name]]
    page = write_report(tmp_path / "report.html", videos[name], answers[name], ground_truth=truth).read_text(encoding="utf-8")
    assert page.count('class="moment truth"') == len(truth)
    for s, e in truth:
        assert f'data-start="{s:.3f}" data-end="{e:.3f}"' in page


# --- scoring the facade's answers to the real queries -----------------------------------------------


@pytest.fixture(scope="module")
def predictions_file(answers, infos, tmp_path_factory) -> Path:
    """The ActivityNet videos' answers as a predictions file (extra keys kept, as users will)."""
    path = tmp_path_factory.mktemp("predictions") / "preds.jsonl"
    with open(path, "w", encoding="utf-8") as f:
        for name in ANET:
            for m in answers[name]:
                f.write(json.dumps({"video": name, "query": m.query, "pred": [m.start, m.end],
                                    "duration": infos[name].duration, "score": m.score}) + "\n")
    return path


@pytest.mark.parametrize("split, scored, count", [
    ("val_1", {"v_GGSY1Qvo990": 3}, 17505),
    ("val_2", {"v_GGSY1Qvo990": 3}, 17031),
    ("train", {"v_ZNVhz7ctTq0": 2}, 37421),
    ("test", {"v_GGSY1Qvo990": 6}, 34536),  # the paper's test split: val_1 + val_2
])
def test_evaluate_predictions_on_real_queries(split, scored, count, shared_data, raw_truth, answers,
                                              predictions_file, tmp_path, capsys):
    from cmagrounding.cli import main

    ann_root = shared_data / "activitynet_captions"
    args = ["evaluate", "--predictions", str(predictions_file), "--dataset", "activitynet-captions",
            "--annotations", str(ann_root), "--split", split, "--json", str(tmp_path / "result.json")]
    if split == "val_2":  # the rest of the split has no prediction: an error by default
        assert main(args) == 1
        assert f"no prediction for {count - sum(scored.values())} of {count} annotations" in capsys.readouterr().err
    assert main(args + ["--allow-missing", "--per-query", str(tmp_path / "per_query.jsonl")]) == 0
    result = json.loads((tmp_path / "result.json").read_text())
    n = sum(scored.values())
    rows = sum(len(answers[v]) for v in ANET)
    assert (result["count"], result["scored"], result["missing"], result["rows"]) == (count, n, count - n, rows)
    assert result["extra"] == rows - n and result["shared"] == 0

    per_query = [json.loads(x) for x in (tmp_path / "per_query.jsonl").read_text().splitlines()]
    assert len(per_query) == count
    hits = [q for q in per_query if q["pred"] is not None]
    assert sorted({q["video"] for q in hits}) == sorted(scored)
    splits = {"test": ("val_1", "val_2")}.get(split, (split,))
    for q in hits:  # each IoU is that of the facade's answer against the original JSON's truth
        (truth,) = [t for t in raw_truth[q["video"]] if t["query"] == q["query"] and t["split"] in splits]
        (moment,) = [m for m in answers[q["video"]] if m.query == q["query"]]
        gt = np.clip([truth["start"], truth["end"]], 0, truth["duration"])
        pred = np.clip([moment.start, moment.end], 0, truth["duration"])
        assert q["gt"] == pytest.approx(gt.tolist()) and q["pred"] == pytest.approx(pred.tolist())
        assert q["iou"] == pytest.approx(float(temporal_iou(pred, gt)[0]), abs=1e-12)
    ious = np.array([q["iou"] for q in hits])
    for m in (0.1, 0.3, 0.5, 0.7):  # the missing rest counts as IoU 0
        assert result[f"R1@{m:g}"] == pytest.approx(np.sum(ious >= m) / count)
    assert result["mIoU"] == pytest.approx(ious.sum() / count)


def test_score_predictions_on_the_videos_own_annotations(shared_data, raw_truth, answers, predictions_file):
    """Against only these videos' annotations nothing is missing: the rates are plain fractions."""
    from cmagrounding.training.annotations import AnnotationSet, load_annotations
    from cmagrounding.training.predictions import score_predictions

    parts = [load_annotations("activitynet-captions", shared_data / "activitynet_captions", s) for s in QUERY_SPLITS]
    mine = AnnotationSet("activitynet-captions", "these videos",
                         [a for p in parts for a in p if a.video in {VIDEOS[v][0] for v in ANET}])
    report = score_predictions(predictions_file, mine)
    assert (report.annotations, report.scored, report.missing, report.extra) == (8, 8, 0, 0)
    ious = []
    for q in report.per_query:
        (truth,) = [t for t in raw_truth[q.video] if t["query"] == q.query]
        (moment,) = [m for m in answers[q.video] if m.query == q.query]
        ious.append(float(temporal_iou([moment.start, min(moment.end, truth["duration"])],
                                       [truth["start"], min(truth["end"], truth["duration"])])[0]))
    assert [q.iou for q in report.per_query] == pytest.approx(ious)
    assert report["R1@0.3"] == pytest.approx(np.mean(np.array(ious) >= 0.3))
    assert report["mIoU"] == pytest.approx(np.mean(ious))


def test_evaluate_ranked_predictions_on_real_queries(grounder, fixed_features, raw_truth, shared_data, tmp_path):
    """Top-5 lists from the facade's windowed inference, written as ``[[start, end, score], ...]``
    best first, give R5@m: a query counts when any of its 5 candidates reaches IoU m."""
    from cmagrounding.cli import main

    path = tmp_path / "ranked.jsonl"
    ranked = {}
    with open(path, "w", encoding="utf-8") as f, warnings.catch_warnings():
        warnings.simplefilter("ignore")  # QueryWarnings (unknown words), checked above
        for name in ANET:
            queries = [q["query"] for q in raw_truth[name]]
            lists = grounder.localize(fixed_features[name], queries, top_k=5, windowed=True, window=6.0, stride=2.0)
            for query, moments in zip(queries, lists):
                assert 1 < len(moments) <= 5
                ranked[(name, query)] = moments
                f.write(json.dumps({"video": name, "query": query,
                                    "pred": [[m.start, m.end, m.score] for m in moments]}) + "\n")
    out = tmp_path / "result.json"
    code = main(["evaluate", "--predictions", str(path), "--dataset", "activitynet-captions", "--annotations",
                 str(shared_data / "activitynet_captions"), "--split", "test", "--allow-missing", "--json", str(out)])
    assert code == 0
    result = json.loads(out.read_text())
    assert (result["count"], result["scored"], result["extra"]) == (34536, 6, 2)  # ZNVhz7ctTq0's are in train
    best1, best5 = [], []
    for t in raw_truth["v_GGSY1Qvo990"]:
        if t["split"] not in ("val_1", "val_2"):
            continue
        gt = np.clip([t["start"], t["end"]], 0, t["duration"])
        cands = np.clip([[m.start, m.end] for m in ranked[("v_GGSY1Qvo990", t["query"])]], 0, t["duration"])
        ious = temporal_iou(cands, np.repeat(gt[None], len(cands), axis=0))
        best1.append(ious[0])
        best5.append(ious.max())
    for m in (0.1, 0.3, 0.5, 0.7):
        assert result[f"R1@{m:g}"] == pytest.approx(np.sum(np.array(best1) >= m) / 34536)
        assert result[f"R5@{m:g}"] == pytest.approx(np.sum(np.array(best5) >= m) / 34536)
        assert result[f"R5@{m:g}"] >= result[f"R1@{m:g}"]
