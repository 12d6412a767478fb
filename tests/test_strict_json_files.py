"""Every JSON file a user hands in goes through the strict reader (cmagrounding._strict_json.read):
a key given twice, a huge integer or deep nesting is refused by name through the reader's own
error class, never a RecursionError traceback or a silently kept last value."""

from __future__ import annotations

import json

import numpy as np
import pytest

from cmagrounding.errors import ConfigError, DatasetError
from cmagrounding.training.packed import INDEX_NAME, PackedStore
from cmagrounding.training.packing import pack_features
from cmagrounding.training.stores import NpyFolderStore, open_feature_store, recorded_durations

DEEP = "[" * 100_000 + "]" * 100_000


def _packed(tmp_path):
    folder = tmp_path / "feats"
    folder.mkdir()
    np.save(folder / "a.npy", np.ones((3, 4), np.float32))
    pack_features(folder, folder)
    return folder


def test_a_packed_index_with_a_key_twice_is_refused_by_name(tmp_path):
    folder = _packed(tmp_path)
    index = folder / INDEX_NAME
    text = index.read_text()
    index.write_text(text.replace('"rows":', '"rows": 0, "rows":', 1))  # which count is meant?
    with pytest.raises(DatasetError, match=r"packed-features.json: not a readable packed-store index: .*key 'rows' is given twice"):
        PackedStore(folder)
    index.write_text(DEEP)
    with pytest.raises(DatasetError, match="nested 100000 levels deep"):
        PackedStore(folder)
    # the folder's .npy files are read instead of an index that cannot be trusted
    assert isinstance(open_feature_store(folder), NpyFolderStore)


def test_an_extract_features_index_is_read_strictly(tmp_path):
    folder = tmp_path / "feats"
    folder.mkdir()
    np.save(folder / "a.npy", np.ones((3, 4), np.float32))
    index = folder / "index.json"
    index.write_text('{"videos": {"a": {"duration": 4.0}, "a": {"duration": 9.0}}}')
    with pytest.raises(DatasetError, match=r"index.json: not a readable extract-features index: .*key 'a' is given twice"):
        recorded_durations(NpyFolderStore(folder))
    index.write_text('{"videos": {"a": {"duration": ' + "9" * 30 + "}}}")
    with pytest.raises(DatasetError, match="an integer of 30 digits"):
        recorded_durations(NpyFolderStore(folder))
    with pytest.raises(DatasetError, match="an integer of 30 digits"):
        pack_features(folder, tmp_path / "packed")
    index.write_text(json.dumps({"videos": {"a": {"duration": 4.0}}}))
    assert recorded_durations(NpyFolderStore(folder)) == {"a": 4.0}


def test_annotation_files_are_read_strictly(tmp_path):
    from cmagrounding.training.annotations import load_activitynet_captions, load_tacos

    anet = tmp_path / "val_1.json"
    row = '{"duration": 10.0, "timestamps": [[1, 2]], "sentences": ["a dog runs"]}'
    anet.write_text('{"v_a": ' + row + ', "v_a": ' + row + "}")
    with pytest.raises(DatasetError, match=r"val_1.json: not a readable ActivityNet Captions file: .*key 'v_a' is given twice"):
        load_activitynet_captions(anet)
    anet.write_text('{"v_a": {"duration": NaN, "timestamps": [[1, 2]], "sentences": ["a dog runs"]}}')
    with pytest.raises(DatasetError, match="NaN"):
        load_activitynet_captions(anet)
    tacos = tmp_path / "test.json"
    tacos.write_text(DEEP)
    with pytest.raises(DatasetError, match=r"test.json: not a readable TACoS annotation file: JSON nested"):
        load_tacos(tacos)
    with pytest.raises(DatasetError, match="TACoS annotation file not found"):
        load_tacos(tmp_path / "missing.json")


def test_a_model_config_file_is_read_strictly(tmp_path):
    from cmagrounding.model.config import CMAConfig

    path = tmp_path / "c.json"
    path.write_text('{"hidden": 64, "hidden": 128}')
    with pytest.raises(ConfigError, match=r"invalid CMAConfig JSON .*key 'hidden' is given twice"):
        CMAConfig.from_json(path)
    with pytest.raises(ConfigError, match="Infinity"):
        CMAConfig.from_json('{"dropout": Infinity}')


def test_extract_features_sidecars_that_cannot_be_trusted_count_as_not_done(tmp_path):
    from cmagrounding.video.extract import is_finished, write_index

    feat = tmp_path / "v.npy"
    np.save(feat, np.ones((2, 3), np.float32))
    side = tmp_path / "v.json"
    side.write_text(DEEP)  # json.loads raised RecursionError here
    assert not is_finished(feat, side)
    assert write_index(tmp_path, {})["videos"] == {}
    side.write_text('{"kind": "features", "kind": "failure"}')
    assert not is_finished(feat, side)


def test_a_demo_annotations_file_is_read_strictly(tmp_path):
    from cmagrounding.demo.generator import load_annotations

    path = tmp_path / "annotations.json"
    path.write_text('{"generator": {}, "seed": 1, "seed": 2, "videos": []}')
    with pytest.raises(DatasetError, match=r"not a readable demo annotations file: .*key 'seed' is given twice"):
        load_annotations(path)
    path.write_text("[]")
    with pytest.raises(DatasetError, match="not a demo annotations file"):
        load_annotations(path)


def test_packing_again_removes_only_its_own_previous_data_file(tmp_path):
    """The previous index names the data file to remove; a name outside the folder, or not a data
    file of ours, is left alone (it was unlinked whatever the index said)."""
    folder = _packed(tmp_path)
    victim = tmp_path / "victim.bin"
    victim.write_bytes(b"keep")
    index = folder / INDEX_NAME
    data = json.loads(index.read_text())
    old = folder / data["data"]
    data["data"] = "../victim.bin"
    index.write_text(json.dumps(data))
    np.save(folder / "b.npy", np.ones((2, 4), np.float32))
    pack_features(folder, folder)
    assert victim.read_bytes() == b"keep" and old.is_file()  # neither is the index's to remove now
    data = json.loads(index.read_text())
    np.save(folder / "c.npy", np.ones((2, 4), np.float32))
    pack_features(folder, folder)
    assert not (folder / data["data"]).exists()  # its own previous data file is still removed
    data = json.loads(index.read_text())
    index.write_text(json.dumps({**data, "data": "../victim.bin"}))
    with pytest.raises(DatasetError, match="'../victim.bin' is not a file name in its folder"):
        PackedStore(folder)  # nor is a file outside the folder mapped as features


def test_a_training_state_is_read_strictly(tmp_path):
    from cmagrounding.errors import CheckpointError
    from cmagrounding.training.checkpoint import STATE_FILE, load_checkpoint

    (tmp_path / STATE_FILE).write_text('{"epoch": 1, "epoch": 9}')
    with pytest.raises(CheckpointError, match=r"unreadable checkpoint .*key 'epoch' is given twice"):
        load_checkpoint(tmp_path)
    (tmp_path / STATE_FILE).unlink()
    with pytest.raises(CheckpointError, match="incomplete checkpoint"):
        load_checkpoint(tmp_path)
