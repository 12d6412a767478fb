"""Annotation loaders (real files: exact counts, quirks, Figure 4), JSON Lines, feature stores, dataset."""

import json
import pickle

import numpy as np
import pytest
import torch

from cmagrounding.errors import DatasetError
from cmagrounding.training.annotations import (
    Annotation,
    load_annotations,
    load_charades_sta,
    load_jsonl,
    save_jsonl,
)
from cmagrounding.training.dataset import GroundingDataset, collate
from cmagrounding.training.stats import dataset_stats
from cmagrounding.training.stores import HDF5Store, MemoryStore, NpyFolderStore, open_feature_store
from cmagrounding.video.resample import resample_indices


# ---------------------------------------------------------------- real annotations
def test_charades_sta_counts_quirks_and_figure4(shared_data):
    root = shared_data / "charades_sta"
    train = load_annotations("charades-sta", root, "train")
    test = load_annotations("charades-sta", root, "test")
    assert (len(train), len(test)) == (12408, 3720)
    assert (len(train.videos), len(test.videos)) == (5338, 1334)
    q = train.quirks
    assert q.swapped_start_end == 4  # LEOL6, IOL8Q, AKKWU twice
    assert q.clipped_end_to_duration == 1805  # 1,802 rows + 3 of the swapped ones
    assert q.start_after_duration == 3
    assert test.quirks.clipped_end_to_duration == 562 and test.quirks.swapped_start_end == 0
    assert round(train.mean_ratio(), 2) == 0.27 and round(test.mean_ratio(), 2) == 0.27
    assert train.mean_ratio() == pytest.approx(0.268, abs=5e-4)
    assert test.mean_ratio() == pytest.approx(0.271, abs=5e-4)
    for a in list(train) + list(test):
        assert 0.0 <= a.start <= a.end <= a.duration
    rows = {(a.video, a.query): a for a in train}
    iol = rows[("IOL8Q", "a person is throwing a bag out of the room.")]
    assert (iol.start, iol.end) == (12.0, 20.9)  # swapped
    leol = rows[("LEOL6", "person is holding medicine.")]  # 8.0 7.0 in a 6.25 s video
    assert (leol.start, leol.end) == (6.25, 6.25)


def test_activitynet_counts_merged_test_and_figure4(shared_data):
    root = shared_data / "activitynet_captions"
    splits = {s: load_annotations("activitynet-captions", root, s) for s in ("train", "val_1", "val_2")}
    assert {s: len(a) for s, a in splits.items()} == {"train": 37421, "val_1": 17505, "val_2": 17031}
    test = load_annotations("activitynet-captions", root, "test")
    assert len(test) == 17505 + 17031 == 34536
    assert round(test.mean_ratio(), 2) == 0.33
    assert test.mean_ratio() == pytest.approx(0.334, abs=5e-4)
    assert splits["train"].quirks.swapped_start_end == 2
    # rows ending after the duration (by 0.01 s); float noise below 1e-6 s is clipped, not counted
    assert [splits[s].quirks.clipped_end_to_duration for s in ("train", "val_1", "val_2")] == [29, 5, 1]
    assert all(a.end <= a.duration for a in test)
    assert all(a.query == a.query.strip() and a.query for a in test)
    stats = dataset_stats(test)
    assert stats["queries"] == 34536 and stats["paper_figure4_ratio"] == 0.33
    assert sum(stats["ratio_histogram"]) == 34536


def test_data_stats_cli_prints_counts_and_ratio(shared_data, capsys, tmp_path):
    from cmagrounding.cli import main

    out = tmp_path / "stats.json"
    assert main(["data-stats", "--dataset", "charades-sta", "--annotations", str(shared_data / "charades_sta"),
                 "--json", str(out)]) == 0
    text = capsys.readouterr().out
    assert "12,408 queries" in text and "3,720 queries" in text and "paper Figure 4: 0.27" in text
    assert "start>end swapped 4" in text
    assert [s["queries"] for s in json.loads(out.read_text())] == [12408, 3720]


# ---------------------------------------------------------------- formats and errors
def test_charades_format_errors(tmp_path):
    txt = tmp_path / "charades_sta_train.txt"
    txt.write_text("AAAAA 1.0 2.0##a person sits.\nBBBBB 1.0 x##bad\n")
    with pytest.raises(DatasetError, match=r"charades_sta_train.txt:2"):
        load_charades_sta(txt, {"AAAAA": 10.0, "BBBBB": 10.0})
    txt.write_text("CCCCC 1.0 2.0##unknown video\n")
    with pytest.raises(DatasetError, match="no duration"):
        load_charades_sta(txt, {"AAAAA": 10.0})


def test_jsonl_round_trip_and_repairs(tmp_path):
    rows = [Annotation("v1", 10.0, "a person opens a door", 1.0, 4.5), Annotation("v2", 5.0, "someone sits", 0.0, 5.0)]
    path = tmp_path / "train.jsonl"
    save_jsonl(rows, path)
    back = load_jsonl(path)
    assert list(back) == rows and back.split == "train"
    assert list(load_annotations("jsonl", tmp_path, "train")) == rows  # a folder of <split>.jsonl
    path.write_text(json.dumps({"video": "v", "duration": 10, "query": "q", "start": 7, "end": 12}) + "\n"
                    + json.dumps({"video": "w", "duration": 10, "query": "q", "start": 6, "end": 2}) + "\n")
    fixed = load_jsonl(path)
    assert [(a.start, a.end) for a in fixed] == [(7.0, 10.0), (2.0, 6.0)]
    assert fixed.quirks.clipped_end_to_duration == 1 and fixed.quirks.swapped_start_end == 1
    path.write_text(json.dumps({"video": "v", "duration": 10, "query": "q"}) + "\n")
    with pytest.raises(DatasetError, match=r"train.jsonl:1: missing keys \['start', 'end'\]"):
        load_jsonl(path)


# ---------------------------------------------------------------- feature stores
def test_npy_folder_store(tmp_path):
    feats = np.random.default_rng(0).normal(size=(7, 5)).astype(np.float32)
    np.save(tmp_path / "vid1.npy", feats)
    store = open_feature_store(tmp_path)
    assert isinstance(store, NpyFolderStore) and "vid1" in store and "vid2" not in store
    np.testing.assert_array_equal(store.get("vid1"), feats)
    with pytest.raises(DatasetError, match="vid2"):
        store.get("vid2")
    np.save(tmp_path / "lgi.npy", feats[:, None, None, :])  # LGI's released I3D files are (n, 1, 1, D)
    np.testing.assert_array_equal(store.get("lgi"), feats)


def test_hdf5_store_official_activitynet_layout_and_flat_layout(tmp_path):
    h5py = pytest.importorskip("h5py")
    rng = np.random.default_rng(1)
    a, b = rng.normal(size=(9, 500)).astype(np.float32), rng.normal(size=(4, 500)).astype(np.float32)
    with h5py.File(tmp_path / "sub_activitynet_v1-3.c3d.hdf5", "w") as f:
        f.create_group("v_abc").create_dataset("c3d_features", data=a)
        f.create_group("v_def").create_dataset("c3d_features", data=b)
    store = open_feature_store(tmp_path / "sub_activitynet_v1-3.c3d.hdf5", key="c3d_features")
    assert isinstance(store, HDF5Store)
    np.testing.assert_array_equal(store.get("v_abc"), a)
    np.testing.assert_array_equal(store.get("v_def"), b)
    assert "v_abc" in store and "v_zzz" not in store
    clone = pickle.loads(pickle.dumps(store))  # DataLoader workers get a store without the open handle
    np.testing.assert_array_equal(clone.get("v_def"), b)
    with h5py.File(tmp_path / "flat.h5", "w") as f:
        f.create_dataset("vid", data=a)
    np.testing.assert_array_equal(HDF5Store(tmp_path / "flat.h5").get("vid"), a)
    with pytest.raises(DatasetError, match="v_zzz"):
        store.get("v_zzz")


# ---------------------------------------------------------------- dataset
class _Tok:
    pad_id, unk_id = 0, 1
    vocab = {"a": 2, "person": 3, "opens": 4, "door": 5}

    def encode(self, s):
        return [self.vocab.get(w, 1) for w in s.lower().split()]


def _dataset(train, n=40, num_clips=16, query="a person opens a door"):
    feats = np.arange(n, dtype=np.float32)[:, None].repeat(3, 1)  # row i holds the value i
    rows = [Annotation("v", 20.0, query, 5.0, 10.0)]
    return GroundingDataset(rows, MemoryStore({"v": feats}), _Tok(), num_clips, max_words=4, train=train, seed=3)


def test_dataset_sampling_offsets_follow_facts_rule():
    ev = _dataset(train=False)[0]
    np.testing.assert_array_equal(ev["video"][:, 0].numpy(), resample_indices(40, 16, 0.0))  # offset 0
    assert ev["video_mask"].all()
    torch.testing.assert_close(ev["target"], torch.tensor([0.25, 0.5]))
    assert ev["words"].tolist() == [2, 3, 4, 2]  # truncated to max_words
    assert ev["clip_mask"].sum() > 0 and not ev["clip_mask"][0]
    ds = _dataset(train=True)
    first = ds[0]["video"][:, 0]
    assert torch.equal(first, ds[0]["video"][:, 0])  # same (seed, epoch, index): same offset
    seen = set()
    for epoch in range(6):
        ds.set_epoch(epoch)
        seen.add(tuple(ds[0]["video"][:, 0].tolist()))
    assert len(seen) > 1  # the offset changes between epochs


def test_dataset_short_video_padding_and_empty_query():
    item = _dataset(train=True, n=10, query="?!")[0]
    assert item["video_mask"].sum() == 10 and not item["video_mask"][10:].any()
    assert item["words"].tolist() == [1]  # nothing left: one <UNK>
    batch = collate([item, _dataset(train=False)[0]])
    assert batch["words"].shape == (2, 4) and batch["word_mask"].sum(1).tolist() == [1, 4]
    assert batch["video"].shape == (2, 16, 3)


# ---------------------------------------------------------------- on-the-fly extraction
class _FakeEncoder:
    def __init__(self):
        self.calls = []

    def encode(self, path):
        self.calls.append(path)

        class F:
            features = np.full((5, 4), float(len(self.calls)), np.float32)

        return F()


def test_encoder_store_finds_videos_and_caches_features(tmp_path):
    from cmagrounding.training.stores import EncoderStore

    (tmp_path / "videos").mkdir()
    (tmp_path / "videos" / "clip1.mp4").write_bytes(b"")
    enc = _FakeEncoder()
    store = EncoderStore(enc, video_root=tmp_path / "videos", cache=tmp_path / "cache")
    assert "clip1" in store and "clip2" not in store
    first = store.get("clip1")
    assert enc.calls == [tmp_path / "videos" / "clip1.mp4"] and (tmp_path / "cache" / "clip1.npy").is_file()
    np.testing.assert_array_equal(store.get("clip1"), first)  # from the cache: no second extraction
    assert len(enc.calls) == 1
    with pytest.raises(DatasetError, match="clip2"):
        store.get("clip2")


def test_chain_store_serves_each_video_from_the_first_store_that_has_it():
    from cmagrounding.errors import DatasetError
    from cmagrounding.training.stores import ChainStore, MemoryStore

    a = MemoryStore({"v1": np.ones((3, 2), np.float32), "both": np.zeros((2, 2), np.float32)})
    b = MemoryStore({"v2": np.full((4, 2), 2.0, np.float32), "both": np.ones((5, 2), np.float32)})
    chain = ChainStore(a, b)
    assert chain.get("v2").shape == (4, 2) and chain.get("both").shape == (2, 2)  # the first store wins
    assert "v1" in chain and "v3" not in chain and chain.videos() == ["both", "v1", "v2"]
    with pytest.raises(DatasetError, match="v3"):
        chain.get("v3")
    with pytest.raises(DatasetError, match="at least one"):
        ChainStore()
