"""The pretrained format's strict checks, hub name resolution (offline), Moment and span mapping."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from cmagrounding import _io, _pretrained
from cmagrounding.errors import (
    CheckpointError,
    ExtractorMismatchError,
    FormatVersionError,
    KeyMismatchError,
    MissingFileError,
    PretrainedNotFoundError,
    ShapeMismatchError,
)
from cmagrounding.hub import is_repo_id, resolve_pretrained
from cmagrounding.outputs import Moment
from cmagrounding.spans import unit_to_seconds
from cmagrounding.video.config import VideoConfig


# ---------------------------------------------------------------- strict checks on plain dicts
def test_check_state_dict_accepts_equal():
    _io.check_state_dict({"a": (2, 3), "b": (4,)}, {"b": (4,), "a": (2, 3)}, source="model.safetensors")


def test_renamed_key_names_both_sides():
    with pytest.raises(KeyMismatchError) as e:
        _io.check_state_dict({"a.weight": (2, 3), "b": (4,)}, {"a.weights": (2, 3), "b": (4,)}, source="model.safetensors")
    assert e.value.missing == ["a.weight"] and e.value.unexpected == ["a.weights"]
    assert "missing 1 tensor(s): a.weight" in str(e.value) and "unexpected 1 tensor(s): a.weights" in str(e.value)


def test_missing_and_unexpected_alone():
    with pytest.raises(KeyMismatchError) as e:
        _io.check_state_dict({"a": (1,), "b": (1,)}, {"a": (1,)}, source="model.safetensors")
    assert e.value.missing == ["b"] and e.value.unexpected == []
    with pytest.raises(KeyMismatchError) as e:
        _io.check_state_dict({"a": (1,)}, {"a": (1,), "z": (1,)}, source="model.safetensors")
    assert e.value.missing == [] and e.value.unexpected == ["z"]


def test_wrong_shape_names_tensor_and_shapes():
    with pytest.raises(ShapeMismatchError, match=r"w: expected \(2, 3\), found \(3, 2\)"):
        _io.check_state_dict({"w": (2, 3)}, {"w": (3, 2)}, source="model.safetensors")


def test_long_lists_are_abbreviated():
    with pytest.raises(KeyMismatchError, match=r"\(5 more\)"):
        _io.check_state_dict({f"k{i:02d}": (1,) for i in range(15)}, {}, limit=10, source="model.safetensors")


def test_missing_files_are_named(tmp_path):
    (tmp_path / "config.json").write_text("{}")
    with pytest.raises(MissingFileError, match="model.safetensors, tokenizer.json"):
        _pretrained.check_files(tmp_path)


@pytest.mark.parametrize(
    "content, error, message",
    [
        ("not json", CheckpointError, "not valid JSON"),
        ("[1, 2]", CheckpointError, "JSON object"),
        ('{"model": {}}', FormatVersionError, "no 'format_version'"),
        ('{"format_version": 99, "model": {}, "video": {}, "text": {}}', FormatVersionError, "format_version 99"),
        ('{"format_version": 1, "model": {}, "text": {}}', CheckpointError, "video"),
    ],
)
def test_read_config_errors(tmp_path, content, error, message):
    (tmp_path / "config.json").write_text(content)
    with pytest.raises(error, match=message):
        _pretrained.read_config(tmp_path)


def test_read_config_ok(tmp_path):
    data = {"format_version": 1, "model": {"a": 1}, "video": {}, "text": {}}
    _io.write_json_atomic(tmp_path / "config.json", data)
    assert _pretrained.read_config(tmp_path) == data


def test_safetensors_roundtrip_and_header_shapes(tmp_path):
    w = torch.arange(6.0).reshape(2, 3)
    shared = {"a": w, "b": w}  # shared storage is cloned apart, not refused
    _io.save_safetensors(tmp_path / "m.safetensors", shared, {"k": "v"})
    assert _io.safetensors_shapes(tmp_path / "m.safetensors") == {"a": (2, 3), "b": (2, 3)}
    back = _io.load_safetensors(tmp_path / "m.safetensors")
    assert torch.equal(back["a"], w) and torch.equal(back["b"], w)


def test_corrupt_safetensors(tmp_path):
    (tmp_path / "m.safetensors").write_bytes(b"\x00" * 16)
    with pytest.raises(CheckpointError, match="not a readable safetensors"):
        _io.safetensors_shapes(tmp_path / "m.safetensors")


def test_extractor_mismatch_names_fields():
    a = VideoConfig(extractor="i3d_kinetics400", fps=25.0, crop=224)
    b = VideoConfig(extractor="i3d_kinetics400", fps=24.0, crop=224)
    a.check_compatible(a.replace(), expected_what="model", found_what="features")
    with pytest.raises(ExtractorMismatchError, match=r"fps: 25.0 vs 24.0"):
        a.check_compatible(b, expected_what="model", found_what="features")


# ---------------------------------------------------------------- names (never the network)
def test_repo_id_shape():
    assert is_repo_id("org/model") and is_repo_id("my-org/cma.charades_v1")
    for bad in ("model", "a/b/c", "/abs/path", "./x", "org/", "org/../x"):
        assert not is_repo_id(bad)


def test_local_folder_and_prefix(tmp_path):
    assert resolve_pretrained(tmp_path) == tmp_path
    assert resolve_pretrained(f"local-dir:{tmp_path}") == tmp_path
    with pytest.raises(PretrainedNotFoundError, match="no revisions"):
        resolve_pretrained(tmp_path, revision="main")
    with pytest.raises(PretrainedNotFoundError, match="does not exist"):
        resolve_pretrained(f"local-dir:{tmp_path / 'nope'}")
    with pytest.raises(PretrainedNotFoundError, match="neither an existing local folder"):
        resolve_pretrained(str(tmp_path / "nope"))
    (tmp_path / "f.txt").write_text("x")
    with pytest.raises(PretrainedNotFoundError, match="is a file"):
        resolve_pretrained(tmp_path / "f.txt")


def _fake_hf_cache(cache, repo_id: str, refs: dict[str, str]) -> None:
    """The huggingface_hub cache layout: models--org--name/{refs/<ref>, snapshots/<commit>/...}."""
    root = cache / ("models--" + repo_id.replace("/", "--"))
    (root / "refs").mkdir(parents=True)
    for ref, commit in refs.items():
        (root / "refs" / ref).write_text(commit)
        snap = root / "snapshots" / commit
        snap.mkdir(parents=True, exist_ok=True)
        (snap / "config.json").write_text(json.dumps({"ref": ref}))


def test_hub_id_resolves_from_cache_offline(tmp_path, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    _fake_hf_cache(tmp_path, "org/cma-tiny", {"main": "a" * 40, "v1": "b" * 40})
    got = resolve_pretrained("org/cma-tiny", cache_dir=tmp_path)
    assert json.loads((got / "config.json").read_text()) == {"ref": "main"}
    got = resolve_pretrained("hf-hub:org/cma-tiny", revision="v1", cache_dir=tmp_path)
    assert json.loads((got / "config.json").read_text()) == {"ref": "v1"}
    got = resolve_pretrained("org/cma-tiny", revision="b" * 40, cache_dir=tmp_path)
    assert got.name == "b" * 40


def test_remote_id_offline_fails_at_once(tmp_path, monkeypatch):
    import time

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    t = time.perf_counter()
    with pytest.raises(PretrainedNotFoundError, match="HF_HUB_OFFLINE=1"):
        resolve_pretrained("org/not-cached", cache_dir=tmp_path)
    with pytest.raises(PretrainedNotFoundError, match="revision 'v9'"):
        _fake_hf_cache(tmp_path, "org/cached", {"main": "c" * 40})
        resolve_pretrained("org/cached", revision="v9", cache_dir=tmp_path)
    assert time.perf_counter() - t < 10  # no retries against an unreachable hub


# ---------------------------------------------------------------- Moment and the span mapping
def test_moment_unpacks_and_serializes():
    m = Moment(1.5, 3.0, query="q", duration=4.0, attention=np.array([0.25, 0.75], np.float32),
               clip_times=np.array([[0.0, 2.0], [2.0, 4.0]]))
    start, end = m
    assert (start, end) == (1.5, 3.0) and m[1] == 3.0 and m.length == 1.5
    d = json.loads(json.dumps(m.to_dict()))
    assert d["start"] == 1.5 and d["clip_times"] == [[0.0, 2.0], [2.0, 4.0]] and d["attention"] == [0.25, 0.75]


@pytest.mark.parametrize(
    "t_s, t_e, duration, n, expected, widened",
    [
        (0.25, 0.5, 8.0, 8, (2.0, 4.0), False),
        (0.5, 0.5, 8.0, 8, (3.5, 4.5), True),  # zero length -> one clip (1 s) around the centre
        (0.0, 0.0, 8.0, 8, (0.0, 1.0), True),  # shifted inside the video
        (1.0, 1.0, 8.0, 8, (7.0, 8.0), True),
        (0.3, 0.3, 5.0, 1, (0.0, 5.0), True),  # one clip = the whole video
        (0.6, 0.4, 10.0, 10, (4.0, 6.0), False),  # reversed input is ordered
        (-0.1, 1.2, 10.0, 10, (0.0, 10.0), False),  # clamped
    ],
)
def test_unit_to_seconds(t_s, t_e, duration, n, expected, widened):
    start, end, w = unit_to_seconds(t_s, t_e, duration, n)
    assert (start, end) == pytest.approx(expected) and w == widened
    assert 0.0 <= start < end <= duration
