"""Crops (windows of feature rows, view ids) and the standardization statistics, as training reuses them."""

from __future__ import annotations

import numpy as np
import pytest

from cmagrounding.errors import DatasetError
from cmagrounding.training.annotations import Annotation
from cmagrounding.training.crops import CroppedStore, moment_rows, parse_view, retime, view_id
from cmagrounding.training.standardize import StandardizedStore, feature_statistics
from cmagrounding.training.stores import MemoryStore, NpyFolderStore


def _feats(n: int, d: int = 3, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).random((n, d)).astype(np.float32)


def test_views_of_one_and_of_several_videos():
    v, u = _feats(10), _feats(7, seed=1)
    store = CroppedStore(MemoryStore({"v": v, "u": u}))
    assert parse_view(view_id("v", 2, 5)) == [("v", 2, 5)]
    assert parse_view("v") == [("v", None, None)]
    np.testing.assert_array_equal(store.get("v@2-5"), v[2:5])
    np.testing.assert_array_equal(store.get("v@2-5|u@0-3"), np.concatenate([v[2:5], u[0:3]]))
    np.testing.assert_array_equal(store.get("u"), u)
    assert "v@2-5|u@0-3" in store and "v@2-5|w@0-3" not in store


def test_views_outside_the_video_or_malformed_are_refused():
    store = CroppedStore(MemoryStore({"v": _feats(10)}))
    with pytest.raises(DatasetError, match="outside the 10 rows"):
        store.get("v@8-12")
    with pytest.raises(DatasetError, match="not 'A-B'"):
        store.get("v@x-3")


def test_moment_rows_and_retime():
    a = Annotation("v", 10.0, "q", 2.5, 4.2)
    assert moment_rows(a, 10, 1.0) == (2, 5)  # rows 2, 3, 4 overlap [2.5, 4.2]
    c = retime(a, 1, 7, 1.0)
    assert (c.video, c.duration, c.query) == ("v@1-7", 6.0, "q")
    assert c.start == pytest.approx(1.5) and c.end == pytest.approx(3.2)
    inside = retime(a, 3, 4, 1.0)  # a window inside the moment: the moment is clipped to it
    assert (inside.start, inside.end) == (0.0, 1.0)


def test_feature_statistics_over_a_store_and_a_folder(tmp_path):
    feats = {"a": _feats(4), "b": _feats(6, seed=2)}
    rows = np.concatenate([feats["a"], feats["b"]])
    mean, std = feature_statistics(MemoryStore(feats))
    np.testing.assert_allclose(mean, rows.mean(0), rtol=1e-6)
    np.testing.assert_allclose(std, rows.std(0) + 1e-3, rtol=1e-6)
    for k, x in feats.items():
        np.save(tmp_path / f"{k}.npy", x)
    np.save(tmp_path / ".c.1234.tmp.npy", np.full((3, 3), 1e6, np.float32))  # an interrupted write
    m2, s2 = feature_statistics(tmp_path)
    np.testing.assert_allclose(m2, mean, rtol=1e-6)
    np.testing.assert_allclose(s2, std, rtol=1e-6)
    assert NpyFolderStore(tmp_path).videos() == ["a", "b"]
    only_a = feature_statistics(MemoryStore(feats), ["a"])[0]
    np.testing.assert_allclose(only_a, feats["a"].mean(0), rtol=1e-6)
    out = StandardizedStore(MemoryStore(feats), mean, std).get("b")
    np.testing.assert_allclose(out, (feats["b"] - mean) / std, rtol=1e-6)
