"""WordTokenizer: both normalization styles, tokenizer.json round trip, batching, real vocabularies."""

from __future__ import annotations

import json
import string
from collections import Counter
from pathlib import Path

import pytest
import torch

from cmagrounding.errors import CheckpointError, ConfigError, QueryError
from cmagrounding.text import WordTokenizer

TRICKY = [
    "A person's dog doesn't  like it.",
    "Person can't open the door.The person won't sit",
    "the person (slowly) puts a book/laptop on a shelf; then leaves!",
    "He said \u201chi\u201d \u2014 and it\u2019s 3.5 o'clock, 1,000 times...",
    "burnt-out T-shirt  \t tabs\nnewline  ",
    "Se\u00f1or CAF\u00c9 was  here",
    "?!...",
    "",
]


def _lgi_reference(sentence: str) -> list[str]:
    """LGI's own tokenizer (src/utils/utils.py `tokenize`), written with Python's str methods."""
    return sentence.lower().translate(str.maketrans("", "", string.punctuation)).split()


def _lgi_vocab(sentences: list[str]) -> list[str]:
    counts = Counter(w for s in sentences for w in _lgi_reference(s))
    return sorted(counts, key=lambda w: (-counts[w], w))


def _charades_train(root: Path) -> list[str]:
    lines = (root / "charades_sta" / "charades_sta_train.txt").read_text().splitlines()
    return [line.split("##", 1)[1] for line in lines if line.strip()]


def _activitynet_train(root: Path) -> list[str]:
    data = json.loads((root / "activitynet_captions" / "train.json").read_text())
    return [s for video in data.values() for s in video["sentences"]]


def test_lgi_style_matches_lgi_reference_on_tricky_sentences():
    tok = WordTokenizer.build(TRICKY, style="lgi")
    for sentence in TRICKY:
        assert tok.words(sentence) == _lgi_reference(sentence), sentence
    assert tok.words(TRICKY[0]) == ["a", "persons", "dog", "doesnt", "like", "it"]
    assert tok.words("?!...") == []


def test_glove_style_splits_like_glove_tokens():
    tok = WordTokenizer.build(TRICKY, style="glove")
    assert tok.words(TRICKY[0]) == ["a", "person", "'s", "dog", "does", "n't", "like", "it", "."]
    assert tok.words(TRICKY[1]) == [
        "person", "ca", "n't", "open", "the", "door", ".", "the", "person", "wo", "n't", "sit",
    ]
    assert tok.words(TRICKY[2]) == [
        "the", "person", "(", "slowly", ")", "puts", "a", "book", "/", "laptop", "on", "a", "shelf",
        ";", "then", "leaves", "!",
    ]
    # curly quotes straightened; in-word hyphen/apostrophe and in-number period/comma kept
    assert tok.words(TRICKY[3]) == [
        "he", "said", '"', "hi", '"', "\u2014", "and", "it", "'s", "3.5", "o'clock", ",", "1,000",
        "times", "...",
    ]
    assert tok.words(TRICKY[4]) == ["burnt-out", "t-shirt", "tabs", "newline"]
    assert tok.words("you're i'd we've they'll i'm dogs' 'quoted'") == [
        "you", "'re", "i", "'d", "we", "'ve", "they", "'ll", "i", "'m", "dogs", "'", "'", "quoted", "'",
    ]
    assert tok.words("") == []


@pytest.mark.parametrize("style", ["lgi", "glove"])
def test_save_load_round_trip_is_identical(tmp_path, style):
    tok = WordTokenizer.build(TRICKY, style=style)
    tok.save(tmp_path / "tokenizer.json")
    assert [p.name for p in tmp_path.iterdir()] == ["tokenizer.json"]  # no temp file left behind
    loaded = WordTokenizer.from_file(tmp_path / "tokenizer.json")
    assert loaded.style == style
    assert loaded.vocab() == tok.vocab()
    probes = TRICKY + ["an unseen zebra's words", "PERSON person Person"]
    for sentence in probes:
        assert loaded.encode(sentence) == tok.encode(sentence)
        assert loaded.words(sentence) == tok.words(sentence)
    ids, mask = tok.encode_batch(probes, max_words=5)
    ids2, mask2 = loaded.encode_batch(probes, max_words=5)
    assert torch.equal(ids, ids2) and torch.equal(mask, mask2)
    # a folder works too, and saving twice over the same file is fine
    loaded.save(tmp_path)
    assert WordTokenizer.from_file(tmp_path).vocab() == tok.vocab()


def test_special_tokens_and_vocabulary_order():
    tok = WordTokenizer.build(["b a b", "c b a"], style="lgi")
    assert (tok.pad_id, tok.unk_id) == (0, 1)
    assert tok.vocab() == ["<PAD>", "<UNK>", "<S>", "<E>", "b", "a", "c"]  # by count, then alphabetical
    assert [tok.word_to_id(w) for w in ("<PAD>", "<UNK>", "<S>", "<E>")] == [0, 1, 2, 3]
    assert tok.id_to_word(4) == "b"
    assert tok.word_to_id("zebra") == tok.unk_id
    assert "a" in tok and "zebra" not in tok
    with pytest.raises(IndexError):
        tok.id_to_word(tok.vocab_size)
    # a literal special token in text is not treated as special
    assert tok.encode("<S> a") == [tok.word_to_id("s"), tok.word_to_id("a")]


def test_min_count():
    corpus = ["a a a b b c", "a b d"]
    assert WordTokenizer.build(corpus, min_count=1).vocab()[4:] == ["a", "b", "c", "d"]
    tok = WordTokenizer.build(corpus, min_count=3)
    assert tok.vocab()[4:] == ["a", "b"]
    assert tok.encode("a c d b") == [4, 1, 1, 5]
    assert tok.unknown_words("A c, D b") == ["c", "d"]
    with pytest.raises(ConfigError):
        WordTokenizer.build(corpus, min_count=0)
    with pytest.raises(ConfigError, match="no word occurs"):
        WordTokenizer.build(corpus, min_count=10)


def test_bad_arguments():
    with pytest.raises(ConfigError, match="style"):
        WordTokenizer.build(["a"], style="bpe")
    with pytest.raises(ConfigError):
        WordTokenizer.build("a single string")
    tok = WordTokenizer.build(["a b"])
    with pytest.raises(QueryError):
        tok.encode(None)  # type: ignore[arg-type]
    with pytest.raises(QueryError):
        tok.encode_batch([], max_words=3)
    with pytest.raises(QueryError):
        tok.encode_batch("a b", max_words=3)
    with pytest.raises(ConfigError):
        tok.encode_batch(["a"], max_words=0)


def test_encode_batch_pads_truncates_and_never_leaves_an_empty_row():
    tok = WordTokenizer.build(["one two three four five six"])
    ids, mask = tok.encode_batch(["one two", "...", "one two three four five six zebra"], max_words=4)
    assert ids.dtype == torch.long and mask.dtype == torch.bool
    assert ids.shape == mask.shape == (3, 4)
    one, two, three, four = (tok.word_to_id(w) for w in ("one", "two", "three", "four"))
    assert ids.tolist() == [[one, two, 0, 0], [tok.unk_id, 0, 0, 0], [one, two, three, four]]
    assert mask.sum(1).tolist() == [2, 1, 4]
    # L is the longest row after truncation, not max_words
    ids, mask = tok.encode_batch(["one", "one two"], max_words=10)
    assert ids.shape == (2, 2) and mask.tolist() == [[True, False], [True, True]]


def test_from_file_errors(tmp_path):
    with pytest.raises(CheckpointError, match="not found"):
        WordTokenizer.from_file(tmp_path / "missing.json")
    bad = tmp_path / "bad.json"
    bad.write_text("{not json")
    with pytest.raises(CheckpointError, match="bad.json"):
        WordTokenizer.from_file(bad)
    # a WordLevel tokenizer whose specials are not at ids 0..3 is refused
    from tokenizers import Tokenizer, models

    Tokenizer(models.WordLevel({"<UNK>": 0, "<PAD>": 1, "<S>": 2, "<E>": 3}, unk_token="<UNK>")).save(
        str(tmp_path / "swapped.json")
    )
    with pytest.raises(CheckpointError, match="<PAD>"):
        WordTokenizer.from_file(tmp_path / "swapped.json")


def test_foreign_pipeline_loads_as_custom(tmp_path):
    from tokenizers import Tokenizer, models, pre_tokenizers

    vocab = {"<PAD>": 0, "<UNK>": 1, "<S>": 2, "<E>": 3, "Hello": 4}
    raw = Tokenizer(models.WordLevel(vocab, unk_token="<UNK>"))
    raw.pre_tokenizer = pre_tokenizers.Whitespace()
    raw.save(str(tmp_path / "tokenizer.json"))
    tok = WordTokenizer.from_file(tmp_path)
    assert tok.style == "custom"
    assert tok.encode("Hello world") == [4, 1]


def test_real_vocabulary_sizes_match_the_paper(shared_data):
    charades = _charades_train(shared_data)
    activitynet = _activitynet_train(shared_data)
    assert len(charades) == 12408 and len(activitynet) == 37421
    cha = WordTokenizer.build(charades, style="lgi")
    anet = WordTokenizer.build(activitynet, style="lgi")
    # The paper's vocabularies: 1,136 + 4 specials and 11,121 + 4 specials.
    assert cha.vocab_size == 1140
    assert anet.vocab_size == 11125
    # Same words as LGI's Python tokenizer, not just as many.
    assert cha.vocab()[4:] == _lgi_vocab(charades)
    assert anet.vocab()[4:] == _lgi_vocab(activitynet)
    cha_g = WordTokenizer.build(charades, style="glove")
    print(
        f"\nvocabulary sizes (specials included): Charades-STA lgi {cha.vocab_size}, glove "
        f"{cha_g.vocab_size}; ActivityNet Captions lgi {anet.vocab_size}"
    )
    # glove style measured with tokenizers 0.23.3 (docs/text.md): 1,110 words + 4 specials
    assert cha_g.vocab_size == 1114
    assert "'s" in cha_g and "thats" in cha and "thats" not in cha_g  # "that's"
