"""Windowed grounding (cmagrounding.windows): layout, seconds, NMS, top-k, bad settings."""

from __future__ import annotations

import numpy as np
import pytest

from cmagrounding.errors import ConfigError
from cmagrounding.windows import (
    Candidate,
    check_min_score,
    check_top_k,
    run_windows,
    select,
    sliding_windows,
    temporal_nms,
    window_layout,
    window_seconds,
    windows_to_seconds,
)


def test_layout_covers_every_row_and_ends_flush():
    lay = window_layout(100, 20, 8)
    assert lay.starts[0] == 0 and lay.starts[-1] == 80  # the last window ends on the last row
    assert list(lay.starts[:-1]) == list(range(0, 73, 8))
    covered = np.zeros(100, bool)
    for a, b in lay.rows:
        assert b - a == 20
        covered[a:b] = True
    assert covered.all()
    assert list(window_layout(20, 20, 5).starts) == [0]
    assert list(window_layout(28, 20, 4).starts) == [0, 4, 8]


@pytest.mark.parametrize("n, size, stride, word", [
    (10, 11, 2, "longer than"), (10, 4, 0, "stride"), (10, 4, -1, "stride"), (10, 0, 2, "size"),
    (10, 4, 1.5, "stride"), (0, 4, 1, "rows"),
])
def test_bad_layouts_raise(n, size, stride, word):
    with pytest.raises(ConfigError, match=word):
        window_layout(n, size, stride)


def test_top_k_and_min_score_checks():
    ranked = [Candidate(i, i + 1, s, (0, 1), (0, 1), (0, 1)) for i, s in enumerate([0.9, 0.9, 0.5, 0.2])]
    assert [c.score for c in select(ranked, check_top_k(3), None)] == [0.9, 0.9, 0.5]
    assert [c.score for c in select(ranked, len(ranked), check_min_score(0.5))] == [0.9, 0.9, 0.5]
    assert select(ranked, 2, check_min_score(0.95)) == []
    for k in (0, -1, 2.0, True):
        with pytest.raises(ConfigError, match="top_k"):
            check_top_k(k)
    with pytest.raises(ConfigError, match="min_score"):
        check_min_score(float("nan"))


def test_nms_drops_overlaps_keeps_order():
    spans = np.array([[10, 20], [11, 21], [30, 35], [12, 19], [50, 52]], float)
    scores = np.array([0.5, 0.9, 0.4, 0.6, 0.95])
    keep = temporal_nms(spans, scores, 0.5)
    # 4 (0.95) alone; 1 (0.9) suppresses 0 (IoU 9/11) and 3 (7/9); 2 stays
    assert list(keep) == [4, 1, 2]
    assert list(temporal_nms(spans, scores, 1.0)) == [4, 1, 3, 0, 2]
    for bad in (0.0, 1.5, -0.1):
        with pytest.raises(ConfigError, match="nms_iou"):
            temporal_nms(spans, scores, bad)


def test_window_seconds_and_spans_back_to_video_seconds():
    times = np.stack([np.arange(30.0), np.arange(30.0) + 1.0], axis=1)  # one row per second
    rows = np.array([[0, 10], [20, 30]])
    bounds = window_seconds(times, rows, duration=29.5)
    assert bounds.tolist() == [[0.0, 10.0], [20.0, 29.5]]  # clipped to the video
    sec, widened = windows_to_seconds(np.array([[0.2, 0.5], [0.5, 0.5]]), bounds, 10)
    assert np.allclose(sec[0], [2.0, 5.0]) and not widened[0]
    assert np.allclose(sec[1], [24.275, 25.225]) and widened[1]  # one clip (0.95 s) around 24.75


def _marked_video(n: int, moment: tuple[int, int], dim: int = 4) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(0)
    feats = rng.normal(size=(n, dim)).astype(np.float32) * 0.1
    feats[:, 0] = 0.0
    feats[moment[0] : moment[1], 0] = 1.0  # the "event" rows
    times = np.stack([np.arange(n) * 0.5, np.arange(n) * 0.5 + 0.5], axis=1)  # two rows per second
    return feats, times


def _stub_predict(calls: list[int]):
    """Span = the marked rows seen in the window (normalized), score = fraction of the event seen."""

    def predict(windows: np.ndarray, mask: np.ndarray):
        calls.append(windows.shape[0])
        assert mask.all() and mask.shape == windows.shape[:2]
        W = windows.shape[1]
        spans, scores = [], []
        for w in windows:
            marked = np.flatnonzero(w[:, 0] > 0.5)
            if len(marked):
                spans.append((marked[0] / W, (marked[-1] + 1) / W))
                scores.append(len(marked) / 8.0)
            else:
                spans.append((0.0, 1.0))
                scores.append(0.0)
        return np.array(spans), np.array(scores), np.full(windows.shape[:2], 1.0 / W)

    return predict


def test_moment_in_a_long_sequence_is_found_at_its_seconds():
    n = 400  # 200 s at two rows per second; the event is rows 301-309 = 150.5 s - 154.5 s
    feats, times = _marked_video(n, (301, 309))
    calls: list[int] = []
    index, bounds = sliding_windows(times, 40, 10, 200.0)
    (cands,) = run_windows(feats, times, index, bounds, _stub_predict(calls), 1, nms_iou=0.5, batch_size=7)
    best = cands[0]
    assert best.score == pytest.approx(1.0)
    assert best.start == pytest.approx(150.5) and best.end == pytest.approx(154.5)
    assert best.window[0] <= 301 and best.window[1] >= 309
    assert max(calls) <= 7 and sum(calls) == len(window_layout(n, 40, 10))  # chunks, every window once
    assert all(a.score >= b.score for a, b in zip(cands, cands[1:]))
    spans = np.array([[c.start, c.end] for c in cands])
    from cmagrounding.spans import temporal_iou

    for i in range(len(spans)):  # NMS left no two overlapping answers above the threshold
        for j in range(i + 1, len(spans)):
            assert temporal_iou(spans[i], spans[j])[0] < 0.5


def test_video_shorter_than_a_window_raises():
    feats, times = _marked_video(30, (3, 6))
    with pytest.raises(ConfigError, match="longer than"):
        sliding_windows(times, 40, 10, 15.0)


# ---------------------------------------------------------------- one inference path (issue 21)
def test_a_whole_video_is_one_window_of_its_resampled_rows():
    from cmagrounding.video.resample import resample_indices
    from cmagrounding.windows import whole_video_window

    index, bounds = whole_video_window(50, 16, 25.0)
    assert index.shape == (1, 16) and index[0].tolist() == resample_indices(50, 16, 0.0).tolist()
    assert bounds.tolist() == [[0.0, 25.0]]
    index, _ = whole_video_window(5, 16, 2.5)  # fewer rows than N: all of them, no padding
    assert index[0].tolist() == [0, 1, 2, 3, 4]


def test_without_a_score_the_attention_mass_inside_the_answer_in_seconds_ranks_windows():
    """The one score of a model without the confidence head: the attention of the clips whose
    centre lies in the answer's seconds (after widening), for a whole video and windows alike."""
    from cmagrounding.windows import attention_mass, run_windows, whole_video_window

    n = 40
    times = np.stack([np.arange(n) * 0.5, np.arange(n) * 0.5 + 0.5], axis=1)
    feats = np.zeros((n, 3), np.float32)

    def predict(windows, mask):  # every window: span = its second quarter, attention on rows 12-15
        B, W = mask.shape
        att = np.zeros((B, W), np.float32)
        att[:, 12:16] = 0.25
        return np.tile([[0.25, 0.5]], (B, 1)), None, att

    index, bounds = whole_video_window(n, 40, 20.0)
    (whole,) = run_windows(feats, times, index, bounds, predict, 1)
    assert len(whole) == 1 and (whole[0].start, whole[0].end) == (5.0, 10.0)
    assert whole[0].score == attention_mass(whole[0].attention, times, 5.0, 10.0) == pytest.approx(1.0)
    index = np.stack([np.arange(s, s + 16) for s in (0, 8, 16, 24)])
    wins = window_seconds(times, np.stack([index[:, 0], index[:, -1] + 1], 1), 20.0)
    (cands,) = run_windows(feats, times, index, wins, predict, 1, nms_iou=1.0)
    for c in cands:
        assert c.score == attention_mass(c.attention, c.clip_times, c.start, c.end)
        np.testing.assert_array_equal(c.clip_times, times[c.window[0] : c.window[1]])


def test_select_is_the_one_top_k_and_min_score_rule():
    from cmagrounding.windows import select

    ranked = [Candidate(0, 1, s, (0, 1), (0, 1), (0, 1)) for s in (0.9, 0.6, 0.3)]
    assert select(ranked, None, None) is ranked[0]
    assert select(ranked, None, 0.95) is None
    assert select(ranked, 2, 0.5) == ranked[:2]
    assert select(ranked, 5, 0.7) == ranked[:1] and select(ranked, 3, 1.0) == []
