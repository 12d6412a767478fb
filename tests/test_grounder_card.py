"""What a model is for (its card), the config.json loader, the one from_dict rule, the one video
path check, queries looked up once, and long values quoted shortened in messages."""

from __future__ import annotations

import json
import logging
import shutil
import warnings

import pytest

from cmagrounding import Grounder, _pretrained
from cmagrounding.errors import (
    ConfigError,
    FormatVersionError,
    MissingFileError,
    PretrainedNotFoundError,
    QueryError,
    QueryWarning,
    VideoIsFolderError,
    VideoNotFoundError,
    shorten,
    shorten_list,
)
from cmagrounding.model_card import ModelCard
from cmagrounding.queries import pad_queries, prepare_query
from cmagrounding.text.tokenizer import WordTokenizer

from grounder_fixtures import QUERIES, features, tiny_grounder, whole_clips

CARD = ModelCard(domain="indoor activities (Charades)", intended_use="tests", vocabulary="Charades-STA train words")


@pytest.fixture(scope="module")
def saved(tmp_path_factory):
    folder = tmp_path_factory.mktemp("card") / "model"
    tiny_grounder().save_pretrained(folder, card=CARD)
    return folder


@pytest.fixture(scope="module")
def tok() -> WordTokenizer:
    return WordTokenizer.build(["a person opens the door", "the person sits on a chair"], style="lgi")


# ---------------------------------------------------------------- the card
def test_card_is_saved_typed_and_reloaded(saved):
    config = json.loads((saved / "config.json").read_text())
    assert config["card"] == {"domain": CARD.domain, "intended_use": "tests", "vocabulary": CARD.vocabulary, "demo": False}
    back = Grounder.from_pretrained(saved, device="cpu")
    assert back.card == CARD
    readme = (saved / "README.md").read_text()
    assert readme.index(CARD.domain) < readme.index("## Usage")  # the card says it before anything else


def test_folder_without_card_still_loads(saved, tmp_path):
    old = tmp_path / "old"
    shutil.copytree(saved, old)
    config = json.loads((old / "config.json").read_text())
    del config["card"]
    (old / "config.json").write_text(json.dumps(config))
    g = Grounder.from_pretrained(old, device="cpu")
    assert g.card == ModelCard() and not g.card.recorded and g.card.summary == "domain not recorded"


def test_bad_card_is_refused(saved, tmp_path):
    from cmagrounding.errors import CheckpointError

    bad = tmp_path / "bad"
    shutil.copytree(saved, bad)
    config = json.loads((bad / "config.json").read_text())
    config["card"]["audience"] = "everyone"
    (bad / "config.json").write_text(json.dumps(config))
    with pytest.raises(CheckpointError, match=r"section 'card'.*unknown ModelCard keys \['audience'\]"):
        Grounder.from_pretrained(bad, device="cpu")


def test_demo_model_warns_once_and_says_what_it_is(caplog):
    from cmagrounding.demo import DEMO_CARD, DEMO_MODEL_DIR

    with caplog.at_level(logging.WARNING):
        g = Grounder.from_pretrained(DEMO_MODEL_DIR, device="cpu", load_extractor=False)
    warned = [r for r in caplog.records if r.levelno >= logging.WARNING]
    assert len(warned) == 1, [r.getMessage() for r in warned]
    message = warned[0].getMessage()
    assert "demonstration model" in message and "generated videos of coloured shapes" in message
    assert "not real footage" in message and "43 entries" in message
    assert g.card == DEMO_CARD and g.card.demo
    assert g.tokenizer.vocab_size == 43  # what the card says about the vocabulary is true


def test_info_shows_the_domain_first(capsys):
    from cmagrounding.cli import main
    from cmagrounding.demo import DEMO_MODEL_DIR

    assert main(["info", str(DEMO_MODEL_DIR)]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[1].startswith("  domain: generated videos of coloured shapes") and "DEMONSTRATION MODEL" in lines[1]
    assert [i for i, line in enumerate(lines) if "format version" in line][0] > 1


def test_localize_cli_carries_the_card(saved, tmp_path, capsys):
    from cmagrounding.cli import main

    path = features(n=12, duration=6.0).save(tmp_path / "feats")
    feats = str(path if path is not None else next(tmp_path.glob("feats*")))
    assert main(["localize", feats, "the person sits", "--model", str(saved), "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["model_card"]["domain"] == CARD.domain
    assert main(["localize", feats, "the person sits", "--model", str(saved)]) == 0
    header = capsys.readouterr().out.splitlines()[0]
    assert "6.00 s" in header and f"model: {CARD.domain}" in header  # before any answer


# ---------------------------------------------------------------- most words unknown
def test_most_words_unknown_warns(tok):
    with pytest.warns(QueryWarning, match=r"3 of the 4 words .* not in its vocabulary of \d+ words \(the demo grammar\)"):
        q = prepare_query(tok, "zebra opens quickly somewhere", 10, vocabulary="the demo grammar")
    assert q.tokens == ("<UNK>", "opens", "<UNK>", "<UNK>") and q.unknown_words == ("zebra", "quickly", "somewhere")


@pytest.mark.parametrize("text", ["person opens the fridge", "person fridge"])  # 1 of 4, exactly half
def test_half_or_fewer_unknown_do_not_warn(tok, text):
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        q = prepare_query(tok, text, 10)
    assert "fridge" in q.unknown_words


# ---------------------------------------------------------------- long values quoted shortened
def test_shorten_keeps_short_values_and_counts_long_ones():
    assert shorten("on a chair") == repr("on a chair")
    long = " ".join(f"w{i}" for i in range(500))
    s = shorten(long)
    assert s.startswith("'w0 w1 w2") and "w499" not in s and "(500 words" in s and len(s) < 120
    assert shorten_list(range(25)) == "0, 1, 2, 3, 4, 5, 6, 7, 8, 9, ... (15 more)"


def test_500_word_query_warning_does_not_repeat_it(tok):
    words = ["person", "opens", "the", "door"] * 125  # 500 known words
    with pytest.warns(QueryWarning) as record:
        prepare_query(tok, " ".join(words), 10)
    (message,) = [str(w.message) for w in record]
    assert "has 500 words" in message and "(500 words" in message and "(490 words" in message
    assert len(message) < 400


def test_500_unknown_words_warning_is_short(tok):
    with pytest.warns(QueryWarning) as record:
        prepare_query(tok, " ".join(f"zebra{i}" for i in range(500)), 600)
    (message,) = [str(w.message) for w in record]
    assert "zebra499" not in message and "(500 words" in message and "500 tokens" in message and len(message) < 500


# ---------------------------------------------------------------- queries looked up once
def test_ids_come_from_the_one_lookup(tok):
    with pytest.warns(QueryWarning):
        prepared = [prepare_query(tok, q, 4) for q in ["person sits", "a person opens the door", "zebra"]]
    ids, mask = pad_queries(tok, prepared)
    assert ids.shape == (3, 4) and mask.sum(1).tolist() == [2, 4, 1]
    for row, m, p in zip(ids, mask, prepared):
        assert [tok.id_to_word(int(i)) for i in row[m]] == list(p.tokens) and tuple(int(i) for i in row[m]) == p.ids


def test_a_query_with_no_word_is_refused_by_every_facade_path():
    g = tiny_grounder()
    with pytest.raises(QueryError, match="no words"):
        g.localize(features(), "?!...")
    clips, mask = whole_clips(g, features())
    with pytest.raises(QueryError, match="no words"):  # not silently read as <UNK>
        g.predict_batch(clips, mask, ["..."])


# ---------------------------------------------------------------- one video path check
def test_a_folder_gives_one_error_wherever_it_is_caught(tmp_path):
    from cmagrounding.video.decode import check_video_path, probe

    g = tiny_grounder()
    for call in (check_video_path, probe, g.encode_video, lambda p: g.localize(p, QUERIES[0])):
        with pytest.raises(VideoIsFolderError, match="is a folder"):
            call(tmp_path)
        with pytest.raises(VideoNotFoundError, match="nope.mp4"):
            call(tmp_path / "nope.mp4")


# ---------------------------------------------------------------- the config.json loader
def test_read_config_resolves_names_like_from_pretrained(saved, tmp_path, monkeypatch):
    direct = _pretrained.read_config(saved)
    assert direct["card"]["domain"] == CARD.domain
    assert _pretrained.read_config(f"local-dir:{saved}") == direct
    with pytest.raises(PretrainedNotFoundError, match="no revisions"):
        _pretrained.read_config(saved, revision="main")
    # a hub id, from the local cache with HF_HUB_OFFLINE=1 (nothing is downloaded)
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    snap = tmp_path / "models--org--cma-card" / "snapshots" / ("a" * 40)
    (tmp_path / "models--org--cma-card" / "refs").mkdir(parents=True)
    (tmp_path / "models--org--cma-card" / "refs" / "main").write_text("a" * 40)
    shutil.copytree(saved, snap)
    assert _pretrained.read_config("org/cma-card", cache_dir=tmp_path) == direct


def test_read_config_errors(tmp_path):
    with pytest.raises(MissingFileError, match="config.json"):
        _pretrained.read_config(tmp_path)
    (tmp_path / "config.json").write_text('{"format_version": 7, "model": {}, "video": {}, "text": {}}')
    with pytest.raises(FormatVersionError, match="format_version 7"):
        _pretrained.read_config(tmp_path)


def test_demo_runner_reads_the_recipe_through_the_loader():
    from cmagrounding.demo import DEMO_MODEL_DIR
    from cmagrounding.demo.runner import generator_config_of

    assert generator_config_of(f"local-dir:{DEMO_MODEL_DIR}") == generator_config_of(DEMO_MODEL_DIR)


# ---------------------------------------------------------------- one from_dict rule
def _configs():
    from cmagrounding.demo.generator import GeneratorConfig
    from cmagrounding.model.config import CMAConfig, LossConfig
    from cmagrounding.training.config import TrainConfig
    from cmagrounding.training.recipes import Recipe, get_recipe
    from cmagrounding.training.synthetic import SyntheticConfig
    from cmagrounding.video.config import VideoConfig

    recipe = get_recipe("synthetic").to_dict()
    return [
        (CMAConfig, CMAConfig(video_dim=8, vocab_size=10).to_dict()), (LossConfig, {}), (VideoConfig, {}),
        (TrainConfig, {}), (SyntheticConfig, {}), (GeneratorConfig, {}), (Recipe, recipe), (ModelCard, {}),
    ]


@pytest.mark.parametrize("cls, good", _configs(), ids=lambda x: getattr(x, "__name__", ""))
def test_every_config_refuses_unknown_keys_the_same_way(cls, good):
    assert isinstance(cls.from_dict(good), cls)
    with pytest.raises(ConfigError, match=rf"unknown {cls.__name__} keys \['colour'\]; known keys: "):
        cls.from_dict({**good, "colour": "red"})
    with pytest.raises(ConfigError, match=f"{cls.__name__} expects a JSON object, got list"):
        cls.from_dict([1, 2])


def test_missing_required_key_is_named():
    from cmagrounding.training.recipes import Recipe, get_recipe

    d = get_recipe("synthetic").to_dict()
    del d["dataset"]
    with pytest.raises(ConfigError, match=r"Recipe lacks the required key\(s\) \['dataset'\]"):
        Recipe.from_dict(d)
