"""GloVe reader quirks (synthetic files) and embedding-matrix policy; coverage on the real subset."""

from __future__ import annotations

import gzip
import logging
from pathlib import Path

import numpy as np
import pytest

from cmagrounding.errors import ConfigError, DatasetError
from cmagrounding.text import WordTokenizer, build_embedding_matrix, read_glove
from cmagrounding.text.glove import read_glove_with_stats

GLOVE_SUBSET = Path("glove") / "glove.840B.300d.charades_sta_subset.txt"

# dim 3; line 3 is a word with spaces, line 5 repeats "the", lines 6-8 are malformed
QUIRKY = (
    "the 0.1 0.2 0.3\n"
    "person 1 2 3\n"
    ". . . -1 -2 -3.5e-1\n"
    "Dog 4 5 6\n"
    "the 9 9 9\n"
    "broken 1 2\n"
    "nonfloat 1 x 3\n"
    "notfinite 1 nan 3\n"
    "dog 7 8 9\n"
)


def _write(path: Path, text: str) -> Path:
    path.write_bytes(text.encode("utf-8"))
    return path


def test_reader_handles_840b_quirks(tmp_path, caplog):
    path = _write(tmp_path / "vectors.txt", QUIRKY)
    with caplog.at_level(logging.INFO, logger="cmagrounding.text.glove"):
        vectors, stats = read_glove_with_stats(path)
    assert set(vectors) == {"the", "person", ". . .", "Dog", "dog"}
    np.testing.assert_array_equal(vectors[". . ."], np.array([-1, -2, -0.35], dtype=np.float32))
    np.testing.assert_array_equal(vectors["the"], np.array([0.1, 0.2, 0.3], dtype=np.float32))  # first wins
    assert all(v.dtype == np.float32 and v.shape == (3,) for v in vectors.values())
    assert (stats.dim, stats.lines, stats.kept, stats.duplicates, stats.bad_lines) == (3, 9, 5, 1, 3)
    assert stats.bad_examples == [6, 7, 8]
    warning = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert warning and "3 malformed" in warning[0].getMessage() and "1 repeated" in warning[0].getMessage()


def test_reader_header_gz_crlf_and_word_filter(tmp_path):
    body = "2 3\r\nthe 0.1 0.2 0.3\r\ndog 1 2 3\r\n"
    gz = tmp_path / "vectors.bin"  # gzip is detected from the bytes, not the suffix
    with gzip.open(gz, "wb") as f:
        f.write(body.encode())
    vectors, stats = read_glove_with_stats(gz, dim=3)
    assert stats.header and list(vectors) == ["the", "dog"]
    np.testing.assert_array_equal(vectors["dog"], [1, 2, 3])
    assert list(read_glove(gz, words={"dog", "cat"})) == ["dog"]
    with pytest.raises(DatasetError, match="header says dim 3, expected 300"):
        read_glove(gz, dim=300)


def test_reader_errors_name_the_file(tmp_path):
    with pytest.raises(DatasetError, match="nope.txt"):
        read_glove(tmp_path / "nope.txt")
    empty = _write(tmp_path / "empty.txt", "")
    with pytest.raises(DatasetError, match="empty.txt.*no valid"):
        read_glove(empty)
    wrong_dim = _write(tmp_path / "small.txt", "a 1 2 3\nb 4 5 6\n")
    with pytest.raises(DatasetError, match="small.txt.*no valid"):
        read_glove(wrong_dim, dim=300)
    text = _write(tmp_path / "prose.txt", "this is not a vector file\n")
    with pytest.raises(DatasetError, match="prose.txt"):
        read_glove(text)
    with pytest.raises(ConfigError):
        read_glove(wrong_dim, dim=0)


def test_embedding_matrix_policy(tmp_path):
    path = _write(tmp_path / "vectors.txt", QUIRKY)
    tok = WordTokenizer.build(["the person sees the dog", "the zebra sees a cat"], style="lgi")
    matrix, report = build_embedding_matrix(tok, path, dim=3, seed=0, corpus=["the dog", "a zebra eats"])
    assert matrix.shape == (tok.vocab_size, 3) and matrix.dtype == np.float32
    vectors = read_glove(path)
    np.testing.assert_array_equal(matrix[tok.pad_id], 0)
    for word in ("the", "person", "dog"):
        np.testing.assert_array_equal(matrix[tok.word_to_id(word)], vectors[word])
    found = np.stack([vectors[w] for w in ("the", "person", "dog")])
    np.testing.assert_allclose(matrix[tok.unk_id], found.mean(0), rtol=1e-6)
    # missing words and <S>, <E>: seeded normal draws, reproducible, different per seed
    again, _ = build_embedding_matrix(tok, path, dim=3, seed=0)
    other, _ = build_embedding_matrix(tok, path, dim=3, seed=1)
    np.testing.assert_array_equal(matrix, again)
    missing_ids = [tok.word_to_id(w) for w in ("sees", "zebra", "a", "cat")] + [2, 3]
    assert not np.allclose(matrix[missing_ids], other[missing_ids])
    assert np.all(matrix[missing_ids] != 0)
    assert sorted(report.missing) == ["a", "cat", "sees", "zebra"]
    assert (report.vocab_size, report.found, report.found_case_insensitive) == (11, 3, 0)
    assert report.type_coverage == pytest.approx(3 / 7)
    # corpus "the dog" / "a zebra eats": 5 tokens, "the" and "dog" covered
    assert report.corpus_tokens == 5 and report.token_coverage == pytest.approx(2 / 5)


def test_missing_word_scale_follows_glove_std():
    rng = np.random.default_rng(5)
    words = [f"w{i}" for i in range(200)]
    vectors = {w: (rng.standard_normal(50) * 0.4).astype(np.float32) for w in words}
    tok = WordTokenizer.build(words[:100] + [f"unseen{i}" for i in range(400)])
    matrix, report = build_embedding_matrix(tok, vectors, dim=50, seed=3)
    assert report.found == 100 and len(report.missing) == 400
    drawn = matrix[[tok.word_to_id(f"unseen{i}") for i in range(400)]]
    assert drawn.std() == pytest.approx(0.4, rel=0.05)


def test_case_insensitive_fallback_and_dict_input(tmp_path):
    # exact lowercase wins over other casings; otherwise the first casing in file order is used
    path = _write(tmp_path / "cased.txt", "Paris 1 1\nPARIS 2 2\nApple 3 3\napple 4 4\n")
    tok = WordTokenizer.build(["paris apple"])
    matrix, report = build_embedding_matrix(tok, path, dim=2)
    np.testing.assert_array_equal(matrix[tok.word_to_id("paris")], [1, 1])
    np.testing.assert_array_equal(matrix[tok.word_to_id("apple")], [4, 4])
    assert report.found == 2 and report.found_case_insensitive == 1
    from_dict, _ = build_embedding_matrix(tok, read_glove(path), dim=2)
    np.testing.assert_array_equal(from_dict, matrix)
    with pytest.raises(ConfigError, match="shape"):
        build_embedding_matrix(tok, {"paris": np.ones(3)}, dim=2)
    with pytest.raises(DatasetError, match="none of the"):
        build_embedding_matrix(tok, {"london": np.ones(2)}, dim=2)


def test_real_glove_subset_covers_charades_vocabulary(shared_data):
    lines = (shared_data / "charades_sta" / "charades_sta_train.txt").read_text().splitlines()
    sentences = [line.split("##", 1)[1] for line in lines if line.strip()]
    tok = WordTokenizer.build(sentences, style="lgi")
    glove_path = shared_data / GLOVE_SUBSET
    matrix, report = build_embedding_matrix(tok, glove_path, dim=300, corpus=sentences)
    print(f"\nCharades-STA (lgi) vocabulary {tok.vocab_size}: {report.summary()}")
    assert tok.vocab_size == 1140 and matrix.shape == (1140, 300)
    # measured: 989 of 1,136 words (87.1 %), 99.79 % of 77,029 training tokens
    assert report.found >= 989 and report.type_coverage >= 0.87
    assert report.corpus_tokens == 77029 and report.token_coverage >= 0.997
    # a row is the file's vector for that word, to the 5 printed digits
    first = glove_path.read_text().split("\n", 2)[1].split(" ")
    assert first[0] == "person"
    np.testing.assert_allclose(matrix[tok.word_to_id("person")][:3], [float(x) for x in first[1:4]])
    assert "bookthen" in report.missing  # fused typos of the raw text stay random vectors
