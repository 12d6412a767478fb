"""GloVe word vectors: a streaming reader of the text format and the embedding matrix of a vocabulary.

File format: one ``word v1 ... vD`` per line, fields separated by single spaces, optionally with a
word2vec-style header line ``count dim``; plain or gzip (detected from the bytes, not the name).
``glove.840B.300d.txt`` has quirks this reader handles:

* some words contain spaces (``". . ."``, ``"at name@domain.com"``): the vector is the LAST ``dim``
  fields and the word is everything before them, spaces included;
* some words appear more than once: the FIRST occurrence wins (GloVe files are sorted by
  frequency, so that is the better-trained vector); repeats are counted and logged;
* malformed lines (wrong number of fields, a value that is not a finite float) are skipped,
  counted and logged, never fatal.

Unknown-word policy of :func:`build_embedding_matrix` (fallback (ours); the paper only says GloVe
300-d is used):

* ``<PAD>`` (id 0) gets zeros;
* ``<UNK>`` (id 1) gets the mean of the vectors found, a neutral "average word";
* ``<S>``, ``<E>`` and every vocabulary word without a GloVe vector get independent draws from
  ``N(0, sigma^2)``, with sigma the standard deviation of all entries of the vectors found, from
  ``numpy.random.default_rng(seed)`` (so the matrix is reproducible for a given vocabulary and seed);
* a word is looked up exactly first; if absent, a case-insensitive match is used (the first, i.e.
  most frequent, casing in file order), since glove.840B is cased and our tokens are lowercase.
"""

from __future__ import annotations

import gzip
import io
import logging
import math
import os
from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Union

import numpy as np

from cmagrounding.errors import ConfigError, DatasetError

if TYPE_CHECKING:  # pragma: no cover
    from cmagrounding.text.tokenizer import WordTokenizer

logger = logging.getLogger(__name__)

PathLike = Union[str, os.PathLike]


@dataclass
class GloveReadStats:
    """What :func:`read_glove_with_stats` saw in a file."""

    path: str
    dim: int
    lines: int = 0  # every line read, header included
    header: bool = False
    valid: int = 0  # lines with the right number of fields (vector parsed only when the word is kept)
    kept: int = 0
    duplicates: int = 0  # repeats of a kept word; the first occurrence was kept
    bad_lines: int = 0
    bad_examples: list[int] = field(default_factory=list)  # 1-based line numbers, first 5

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass
class EmbeddingReport:
    """How well a set of word vectors covers a vocabulary (and, optionally, a corpus).

    ``found``/``missing``/``type_coverage`` count vocabulary words, special tokens excluded.
    ``token_coverage`` is the fraction of the corpus' word tokens (as this tokenizer splits
    them) that are in the vocabulary AND have a vector; None when no corpus was given.
    """

    vocab_size: int
    found: int
    missing: list[str]
    token_coverage: float | None
    type_coverage: float
    found_case_insensitive: int = 0  # part of `found` matched only up to case
    corpus_tokens: int = 0
    dim: int = 0
    source: str = ""

    def to_dict(self) -> dict:
        return asdict(self)

    def summary(self) -> str:
        words = self.vocab_size - 4
        text = (
            f"{self.found}/{words} vocabulary words have a vector ({self.type_coverage:.2%}"
            f", {self.found_case_insensitive} up to case); {len(self.missing)} missing"
        )
        if self.token_coverage is not None:
            text += f"; {self.token_coverage:.2%} of {self.corpus_tokens} corpus tokens covered"
        return text


def _open_text(path: Path) -> io.TextIOBase:
    with open(path, "rb") as f:
        gz = f.read(2) == b"\x1f\x8b"
    # newline="\n": only "\n" ends a line, so a stray "\r" inside a word cannot split it.
    if gz:
        return gzip.open(path, "rt", encoding="utf-8", errors="replace", newline="\n")
    return open(path, encoding="utf-8", errors="replace", newline="\n")


def _parse_vector(fields: list[str], dim: int) -> np.ndarray | None:
    try:
        vec = np.asarray(fields, dtype=np.float32)
    except ValueError:
        return None
    if vec.shape != (dim,) or not np.all(np.isfinite(vec)):
        return None
    return vec


def _header_dim(fields: list[str]) -> int | None:
    if len(fields) == 2 and all(f.isdigit() for f in fields):
        return int(fields[1])
    return None


def _trailing_floats(fields: list[str]) -> int:
    n = 0
    for f in reversed(fields):
        try:
            float(f)
        except ValueError:
            break
        n += 1
    return n


def read_glove_with_stats(
    path: PathLike,
    dim: int | None = None,
    words: Iterable[str] | None = None,
    casefold: bool = False,
) -> tuple[dict[str, np.ndarray], GloveReadStats]:
    """Like :func:`read_glove`, also returning the counts of what was read and skipped.

    ``casefold=True`` also keeps a line whose word matches ``words`` only up to case (the keys
    keep the file's casing).
    """
    path = Path(path)
    if not path.is_file():
        raise DatasetError(f"word-vector file not found: {path}")
    if dim is not None and (isinstance(dim, bool) or not isinstance(dim, int) or dim < 1):
        raise ConfigError(f"dim must be a positive integer or None, got {dim!r}")
    wanted = None if words is None else set(words)
    if wanted is not None and casefold:
        wanted |= {w.lower() for w in wanted}
    vectors: dict[str, np.ndarray] = {}
    stats = GloveReadStats(path=str(path), dim=dim or 0)

    def bad(lineno: int) -> None:
        stats.bad_lines += 1
        if len(stats.bad_examples) < 5:
            stats.bad_examples.append(lineno)

    try:
        with _open_text(path) as f:
            for lineno, line in enumerate(f, start=1):
                stats.lines += 1
                line = line.rstrip("\r\n ")
                if not line:
                    bad(lineno)
                    continue
                if lineno == 1:
                    header = _header_dim(line.split(" "))
                    if header is not None:
                        if dim is not None and header != dim:
                            raise DatasetError(f"{path}: header says dim {header}, expected {dim}")
                        dim = stats.dim = header
                        stats.header = True
                        continue
                if dim is None:
                    # The vector is the trailing run of numbers; the word (maybe with spaces) precedes it.
                    dim = stats.dim = _trailing_floats(line.split(" ")[1:])
                    if dim == 0:
                        raise DatasetError(f"{path}: line {lineno} holds no numbers; not a word-vector file")
                fields = line.rsplit(" ", dim)
                if len(fields) != dim + 1:
                    bad(lineno)
                    continue
                word = fields[0]
                stats.valid += 1
                if wanted is not None and word not in wanted and not (casefold and word.lower() in wanted):
                    continue
                if word in vectors:
                    stats.duplicates += 1
                    continue
                vec = _parse_vector(fields[1:], dim)
                if vec is None:
                    stats.valid -= 1
                    bad(lineno)
                    continue
                vectors[word] = vec
                stats.kept += 1
    except (OSError, EOFError, gzip.BadGzipFile) as exc:
        raise DatasetError(f"cannot read word-vector file {path}: {exc}") from exc
    if stats.valid == 0:
        raise DatasetError(f"{path} holds no valid word vectors ({stats.lines} lines, {stats.bad_lines} malformed)")
    if stats.bad_lines or stats.duplicates:
        logger.log(
            logging.WARNING if stats.bad_lines else logging.INFO,
            "%s: skipped %d malformed lines (first at line %s) and %d repeated words (first occurrence kept)",
            path, stats.bad_lines, stats.bad_examples[0] if stats.bad_examples else "-", stats.duplicates,
        )
    logger.info("%s: kept %d of %d valid %d-d vectors", path, stats.kept, stats.valid, stats.dim)
    return vectors, stats


def read_glove(path: PathLike, dim: int | None = None, words: set[str] | None = None) -> dict[str, np.ndarray]:
    """Read GloVe text-format vectors into ``{word: float32 array (dim,)}``, streaming the file.

    ``dim`` is checked when given, otherwise taken from a ``count dim`` header or the first line.
    ``words`` keeps only those words (exact match), so a 5 GB file costs memory only for them;
    lines of other words are not parsed beyond their field count. Repeated words: the first
    occurrence wins. Malformed lines are skipped; their count and the repeats are logged.
    Raises :class:`~cmagrounding.errors.DatasetError` naming the file when it is missing,
    unreadable or holds no valid vector.
    """
    return read_glove_with_stats(path, dim=dim, words=words)[0]


def _lookup(words: list[str], vectors: Mapping[str, np.ndarray]) -> tuple[dict[str, np.ndarray], int]:
    """Exact matches, then case-insensitive ones (first key in iteration order wins)."""
    found = {w: vectors[w] for w in words if w in vectors}
    missing = {w.lower(): w for w in words if w not in found}
    folded = 0
    if missing:
        for key, vec in vectors.items():
            w = missing.get(key.lower())
            if w is not None and w not in found:
                found[w] = vec
                folded += 1
    return found, folded


def build_embedding_matrix(
    tokenizer: WordTokenizer,
    glove: PathLike | Mapping[str, np.ndarray],
    dim: int = 300,
    seed: int = 0,
    corpus: Iterable[str] | None = None,
) -> tuple[np.ndarray, EmbeddingReport]:
    """The ``(V, dim)`` float32 embedding matrix of ``tokenizer``'s vocabulary, and its coverage.

    ``glove`` is a GloVe text file (plain or .gz) or a ``{word: vector}`` mapping. Row ``i`` is
    the vector of ``tokenizer.id_to_word(i)``; see the module docstring for the unknown-word
    policy (``<PAD>`` zeros, ``<UNK>`` mean of found vectors, missing words seeded
    ``N(0, std^2)``). ``corpus`` (sentences) adds the token coverage to the report.
    """
    if isinstance(dim, bool) or not isinstance(dim, int) or dim < 1:
        raise ConfigError(f"dim must be a positive integer, got {dim!r}")
    vocab = tokenizer.vocab()
    n_special = len(tokenizer.SPECIALS)
    words = vocab[n_special:]
    if isinstance(glove, Mapping):
        source = f"<mapping of {len(glove)} vectors>"
        vectors: Mapping[str, np.ndarray] = glove
    else:
        source = str(glove)
        vectors = read_glove_with_stats(glove, dim=dim, words=words, casefold=True)[0]
    found, folded = _lookup(words, vectors)
    if not found:
        raise DatasetError(
            f"none of the {len(words)} vocabulary words has a vector in {source} "
            f"(tokenizer style {tokenizer.style!r}); wrong file or wrong tokenizer?"
        )
    for w, v in found.items():
        if np.shape(v) != (dim,):
            raise ConfigError(f"vector of {w!r} in {source} has shape {np.shape(v)}, expected ({dim},)")
    found_ids = np.fromiter((tokenizer.word_to_id(w) for w in found), dtype=np.int64, count=len(found))
    found_mat = np.stack([np.asarray(v, dtype=np.float32) for v in found.values()])  # (F, dim)
    std = float(found_mat.std())
    rng = np.random.default_rng(seed)
    matrix = (rng.standard_normal((len(vocab), dim)) * std).astype(np.float32)
    matrix[found_ids] = found_mat
    matrix[tokenizer.pad_id] = 0.0
    matrix[tokenizer.unk_id] = found_mat.mean(axis=0)

    token_coverage = None
    total = 0
    if corpus is not None:
        covered = 0
        for sentence in corpus:
            for w in tokenizer.words(sentence):
                total += 1
                covered += w in found
        token_coverage = covered / total if total else math.nan
    report = EmbeddingReport(
        vocab_size=len(vocab),
        found=len(found),
        missing=[w for w in words if w not in found],
        token_coverage=token_coverage,
        type_coverage=len(found) / len(words) if words else math.nan,
        found_case_insensitive=folded,
        corpus_tokens=total,
        dim=dim,
        source=source,
    )
    logger.info("embedding matrix %s from %s: %s", matrix.shape, source, report.summary())
    return matrix, report
