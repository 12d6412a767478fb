"""Grounder.localize on long videos: windows, top-k, min_score, the confidence score; short videos unchanged."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from cmagrounding import Grounder
from cmagrounding.errors import ConfigError
from cmagrounding.model.network import CMANetwork, CMAOutput
from cmagrounding.video.features import VideoFeatures
from cmagrounding.windows import WindowSettings, window_layout
from grounder_fixtures import D, QUERIES, features, tiny_grounder, tiny_video_config

# the answers of the tiny grounder (num_phrases=1 / 2) before windows existed, on features(20, 10 s)
BEFORE = {
    1: [(4.166137, 5.416137, 0.240267), (4.192763, 5.442763, 0.250865), (4.236365, 5.486365, 0.255061)],
    2: [(4.225724, 5.475724, 0.248983), (4.225564, 5.475564, 0.248451), (4.227278, 5.477278, 0.250736)],
}


@pytest.mark.parametrize("k", [1, 2])
def test_short_videos_keep_todays_answers(one_torch_thread, k):
    g = tiny_grounder(num_phrases=k)
    g.windows = WindowSettings(size=4.0, stride=1.0, when_longer_than=15.0)  # 10 s: not windowed
    feats = features(n=20, duration=10.0)
    plain = g.localize(feats, QUERIES)
    for m, (s, e, score) in zip(plain, BEFORE[k]):
        assert (m.start, m.end, m.score) == pytest.approx((s, e, score), abs=1e-5)
        assert m.window is None
    listed = g.localize(feats, QUERIES, top_k=3)
    assert [len(x) for x in listed] == [1, 1, 1]  # one pass: one answer per sentence
    assert [(x[0].start, x[0].end, x[0].score) for x in listed] == [(m.start, m.end, m.score) for m in plain]
    assert g.localize(feats, QUERIES[0], min_score=1.1) is None
    assert g.localize(feats, QUERIES[0], top_k=2, min_score=1.1) == []
    m = g.localize(feats, QUERIES[0], min_score=0.0)
    assert (m.start, m.end) == (plain[0].start, plain[0].end)


class MarkerNetwork(CMANetwork):
    """A CMA network whose answer is read off feature 0 (the "event" rows): a stand-in with a known answer.

    span = the marked rows inside the window, confidence logit = +6 when the window holds all 4
    marked rows, -6 otherwise.
    """

    def forward(self, video, video_mask, words, word_mask):
        B, W, _ = video.shape
        marked = video[..., 0] > 0.5  # (B, W)
        idx = torch.arange(W, dtype=torch.float32)
        first = torch.where(marked, idx, torch.full_like(idx, W)).min(1).values
        last = torch.where(marked, idx, torch.full_like(idx, -1.0)).max(1).values + 1
        has = marked.any(1)
        span = torch.stack([torch.where(has, first / W, torch.zeros(B)), torch.where(has, last / W, torch.ones(B))], 1)
        att = torch.full((B, W), 1.0 / W)
        logit = torch.where(marked.sum(1) == 4, torch.tensor(6.0), torch.tensor(-6.0))
        return CMAOutput(span=span, attention=att, attention_logits=att.log(), phrase_attention=None,
                         confidence_logit=logit)


def _marker_grounder() -> Grounder:
    g = tiny_grounder(num_phrases=1)
    cfg = g.network.config.replace(confidence_head=True)
    return Grounder(MarkerNetwork(cfg), g.tokenizer, g.video_config, device="cpu",
                    windows=WindowSettings(size=4.0, stride=1.0, nms_iou=0.5, when_longer_than=6.0))


def _long(n=240, per_second=2, marked=(301 // 2, 301 // 2 + 4)) -> VideoFeatures:
    feats = features(n=n, duration=n / per_second)
    x = feats.features.copy()
    x[:, 0] = 0.0
    x[marked[0] : marked[1], 0] = 1.0
    return VideoFeatures(x, feats.times, feats.duration, feats.config, "synthetic-long")


def test_a_long_video_is_windowed_and_the_moment_found_at_its_seconds():
    g = _marker_grounder()
    feats = _long()  # 120 s, two rows per second; marked rows 150-153 = 75.0 s - 77.0 s
    assert g.num_clips == 8  # windows of 4 s = 8 rows
    best = g.localize(feats, QUERIES[0])
    assert best.start == pytest.approx(75.0) and best.end == pytest.approx(77.0)
    assert best.score == pytest.approx(1 / (1 + np.exp(-6.0)))
    assert best.window[0] <= 75.0 and best.window[1] >= 77.0 and best.window[1] - best.window[0] == pytest.approx(4.0)
    assert len(best.attention) == 8 and best.clip_times.shape == (8, 2)
    top = g.localize(feats, QUERIES[0], top_k=5)
    assert len(top) == 5 and top[0].start == pytest.approx(75.0)
    assert all(a.score >= b.score for a, b in zip(top, top[1:]))
    # every window holding the 4 marked rows gives the same span: NMS keeps one; the rest score low
    confident = g.localize(feats, QUERIES[0], top_k=5, min_score=0.5)
    assert len(confident) == 1 and (confident[0].start, confident[0].end) == pytest.approx((75.0, 77.0))
    # "not in this video": no window holds the marked rows
    empty = _long(marked=(0, 0))
    assert g.localize(empty, QUERIES[0], min_score=0.5) is None
    assert g.localize(empty, QUERIES[0], top_k=3, min_score=0.5) == []
    # the whole-video pass is still there on request
    whole = g.localize(feats, QUERIES[0], windowed=False)
    assert whole.window is None and len(whole.attention) == 8


def test_windows_are_batched_in_chunks_over_features_extracted_once(monkeypatch):
    g = _marker_grounder()
    feats = _long()
    calls = []
    forward = g.network.forward

    def counting(video, *a):
        calls.append(tuple(video.shape))
        return forward(video, *a)

    monkeypatch.setattr(g.network, "forward", counting)
    g.localize(feats, QUERIES[:2], batch_size=16)
    expected = len(window_layout(240, 8, 2))
    assert sum(c[0] for c in calls) == 2 * expected
    assert max(c[0] for c in calls) <= 16 and all(c[1:] == (8, D) for c in calls)


def test_bad_settings_raise():
    g = _marker_grounder()
    feats = _long()
    with pytest.raises(ConfigError, match="top_k"):
        g.localize(feats, QUERIES[0], top_k=0)
    with pytest.raises(ConfigError, match="stride"):
        g.localize(feats, QUERIES[0], stride=0)
    with pytest.raises(ConfigError, match="stride"):
        g.localize(feats, QUERIES[0], stride=-1.0)
    with pytest.raises(ConfigError, match="nms_iou"):
        g.localize(feats, QUERIES[0], nms_iou=0.0)
    with pytest.raises(ConfigError, match="min_score"):
        g.localize(feats, QUERIES[0], min_score="high")
    with pytest.raises(ConfigError, match="num_clips"):
        g.localize(feats, QUERIES[0], window=10.0)  # 20 rows > N = 8
    short = features(n=4, duration=2.0)
    with pytest.raises(ConfigError, match="longer than"):
        g.localize(short, QUERIES[0], windowed=True)  # the window (8 rows) is longer than the video
    plain = tiny_grounder(num_phrases=1)
    with pytest.raises(ConfigError, match="window=SECONDS"):
        plain.localize(feats, QUERIES[0], windowed=True)
    assert plain.localize(feats, QUERIES[0], windowed=True, window=4.0, top_k=2)[0].window is not None


def test_window_settings_saved_and_loaded(tmp_path):
    g = tiny_grounder(num_phrases=1)
    g.windows = WindowSettings.from_trained_durations({"min": 16.0, "max": 24.0, "median": 20.0, "videos": 3})
    folder = g.save_pretrained(tmp_path / "m")
    saved = json.loads((folder / "config.json").read_text())["windows"]
    assert saved == {"size_seconds": 20.0, "stride_seconds": 5.0, "nms_iou": 0.5, "when_longer_than": 36.0,
                     "trained_durations": {"min": 16.0, "max": 24.0, "median": 20.0, "videos": 3}}
    back = Grounder.from_pretrained(folder, device="cpu")
    assert back.windows == g.windows
    assert back.windows.applies(36.5) and not back.windows.applies(36.0)
    # a folder without the section: never windowed by default
    g.windows = None
    assert "windows" not in json.loads((g.save_pretrained(tmp_path / "n") / "config.json").read_text())


def test_bad_windows_section_is_a_checkpoint_error(tmp_path):
    from cmagrounding.errors import CheckpointError

    g = tiny_grounder(num_phrases=1)
    g.windows = WindowSettings(size=4.0, stride=1.0)
    folder = g.save_pretrained(tmp_path / "m")
    config = json.loads((folder / "config.json").read_text())
    for bad in ({"size_seconds": 4.0}, {"size_seconds": 4.0, "stride_seconds": 0.0},
                {"size_seconds": 4.0, "stride_seconds": 1.0, "window_rows": 8}):
        config["windows"] = bad
        (folder / "config.json").write_text(json.dumps(config))
        with pytest.raises(CheckpointError, match="windows"):
            Grounder.from_pretrained(folder, device="cpu")


def test_many_queries_on_windows_answer_as_one_query_at_a_time(one_torch_thread):
    """All sentences run on each chunk of windows together (V_in once per window); the answers are
    those of one sentence at a time, whatever the batch size (also when it is smaller than the count)."""
    base = tiny_grounder(num_phrases=2)
    torch.manual_seed(3)
    g = Grounder(CMANetwork(base.network.config.replace(confidence_head=True, confidence_hidden=8)), base.tokenizer,
                 base.video_config, device="cpu", windows=WindowSettings(size=4.0, stride=1.0, when_longer_than=6.0))
    feats = features(n=40, duration=20.0)
    alone = [g.localize(feats, q, top_k=4) for q in QUERIES]
    for batch_size in (64, 2):
        together = g.localize(feats, QUERIES, top_k=4, batch_size=batch_size)
        for a, b in zip(alone, together):
            assert [m.window for m in a] == [m.window for m in b] and len(a) == 4
            assert np.allclose([(m.start, m.end, m.score) for m in a], [(m.start, m.end, m.score) for m in b], atol=1e-5)
            assert len({m.score for m in a}) == 4  # a real ranking, not ties
            assert np.allclose(a[0].attention, b[0].attention, atol=1e-6)
