"""Confidence-head training windows: positives hold the whole moment re-timed, negatives none of it."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from cmagrounding.errors import ConfigError
from cmagrounding.training.annotations import Annotation
from cmagrounding.training.confidence_data import (
    ConfidenceDataset,
    ConfidenceSettings,
    WindowStore,
    absent_windows,
    confidence_windows,
    continuous_windows,
    parse_view,
)
from cmagrounding.training.dataset import collate
from cmagrounding.training.stores import MemoryStore


class _Tok:
    pad_id, unk_id = 0, 1

    def encode(self, sentence):
        return [2 + (hash(w) % 5) for w in sentence.split()]


def _videos(count=12, seed=0):
    """Videos of 16-24 rows (one per second); feature 0 = video index, feature 1 = row, feature 2 marks events."""
    rng = np.random.default_rng(seed)
    feats, anns, marks = {}, [], {}
    for v in range(count):
        n = int(rng.integers(16, 25))
        f = np.zeros((n, 3), np.float32)
        f[:, 0], f[:, 1] = v, np.arange(n)
        name = f"v{v}"
        for j, (s, e) in enumerate([(2.0, 5.5), (8.0, 11.0), (n - 4.0, n - 1.0)]):
            q = f"event {j} of kind {(v + j) % 3}"
            anns.append(Annotation(name, float(n), q, s, e))
            marks[(name, q)] = (s, e)
        feats[name] = f
    return feats, anns


def test_windows_hold_the_whole_moment_or_none_of_it():
    feats, anns = _videos()
    rows_of = {k: len(v) for k, v in feats.items()}
    wins, labels = confidence_windows(anns, rows_of, 1.0, ConfidenceSettings(positives=2, negative_ratio=1.5, seed=3))
    store = WindowStore(MemoryStore(feats))
    assert labels.count(1.0) == 2 * len(anns)  # every moment fits (<= 4 rows)
    assert abs(labels.count(0.0) - 3 * len(anns)) <= len(anns)
    by_key = {(a.video, a.query): a for a in anns}
    for w, label in zip(wins, labels):
        parts = parse_view(w.video)
        assert len(parts) == 2
        x = store.get(w.video)
        L = x.shape[0]
        assert 16 <= L <= 24 and w.duration == L
        own = [p for p in parts if by_key.get((p[0], w.query))]
        assert len(own) == 1
        base, a, b = own[0]
        orig = by_key[(base, w.query)]
        other = [p for p in parts if p is not own[0]][0]
        assert other[0] != base and other[2] - other[1] >= 2
        # the other video never has an event of the same sentence
        assert (other[0], w.query) not in by_key
        first, last = math.floor(orig.start), math.ceil(orig.end)
        if label == 1.0:
            assert a <= first and b >= last
            # the re-timed moment lands on the same feature rows of the own video
            rows = x[int(w.start) : int(math.ceil(w.end))]
            assert (rows[:, 0] == int(base[1:])).all()
            assert rows[0, 1] == first and rows[-1, 1] == last - 1
            assert w.end - w.start == pytest.approx(orig.end - orig.start)
        else:
            assert b <= first or a >= last  # no row of the moment
            assert w.start == w.end == 0.0


def test_dataset_items_and_batches_carry_the_label():
    feats, anns = _videos(6)
    rows_of = {k: len(v) for k, v in feats.items()}
    wins, labels = confidence_windows(anns, rows_of, 1.0, ConfidenceSettings(seed=1))
    rows = list(anns) + wins
    lab = [float("nan")] * len(anns) + labels
    ds = ConfidenceDataset(rows, lab, WindowStore(MemoryStore(feats)), _Tok(), 24, 8, train=True)
    batch = collate([ds[i] for i in (0, len(anns), len(rows) - 1)])
    assert torch.isnan(batch["confidence"][0])
    assert batch["confidence"][1:].tolist() == lab[len(anns):len(anns) + 1] + lab[-1:]
    assert batch["video"].shape == (3, 24, 3)
    with pytest.raises(ConfigError, match="labels"):
        ConfidenceDataset(rows, lab[:-1], WindowStore(MemoryStore(feats)), _Tok(), 24, 8)


def test_hard_other_segments_hold_a_similar_event_of_another_meaning():
    """hard_fraction=1: every other segment is cut around an event whose sentence shares most words
    with the query (here 'event J of kind K' vs 'event J of kind K2'), never one of the same sentence."""
    feats, anns = _videos(12)
    rows_of = {k: len(v) for k, v in feats.items()}
    by_video: dict[str, list[Annotation]] = {}
    for a in anns:
        by_video.setdefault(a.video, []).append(a)
    wins, labels = confidence_windows(anns, rows_of, 1.0, ConfidenceSettings(negative_ratio=1.0, hard_fraction=1.0,
                                                                             hard_overlap=0.6, seed=2))
    assert labels.count(1.0) > 0 and labels.count(0.0) > 0
    own_of = {(a.video, a.query) for a in anns}
    held = 0
    for w in wins:
        parts = parse_view(w.video)
        other = [p for p in parts if (p[0], w.query) not in own_of][0]
        words = set(w.query.split())
        similar = [a for a in by_video[other[0]] if len(words & set(a.query.split())) / len(words | set(a.query.split())) >= 0.6]
        assert all(a.query != w.query for a in similar)
        held += any(other[1] <= math.floor(a.start) and other[2] >= math.ceil(a.end) for a in similar)
    assert held >= 0.9 * len(wins)  # a few fall back to a random segment when no similar event fits
    # off by default: the windows are exactly those of earlier releases (same draws, same seed)
    plain, _ = confidence_windows(anns, rows_of, 1.0, ConfidenceSettings(seed=2))
    again, _ = confidence_windows(anns, rows_of, 1.0, ConfidenceSettings(seed=2, hard_fraction=0.0))
    assert [w.video for w in plain] == [w.video for w in again]


def test_partial_negatives_cut_the_moment_at_a_window_edge():
    """partial_fraction=1: every negative holds 1..partial_max of the moment's rows, and the cut lies
    at the window's first or last row (as a long video's window cuts it), never at the junction."""
    feats, anns = _videos(12)
    rows_of = {k: len(v) for k, v in feats.items()}
    by_key = {(a.video, a.query): a for a in anns}
    wins, labels = confidence_windows(anns, rows_of, 1.0, ConfidenceSettings(negative_ratio=1.0, partial_fraction=1.0,
                                                                             partial_max=0.5, seed=5))
    store = WindowStore(MemoryStore(feats))
    negatives = [w for w, label in zip(wins, labels) if label == 0.0]
    assert len(negatives) >= 0.8 * len(anns) and labels.count(1.0) == len(anns)
    for w in negatives:
        parts = parse_view(w.video)
        own_i = [i for i, p in enumerate(parts) if (p[0], w.query) in by_key][0]
        base, a, b = parts[own_i]
        orig = by_key[(base, w.query)]
        first, last = math.floor(orig.start), math.ceil(orig.end)
        held = min(b, last) - max(a, first)
        assert 1 <= held <= math.floor(0.5 * (last - first))
        x = store.get(w.video)
        if b < last:  # the own segment ends inside the moment: it closes the window
            assert own_i == 1 and x[-1, 1] == b - 1 and x[-1, 0] == int(base[1:])
        else:  # it begins inside the moment: it opens the window
            assert a > first and own_i == 0 and x[0, 1] == a
        assert w.start == w.end == 0.0
    # partial windows replace only that share of the negatives
    half, hl = confidence_windows(anns, rows_of, 1.0, ConfidenceSettings(negative_ratio=2.0, partial_fraction=0.5, seed=5))
    cut = 0
    for w, label in zip(half, hl):
        if label == 0.0:
            base, a, b = [p for p in parse_view(w.video) if (p[0], w.query) in by_key][0]
            o = by_key[(base, w.query)]
            cut += min(b, math.ceil(o.end)) - max(a, math.floor(o.start)) > 0
    assert 0.3 < cut / hl.count(0.0) < 0.7


@pytest.mark.parametrize("kw, word", [({"partial_fraction": 2}, "partial_fraction"), ({"partial_max": -0.1}, "partial_max"),
                                      ({"positives": -1}, "positives"), ({"negative_ratio": -0.5}, "negative_ratio"),
                                      ({"min_other": 0}, "min_other"), ({"min_rows": 10, "max_rows": 5}, "min_rows"),
                                      ({"hard_fraction": 1.5}, "hard_fraction"), ({"hard_overlap": -1}, "hard_overlap")])
def test_bad_settings_raise(kw, word):
    with pytest.raises(ConfigError, match=word):
        ConfidenceSettings(**kw)


class _KindTok:
    pad_id, unk_id = 0, 1
    vocab = {"kind": 2, **{str(k): 3 + k for k in range(6)}}

    def encode(self, sentence):
        return [self.vocab.get(w, 1) for w in sentence.split()]


def test_trainer_learns_the_head_from_windows(tmp_path):
    """The trainer passes the labels to the loss; the head learns which windows hold the sentence's event."""
    import json

    from cmagrounding.model import CMANetwork, GroundingLoss, LossConfig
    from cmagrounding.model.config import CMAConfig
    from cmagrounding.training.config import TrainConfig
    from cmagrounding.training.trainer import Trainer

    torch.manual_seed(0)
    rng = np.random.default_rng(0)
    feats, anns = {}, []
    for v in range(16):  # even videos hold kinds 0, 2, 4; odd ones 1, 3, 5; channel k marks kind k's rows
        n = int(rng.integers(16, 25))
        f = (rng.normal(size=(n, 6)) * 0.1).astype(np.float32)
        for j, (s0, e0) in enumerate([(1.0, 4.0), (7.0, 10.0), (n - 4.0, n - 1.0)]):
            k = (v % 2) + 2 * j
            f[int(s0) : int(e0), k] = 1.0
            anns.append(Annotation(f"v{v}", float(n), f"kind {k}", s0, e0))
        feats[f"v{v}"] = f
    rows_of = {k: len(v) for k, v in feats.items()}
    wins, labels = confidence_windows(anns, rows_of, 1.0, ConfidenceSettings(positives=1, negative_ratio=1.0))
    assert labels.count(0.0) > 0.8 * len(anns) and labels.count(1.0) == len(anns)
    ds = ConfidenceDataset(wins, labels, WindowStore(MemoryStore(feats)), _KindTok(), 24, 4, train=True)
    cfg = CMAConfig(video_dim=6, vocab_size=9, word_dim=8, num_clips=24, max_words=4, hidden=16, lstm_hidden=8,
                    spe_hidden=8, head_hidden=16, num_heads=2, encoder_layers=1, decoder_layers=1,
                    confidence_head=True, confidence_hidden=16, input_dropout=0.0, dropout=0.0,
                    freeze_embeddings=False)
    net = CMANetwork(cfg)
    trainer = Trainer(net, GroundingLoss(LossConfig(confidence_weight=1.0)), ds, None,
                      TrainConfig(epochs=25, batch_size=16, lr=5e-3, progress=False, device="cpu", num_threads=1),
                      tmp_path)
    trainer.fit()
    log = [json.loads(x) for x in (tmp_path / "train_log.jsonl").read_text().splitlines()]
    conf = [r["train"]["confidence"] for r in log if "train" in r]
    assert conf[-1] < 0.5 * conf[0]  # from about ln 2 = 0.69
    net.eval()
    b = collate([ds[i] for i in range(len(ds))])
    with torch.no_grad():
        p = torch.sigmoid(net(b["video"], b["video_mask"], b["words"], b["word_mask"]).confidence_logit)
    lab = b["confidence"] == 1.0
    assert float(p[lab].mean()) > float(p[~lab].mean()) + 0.4


def test_continuous_windows_are_one_scene_with_the_whole_moment_or_none_of_it():
    """Windows of one long video each (no junction): positives hold the whole moment re-timed,
    negatives none of its rows, partial ones part of it cut at the window's edge."""
    rng = np.random.default_rng(4)
    feats, anns = {}, []
    for v in range(6):
        n = int(rng.integers(55, 66))
        f = np.zeros((n, 2), np.float32)
        f[:, 0], f[:, 1] = v, np.arange(n)
        feats[f"long{v}"] = f
        for j, s in enumerate(range(3, n - 8, 9)):
            anns.append(Annotation(f"long{v}", float(n), f"event {j} of long {v}", float(s) + 0.5, float(s) + 4.0))
    rows_of = {k: len(v) for k, v in feats.items()}
    settings = ConfidenceSettings(positives=1, negative_ratio=2.0, partial_fraction=0.5, seed=1)
    wins, labels = continuous_windows(anns, rows_of, 1.0, settings, (16, 24))
    store = WindowStore(MemoryStore(feats))
    by_key = {(a.video, a.query): a for a in anns}
    assert labels.count(1.0) == len(anns) and labels.count(0.0) > len(anns)
    partial = 0
    for w, label in zip(wins, labels):
        (base, a, b), = parse_view(w.video)
        x = store.get(w.video)
        assert 16 <= b - a <= 24 and w.duration == b - a and (np.diff(x[:, 1]) == 1).all()  # one scene, in order
        o = by_key[(base, w.query)]
        first, last = math.floor(o.start), math.ceil(o.end)
        held = max(0, min(b, last) - max(a, first))
        if label == 1.0:
            assert held == last - first
            assert w.start + a == pytest.approx(o.start) and w.end + a == pytest.approx(o.end)
        else:
            assert w.start == w.end == 0.0
            if held:
                partial += 1
                assert held <= math.floor(0.5 * (last - first)) and (a > first or b < last)
    assert partial > 0
    with pytest.raises(ConfigError, match="lengths"):
        continuous_windows(anns, rows_of, 1.0, settings, (20, 10))
    # a sentence whose meaning occurs twice in its video is left out
    twice = anns[:2] + [Annotation(anns[0].video, anns[0].duration, anns[0].query, 40.0, 43.0)]
    w2, _ = continuous_windows(twice, rows_of, 1.0, settings, (16, 24))
    assert {w.query for w in w2} == {anns[1].query}


def test_absent_windows_pair_a_random_window_with_each_absent_sentence():
    """One window per absent sentence, of a length in range (at most the video), inside the video,
    label 0 and no moment; an absent sentence for a video without features is refused by name."""
    rows_of = {"a": 80, "b": 30, "c": 10}
    absent = {"a": ["the red circle grows", "the blue square vanishes", "a green triangle appears"],
              "b": ["the red circle shrinks"], "c": ["the background turns white"]}
    wins, labels = absent_windows(absent, rows_of, 0.5, (16, 24), seed=3)
    assert labels == [0.0] * 5 and sorted(w.query for w in wins) == sorted(q for qs in absent.values() for q in qs)
    for w in wins:
        (base, a, b), = parse_view(w.video)
        assert w.query in absent[base] and 0 <= a < b <= rows_of[base]
        assert 16 <= b - a <= 24 or b - a == rows_of[base] == 10  # at most the video's rows
        assert w.duration == pytest.approx(0.5 * (b - a)) and w.start == w.end == 0.0
    starts = {parse_view(w.video)[0][1] for w in wins if w.video.startswith("a@")}
    assert len(starts) > 1  # placed at random, not all at the start
    assert absent_windows(absent, rows_of, 0.5, (16, 24), seed=3) == (wins, labels)  # seeded
    with pytest.raises(ConfigError, match="'d'"):
        absent_windows({"d": ["x"]}, rows_of, 0.5, (16, 24))
    with pytest.raises(ConfigError, match="lengths"):
        absent_windows(absent, rows_of, 0.5, (24, 16))


def test_hard_absent_windows_hold_the_most_similar_event_of_the_video():
    """With hard_fraction 1, each absent sentence's window holds, whole, the event of its video whose
    sentence shares most words with it (here: the same colour and shape, another verb)."""
    rows_of = {"v": 120}
    anns = [Annotation("v", 120.0, "the red square moves left", 10.0, 14.0),
            Annotation("v", 120.0, "the blue circle shrinks", 60.0, 63.0),
            Annotation("v", 120.0, "a green triangle appears", 100.0, 104.0)]
    absent = {"v": ["the red square grows"] * 10 + ["the blue circle grows"] * 10}
    wins, _ = absent_windows(absent, rows_of, 1.0, (16, 24), seed=0, annotations=anns, hard_fraction=1.0)
    for w in wins:
        (_, a, b), = parse_view(w.video)
        near = anns[0] if "red" in w.query else anns[1]
        assert a <= near.start and near.end <= b, (w.video, w.query)
    random_wins, _ = absent_windows(absent, rows_of, 1.0, (16, 24), seed=0, annotations=anns, hard_fraction=0.0)
    held = [a <= 10 and 14 <= b for w in random_wins if "red" in w.query for (_, a, b) in parse_view(w.video)]
    assert not all(held)  # at random, the event is not always in the window
    with pytest.raises(ConfigError, match="hard_fraction"):
        absent_windows(absent, rows_of, 1.0, (16, 24), hard_fraction=1.5)
