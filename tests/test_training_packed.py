"""The packed feature store: built from a folder of .npy files or an HDF5 file, read through the store
interface, and refused with a specific error when it is truncated or does not match its index."""

from __future__ import annotations

import json
import logging
import pickle

import numpy as np
import pytest

from cmagrounding.errors import DatasetError
from cmagrounding.training.annotations import Annotation
from cmagrounding.training.dataset import GroundingDataset
from cmagrounding.training.packed import INDEX_NAME, PackedStore
from cmagrounding.training.packing import pack_features
from cmagrounding.training.stores import FeatureStore, MemoryStore, NpyFolderStore, open_feature_store


def _videos(count: int = 5, dim: int = 8, seed: int = 0) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    return {f"v{i:03d}": rng.normal(size=(int(rng.integers(3, 12)), dim)).astype(np.float32) for i in range(count)}


@pytest.fixture
def npy_folder(tmp_path):
    feats = _videos()
    folder = tmp_path / "feats"
    folder.mkdir()
    for k, v in feats.items():
        np.save(folder / f"{k}.npy", v)
    return folder, feats


def test_round_trip_from_an_npy_folder(npy_folder, tmp_path):
    folder, feats = npy_folder
    # an extract-features index beside the files: its settings travel with the packed store
    (folder / "index.json").write_text(json.dumps({"settings": {"extractor": "i3d_kinetics400", "fps": 8.0},
                                                   "videos": {"v000": {"duration": 4.5, "source": "a.mp4", "file": "v000.npy"}}}))
    store = pack_features(folder, tmp_path / "packed")
    assert isinstance(store, FeatureStore)
    assert store.videos() == sorted(feats) and len(store) == len(feats)
    for k, v in feats.items():
        got = store.get(k)
        assert got.dtype == np.float32 and got.shape == v.shape
        np.testing.assert_array_equal(got, v)
    assert "v001" in store and "nope" not in store and 3 not in store
    assert store.extraction == {"extractor": "i3d_kinetics400", "fps": 8.0}
    assert store.index["sources"] == {"v000": {"duration": 4.5, "source": "a.mp4"}}
    assert store.rows == sum(len(v) for v in feats.values())
    store.verify()
    # one data file and the index, nothing half-written left behind
    assert sorted(p.name for p in (tmp_path / "packed").iterdir()) == sorted([INDEX_NAME, store.data_path.name])


def test_store_interface_in_a_dataset_and_across_processes(npy_folder, tmp_path):
    folder, feats = npy_folder
    store = pack_features(folder, tmp_path / "packed")
    copy = pickle.loads(pickle.dumps(store))  # DataLoader workers: the mapping is not pickled
    assert len(pickle.dumps(store)) < store.data_bytes
    np.testing.assert_array_equal(copy.get("v002"), feats["v002"])

    class Tok:
        pad_id, unk_id = 0, 1

        def encode(self, sentence):
            return [2, 3]

    anns = [Annotation(k, float(len(v)), "q", 0.5, 2.0) for k, v in feats.items()]
    a = GroundingDataset(anns, store, Tok(), num_clips=6, max_words=4)
    b = GroundingDataset(anns, NpyFolderStore(folder), Tok(), num_clips=6, max_words=4)
    for i in range(len(anns)):
        np.testing.assert_array_equal(a[i]["video"].numpy(), b[i]["video"].numpy())
    store.get("v000")  # mapped in this process before the workers start (they inherit or re-map it)
    from torch.utils.data import DataLoader

    from cmagrounding.training.dataset import collate

    batches = list(DataLoader(a, batch_size=2, num_workers=2, collate_fn=collate))
    got = np.concatenate([bt["video"].numpy() for bt in batches])
    np.testing.assert_array_equal(got, np.stack([b[i]["video"].numpy() for i in range(len(anns))]))


def test_open_feature_store_uses_a_packed_store_when_it_covers_the_folder(npy_folder, caplog):
    folder, feats = npy_folder
    assert isinstance(open_feature_store(folder), NpyFolderStore)
    pack_features(folder, folder)  # packed beside the .npy files
    assert isinstance(open_feature_store(folder), PackedStore)
    assert isinstance(open_feature_store(folder / INDEX_NAME), PackedStore)
    np.save(folder / "v999.npy", np.ones((4, 8), np.float32))  # a video added after packing
    with caplog.at_level(logging.WARNING):
        store = open_feature_store(folder)
    assert isinstance(store, NpyFolderStore) and "v999.npy is not in" in caplog.text
    np.testing.assert_array_equal(store.get("v999"), np.ones((4, 8), np.float32))


def test_build_from_hdf5(tmp_path):
    h5py = pytest.importorskip("h5py")
    feats = _videos(seed=3)
    path = tmp_path / "anet.hdf5"
    with h5py.File(path, "w") as f:
        for k, v in feats.items():
            f.create_group(k).create_dataset("c3d_features", data=v)
    store = pack_features(path, tmp_path / "packed", key="c3d_features")
    assert store.index["source"]["kind"] == "hdf5" and store.index["source"]["key"] == "c3d_features"
    for k, v in feats.items():
        np.testing.assert_array_equal(store.get(k), v)


def test_float16_halves_the_file(npy_folder, tmp_path):
    folder, feats = npy_folder
    full = pack_features(folder, tmp_path / "f32")
    half = pack_features(folder, tmp_path / "f16", dtype="float16")
    assert half.data_bytes * 2 == full.data_bytes
    for k, v in feats.items():
        assert half.get(k).dtype == np.float32
        np.testing.assert_allclose(half.get(k), v, rtol=1e-3, atol=1e-3)


def test_missing_video_id(npy_folder, tmp_path):
    store = pack_features(npy_folder[0], tmp_path / "packed")
    with pytest.raises(DatasetError, match=r"no entry for video 'v404' \(5 videos packed\)"):
        store.get("v404")


def test_truncated_data_file_is_named(npy_folder, tmp_path):
    store = pack_features(npy_folder[0], tmp_path / "packed")
    with open(store.data_path, "r+b") as f:
        f.truncate(store.data_bytes - 10)
    with pytest.raises(DatasetError, match="truncated packed feature data") as e:
        PackedStore(tmp_path / "packed")
    assert store.data_path.name in str(e.value)


def test_mismatched_index(npy_folder, tmp_path):
    store = pack_features(npy_folder[0], tmp_path / "packed")
    index_path = tmp_path / "packed" / INDEX_NAME
    good = json.loads(index_path.read_text())
    bad = dict(good, rows=good["rows"] + 1)  # disagrees with its own data_bytes
    index_path.write_text(json.dumps(bad))
    with pytest.raises(DatasetError, match="mismatched index"):
        PackedStore(index_path)
    bad = dict(good, videos={**good["videos"], "v000": {"offset": good["rows"] - 1, "length": 5}})
    index_path.write_text(json.dumps(bad))
    with pytest.raises(DatasetError, match="mismatched index: video 'v000'"):
        PackedStore(index_path)
    index_path.write_text(json.dumps(good))
    with open(store.data_path, "ab") as f:  # another, longer data file under the same name
        f.write(b"\0" * 64)
    with pytest.raises(DatasetError, match="mismatched index"):
        PackedStore(index_path)
    with open(store.data_path, "r+b") as f:  # same size, other bytes: the checksum tells
        f.truncate(store.data_bytes)
        f.seek(0)
        f.write(b"\1\2\3\4")
    with pytest.raises(DatasetError, match="checksum"):
        PackedStore(index_path).verify()
    index_path.write_text("{not json")
    with pytest.raises(DatasetError, match="not a readable packed-store index"):
        PackedStore(index_path)


def test_a_failed_build_leaves_the_previous_store_whole(tmp_path):
    feats = _videos()
    pack_features(MemoryStore(feats), tmp_path / "packed")
    broken = dict(feats, v002=np.full((3, 8), np.nan, np.float32))
    with pytest.raises(DatasetError, match="NaN"):
        pack_features(MemoryStore(broken), tmp_path / "packed")
    with pytest.raises(DatasetError, match="one width"):
        pack_features(MemoryStore(dict(feats, v001=np.ones((3, 5), np.float32))), tmp_path / "packed")
    store = PackedStore(tmp_path / "packed")
    store.verify()
    np.testing.assert_array_equal(store.get("v002"), feats["v002"])
    assert len(list((tmp_path / "packed").iterdir())) == 2  # no temporary file left


def test_command_line(npy_folder, tmp_path, capsys):
    from cmagrounding.cli import main

    folder, feats = npy_folder
    assert main(["pack-features", str(folder), "-o", str(tmp_path / "out")]) == 0
    assert "packed 5 videos" in capsys.readouterr().out
    assert main(["pack-features", str(tmp_path / "out"), "--verify"]) == 0
    np.testing.assert_array_equal(PackedStore(tmp_path / "out").get("v004"), feats["v004"])


def test_recorded_extraction_settings_become_the_models_video_config(tmp_path):
    from cmagrounding.training.protocol import _store_video_config
    from cmagrounding.training.stores import open_feature_store
    from cmagrounding.video.config import VideoConfig

    vcfg = VideoConfig.for_extractor("i3d_kinetics400", fps=8.0, stride=8)
    feats = {"a": np.ones((4, vcfg.feature_dim), np.float32)}
    folder = tmp_path / "features"  # extract-features' layout: <video>.npy and index.json
    folder.mkdir(parents=True)
    np.save(folder / "a.npy", feats["a"])
    index = {"settings": vcfg.to_dict(), "failed": {}, "videos": {"a": {"file": "a.npy", "duration": 4.0}}}
    (folder / "index.json").write_text(json.dumps(index))
    # not packed: the folder's index.json is read (pack-features is only a speed-up)
    assert _store_video_config(open_feature_store(folder), vcfg.feature_dim, num_clips=24) == vcfg.replace(num_clips=24)
    store = pack_features(folder, folder)
    got = _store_video_config(store, vcfg.feature_dim, num_clips=24)
    assert got == vcfg.replace(num_clips=24)
    assert _store_video_config(store, vcfg.feature_dim + 1, num_clips=24) is None  # other features: not theirs
    assert _store_video_config(MemoryStore(feats), vcfg.feature_dim, num_clips=24) is None
    # a folder beside a video_config.json (the old demo build's layout) records nothing: no demo special case
    other = tmp_path / "other" / "train"
    other.mkdir(parents=True)
    np.save(other / "a.npy", feats["a"])
    (tmp_path / "other" / "video_config.json").write_text(json.dumps(vcfg.to_dict()))
    assert _store_video_config(open_feature_store(other), vcfg.feature_dim, num_clips=24) is None
