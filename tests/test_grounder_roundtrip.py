"""A tiny random-weight Grounder built through the public API: localize on features, save/load
round trips (local folder and offline hub cache), and one distinct error per kind of broken folder.

Tolerances: "identical" below means bit-equal tensors (same weights, same inputs, CPU, eval mode);
a query alone vs inside a batch agrees to 1e-5 in normalized units (padding of the word batch).
"""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest
import torch

from cmagrounding import Grounder, Moment
from cmagrounding import _io, _pretrained
from cmagrounding.errors import (
    CheckpointError,
    ExtractorMismatchError,
    FormatVersionError,
    KeyMismatchError,
    MissingFileError,
    PretrainedNotFoundError,
    QueryWarning,
    ShapeMismatchError,
)
from cmagrounding.text.tokenizer import WordTokenizer
from cmagrounding.video.config import VideoConfig
from cmagrounding.video.features import VideoFeatures

from grounder_fixtures import D, QUERIES, features, tiny_grounder, tiny_video_config, whole_clips


@pytest.fixture(scope="module")
def grounder() -> Grounder:
    return tiny_grounder()


@pytest.fixture(scope="module")
def saved(grounder, tmp_path_factory):
    folder = tmp_path_factory.mktemp("tiny")
    grounder.save_pretrained(folder, metrics={"R1@0.5": 12.5}, recipe={"epochs": 1, "lr": 1e-3}, card_notes="test model")
    return folder


def _outputs(g: Grounder, feats: VideoFeatures):
    import warnings

    clips, mask = whole_clips(g, feats)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", QueryWarning)  # QUERIES[2] is truncated on purpose
        return g.predict_batch(clips.expand(len(QUERIES), -1, -1), mask.expand(len(QUERIES), -1), QUERIES)


def assert_valid(m: Moment, duration: float) -> None:
    assert isinstance(m, Moment)
    assert 0.0 <= m.start < m.end <= duration
    assert m.duration == duration
    assert m.attention.shape == (len(m.clip_times),) and m.clip_times.shape[1] == 2
    assert m.attention.sum() == pytest.approx(1.0, abs=1e-5)
    assert 0.0 <= m.score <= 1.0 + 1e-6


# ---------------------------------------------------------------- localize on features
def test_localize_returns_valid_moments(grounder):
    feats = features()
    m = grounder.localize(feats, QUERIES[0])
    assert_valid(m, 10.0)
    start, end = m
    assert (start, end) == (m.start, m.end)
    if not m.widened:
        assert m.start == pytest.approx(m.span[0] * 10.0) and m.end == pytest.approx(m.span[1] * 10.0)
    ms = grounder.localize(feats, QUERIES[:2])
    assert isinstance(ms, list) and len(ms) == 2
    for x in ms:
        assert_valid(x, 10.0)


@pytest.mark.parametrize("n", [5, 8, 30])  # padded (n < N), exact, resampled (n > N)
def test_clip_times_follow_the_resampling_index(grounder, n):
    from cmagrounding.video.resample import resample_features

    feats = features(n=n, duration=7.0)
    m = grounder.localize(feats, "the person sits")
    _, mask, index = resample_features(feats.features, grounder.num_clips)
    assert np.array_equal(m.clip_times, feats.times[index[mask]])
    assert len(m.attention) == min(n, grounder.num_clips)
    assert_valid(m, 7.0)


def test_query_alone_equals_query_in_batch(grounder):
    feats = features()
    with pytest.warns(Warning):  # the third query is truncated to max_words
        batch = grounder.localize(feats, QUERIES)
    for q, mb in zip(QUERIES, batch):
        if q == QUERIES[2]:
            with pytest.warns(Warning):
                alone = grounder.localize(feats, q)
        else:
            alone = grounder.localize(feats, q)
        assert np.allclose(alone.span, mb.span, atol=1e-5)
        assert np.allclose(alone.attention, mb.attention, atol=1e-5)
    assert batch[2].truncated and not batch[0].truncated


def test_batches_of_queries_agree_with_one_batch(grounder):
    feats = features()
    whole = grounder.localize(feats, QUERIES[:2] * 3)
    chunked = grounder.localize(feats, QUERIES[:2] * 3, batch_size=4)
    for a, b in zip(whole, chunked):
        assert np.allclose(a.span, b.span, atol=1e-5)


def test_same_answer_from_saved_features(grounder, tmp_path):
    feats = features()
    path = tmp_path / "feats"
    feats.save(path)
    back = VideoFeatures.load(next(tmp_path.iterdir()))
    a, b = grounder.localize(feats, QUERIES[0]), grounder.localize(back, QUERIES[0])
    assert (a.start, a.end) == (b.start, b.end) and np.array_equal(a.attention, b.attention)


def test_features_of_other_settings_are_refused(grounder):
    other = features(config=VideoConfig(extractor="precomputed", feature_dim=D + 1))
    with pytest.raises(ExtractorMismatchError):
        grounder.localize(other, QUERIES[0])


def test_path_to_precomputed_model_needs_features(grounder, tmp_path):
    video = tmp_path / "v.mp4"
    video.write_bytes(b"not used")
    with pytest.raises(Exception, match="precomputed"):
        grounder.localize(video, QUERIES[0])


def test_mismatched_parts_are_refused():
    g = tiny_grounder()
    with pytest.raises(ExtractorMismatchError):
        Grounder(g.network, g.tokenizer, VideoConfig(extractor="precomputed", feature_dim=D * 2))
    other_tok = WordTokenizer.build(["only three words"])
    with pytest.raises(Exception, match="vocab_size"):
        Grounder(g.network, other_tok, tiny_video_config())


# ---------------------------------------------------------------- save / load
def test_folder_layout_and_card(saved):
    assert sorted(p.name for p in saved.iterdir()) == ["README.md", "config.json", "model.safetensors", "tokenizer.json"]
    config = json.loads((saved / "config.json").read_text())
    assert config["format_version"] == _pretrained.FORMAT_VERSION
    assert {"model", "video", "text", "extractor_weights", "metrics", "recipe"} <= set(config)
    card = (saved / "README.md").read_text()
    for needle in ("R1@0.5", "12.5", '"epochs": 1', "Extraction settings", "precomputed", "Licence", "apache-2.0", "test model"):
        assert needle in card


@pytest.mark.parametrize("num_phrases", [1, 2])
def test_roundtrip_identical_outputs(tmp_path, num_phrases):
    g = tiny_grounder(num_phrases=num_phrases, seed=3)
    g.save_pretrained(tmp_path)
    back = Grounder.from_pretrained(tmp_path, device="cpu")
    feats = features()
    a, b = _outputs(g, feats), _outputs(back, feats)
    assert torch.equal(a.span, b.span) and torch.equal(a.attention, b.attention)
    ma, mb = g.localize(feats, QUERIES[0]), back.localize(feats, QUERIES[0])
    assert (ma.start, ma.end) == (mb.start, mb.end)
    assert back.tokenizer.vocab() == g.tokenizer.vocab()
    assert back.video_config.to_dict() == g.video_config.to_dict()


def test_hub_id_offline_from_cache(saved, grounder, tmp_path, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    commit = "0123456789abcdef0123456789abcdef01234567"
    root = tmp_path / "models--someone--cma-tiny"
    (root / "refs").mkdir(parents=True)
    (root / "refs" / "main").write_text(commit)
    shutil.copytree(saved, root / "snapshots" / commit)
    back = Grounder.from_pretrained("someone/cma-tiny", revision="main", cache_dir=tmp_path, device="cpu")
    feats = features()
    assert torch.equal(_outputs(grounder, feats).span, _outputs(back, feats).span)
    with pytest.raises(PretrainedNotFoundError, match="HF_HUB_OFFLINE=1"):
        Grounder.from_pretrained("someone/not-here", cache_dir=tmp_path)


def test_push_to_hub_uploads_the_folder(grounder, monkeypatch):
    import huggingface_hub
    import huggingface_hub.constants  # a lazy submodule: not an attribute until imported

    calls = {}

    class FakeApi:
        def __init__(self, **kwargs):
            calls["init"] = kwargs

        def create_repo(self, repo_id, **kwargs):
            calls["create"] = (repo_id, kwargs)

        def upload_folder(self, *, repo_id, folder_path, **kwargs):
            from pathlib import Path

            calls["files"] = sorted(p.name for p in Path(folder_path).iterdir())
            calls["upload"] = (repo_id, kwargs)
            return type("Info", (), {"commit_url": "https://hub/commit/1"})()

    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", False)
    monkeypatch.setattr(huggingface_hub, "HfApi", FakeApi)
    url = grounder.push_to_hub("someone/cma-tiny", private=True, metrics={"mIoU": 1.0})
    assert url == "https://hub/commit/1"
    assert calls["create"] == ("someone/cma-tiny", {"private": True, "exist_ok": True})
    assert calls["files"] == ["README.md", "config.json", "model.safetensors", "tokenizer.json"]
    assert calls["upload"][0] == "someone/cma-tiny"


# ---------------------------------------------------------------- broken folders
def _copy(saved, tmp_path):
    folder = tmp_path / "broken"
    shutil.copytree(saved, folder)
    return folder


def _edit_config(folder, fn):
    config = json.loads((folder / "config.json").read_text())
    fn(config)
    (folder / "config.json").write_text(json.dumps(config))


def _edit_tensors(folder, fn):
    tensors = _io.load_safetensors(folder / "model.safetensors")
    fn(tensors)
    _io.save_safetensors(folder / "model.safetensors", tensors)


@pytest.mark.parametrize("name", ["config.json", "model.safetensors", "tokenizer.json"])
def test_missing_file(saved, tmp_path, name):
    folder = _copy(saved, tmp_path)
    (folder / name).unlink()
    with pytest.raises(MissingFileError, match=name):
        Grounder.from_pretrained(folder)


def test_changed_key(saved, tmp_path):
    folder = _copy(saved, tmp_path)
    key = sorted(_io.safetensors_shapes(folder / "model.safetensors"))[0]
    _edit_tensors(folder, lambda t: t.update({key + "_renamed": t.pop(key)}))
    with pytest.raises(KeyMismatchError) as e:
        Grounder.from_pretrained(folder)
    assert e.value.missing == [key] and e.value.unexpected == [key + "_renamed"]


def test_wrong_shape(saved, tmp_path):
    folder = _copy(saved, tmp_path)
    key = next(k for k, s in _io.safetensors_shapes(folder / "model.safetensors").items() if len(s) == 2)
    _edit_tensors(folder, lambda t: t.update({key: t[key][:, :-1].clone()}))
    with pytest.raises(ShapeMismatchError, match=key):
        Grounder.from_pretrained(folder)


def test_config_describing_another_network(saved, tmp_path):
    folder = _copy(saved, tmp_path)
    _edit_config(folder, lambda c: c["model"].update(ffn_dim=24))
    with pytest.raises(ShapeMismatchError, match="ffn|linear|weight"):
        Grounder.from_pretrained(folder)


def test_other_extractor_in_config(saved, tmp_path):
    folder = _copy(saved, tmp_path)
    _edit_config(folder, lambda c: c["video"].update(feature_dim=2 * D))
    with pytest.raises(ExtractorMismatchError, match=f"{2 * D}"):
        Grounder.from_pretrained(folder)


def test_other_extractor_requested(saved):
    with pytest.raises(ExtractorMismatchError, match="feature_dim"):
        Grounder.from_pretrained(saved, video_config=VideoConfig(extractor="precomputed", feature_dim=D + 3))


def test_unknown_format_version(saved, tmp_path):
    folder = _copy(saved, tmp_path)
    _edit_config(folder, lambda c: c.update(format_version=2))
    with pytest.raises(FormatVersionError, match="format_version 2"):
        Grounder.from_pretrained(folder)


def test_invalid_section(saved, tmp_path):
    folder = _copy(saved, tmp_path)
    _edit_config(folder, lambda c: c["model"].update(fusion="multiply"))
    with pytest.raises(CheckpointError, match="fusion"):
        Grounder.from_pretrained(folder)


def test_errors_are_distinct():
    kinds = [MissingFileError, KeyMismatchError, ShapeMismatchError, ExtractorMismatchError, FormatVersionError]
    for a in kinds:
        assert issubclass(a, CheckpointError)
        for b in kinds:
            assert a is b or not issubclass(a, b)


def test_nothing_is_pickled(saved):
    for p in saved.iterdir():
        assert not p.read_bytes().startswith(b"\x80"), f"{p.name} looks like a pickle"


def test_queries_are_checked_before_the_video(grounder, tmp_path):
    from cmagrounding.errors import QueryError, QueryTypeError

    missing = tmp_path / "missing.mp4"  # never opened: the query is refused first
    with pytest.raises(QueryError, match="empty"):
        grounder.localize(missing, "   ")
    with pytest.raises(QueryTypeError):
        grounder.localize(missing, ["fine", None])
    with pytest.raises(QueryError, match="no words"):
        grounder.localize(missing, ["person sits", "?!"])
    with pytest.raises(ValueError, match="batch_size"):
        grounder.localize(features(), "person sits", batch_size=0)


def test_unknown_and_truncated_queries_reach_the_moment(grounder):
    with pytest.warns(QueryWarning, match="sees only <UNK> <UNK>"):
        m = grounder.localize(features(), "zebra galloping")
    assert m.tokens == ("<UNK>", "<UNK>") and m.unknown_words == ("zebra", "galloping")
    with pytest.warns(QueryWarning, match="dropped"):
        m = grounder.localize(features(), "a person opens the door and sits on the chair")
    assert m.truncated and len(m.tokens) == grounder.max_words


def test_trimmed_padding_gives_the_padded_answer(grounder):
    """localize() runs a short video on its n < N real clips only; the padded input agrees to 1e-5."""
    import warnings

    from cmagrounding.video.resample import resample_features

    feats = features(n=5, duration=4.0)
    m = grounder.localize(feats, QUERIES[0])
    clips, mask, _ = resample_features(feats.features, grounder.num_clips)  # (N, D), 3 padded rows
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", QueryWarning)
        out = grounder.predict_batch(torch.from_numpy(clips)[None], torch.from_numpy(mask)[None], [QUERIES[0]])
    assert np.allclose(out.span[0].numpy(), m.span, atol=1e-5)
    assert np.allclose(out.attention[0, :5].numpy(), m.attention, atol=1e-5)


def test_save_writes_back_the_parts_that_load_returns(saved, tmp_path):
    """Issue 21: ``_pretrained.save`` takes what ``_pretrained.load`` returns (no Grounder needed)."""
    parts = _pretrained.load(saved)
    again = _pretrained.save(parts, tmp_path / "again", metrics={"R1@0.5": 12.5},
                             recipe={"epochs": 1, "lr": 1e-3}, card_notes="test model")
    a, b = (json.loads((f / "config.json").read_text()) for f in (saved, again))
    assert a == b
    assert _io.load_safetensors(saved / "model.safetensors").keys() == _io.load_safetensors(again / "model.safetensors").keys()
    for k, v in _io.load_safetensors(saved / "model.safetensors").items():
        assert torch.equal(v, _io.load_safetensors(again / "model.safetensors")[k])
    assert (saved / "tokenizer.json").read_bytes() == (again / "tokenizer.json").read_bytes()
