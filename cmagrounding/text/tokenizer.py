"""Word-level query tokenizer built on the ``tokenizers`` library, saved as one ``tokenizer.json``.

Two normalization styles, both expressed as a ``tokenizers`` normalizer + pre-tokenizer chain, so
the whole tokenizer (style included) serializes to ``tokenizer.json`` and reloads identically:

``"lgi"`` (the paper presets' default; fallback (LGI), the paper only says "lowercased tokens")
    Lowercase, delete every ASCII punctuation character, split on whitespace. This is LGI's
    tokenizer; with every training word kept and 4 special tokens it gives exactly the paper's
    vocabularies: 1,140 words (Charades-STA train) and 11,125 (ActivityNet Captions train.json).
    ``"person's"`` -> ``persons``, ``"doesn't"`` -> ``doesnt``.
``"glove"``
    Lowercase, split on whitespace, then split off punctuation and clitics the way GloVe's
    (Stanford/PTB) tokens are cut: ``"person's"`` -> ``person 's``, ``"doesn't"`` -> ``does n't``,
    ``"can't"`` -> ``ca n't``, ``"dog."`` -> ``dog .``. A hyphen or apostrophe between two word
    characters stays inside the word (``burnt-out``, ``o'clock``), a period or comma between two
    digits too (``3.5``, ``1,000``); ``...`` is one token; curly quotes become straight ones.

Special tokens ``<PAD> <UNK> <S> <E>`` always have ids 0, 1, 2, 3. They are vocabulary entries,
not added tokens, so a literal ``"<S>"`` in a query is tokenized like any other text.
"""

from __future__ import annotations

import json
import logging
import os
import string
from collections import Counter
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from tokenizers import Regex, Tokenizer, models, normalizers, pre_tokenizers

from cmagrounding.errors import CheckpointError, ConfigError, QueryError

if TYPE_CHECKING:  # pragma: no cover
    import torch

logger = logging.getLogger(__name__)

TOKENIZER_FILE = "tokenizer.json"
STYLES = ("lgi", "glove")

# Every ASCII punctuation character, escaped for the Oniguruma regex engine of `tokenizers`.
_ASCII_PUNCT = "[" + "".join("\\" + c for c in string.punctuation) + "]"
# GloVe-style split, applied to each whitespace-separated chunk; every match becomes its own token.
# Order matters: clitics first, then "...", then punctuation. A hyphen or apostrophe between two
# word characters stays in the word ("burnt-out", "o'clock"), a period or comma between two digits
# too ("3.5", "1,000"); elsewhere they are split off ("door.the" -> door . the).
_GLOVE_SPLIT = (
    r"n't(?![\w'])"  # does|n't, ca|n't, wo|n't
    r"|'(?:s|re|ve|ll|d|m)(?![\w'])"  # person|'s, you|'re, i|'d
    r"|\.\.\."
    r"|(?<!\w)[-']|[-'](?!\w)"
    r"|(?<!\d)[.,]|[.,](?!\d)"
    r"|[^\w\s\-'.,]"
)


def _normalizer(style: str) -> normalizers.Normalizer:
    if style == "lgi":
        return normalizers.Sequence([normalizers.Lowercase(), normalizers.Replace(Regex(_ASCII_PUNCT), "")])
    if style == "glove":
        return normalizers.Sequence(
            [
                normalizers.Replace(Regex("[\u2018\u2019]"), "'"),
                normalizers.Replace(Regex("[\u201c\u201d]"), '"'),
                normalizers.Lowercase(),
            ]
        )
    raise ConfigError(f"unknown tokenizer style {style!r}; expected one of {STYLES}")


def _pre_tokenizer(style: str) -> pre_tokenizers.PreTokenizer:
    if style == "lgi":
        return pre_tokenizers.WhitespaceSplit()
    if style == "glove":
        return pre_tokenizers.Sequence(
            [pre_tokenizers.WhitespaceSplit(), pre_tokenizers.Split(Regex(_GLOVE_SPLIT), behavior="isolated")]
        )
    raise ConfigError(f"unknown tokenizer style {style!r}; expected one of {STYLES}")


def _make_tokenizer(vocab: dict[str, int], style: str) -> Tokenizer:
    tok = Tokenizer(models.WordLevel(vocab, unk_token=WordTokenizer.UNK))
    tok.normalizer = _normalizer(style)
    tok.pre_tokenizer = _pre_tokenizer(style)
    return tok


def _pipeline(tok: Tokenizer) -> tuple[object, object]:
    """The (normalizer, pre_tokenizer) JSON of a tokenizer, as serialized by this `tokenizers`."""
    data = json.loads(tok.to_str())
    return data.get("normalizer"), data.get("pre_tokenizer")


def _detect_style(tok: Tokenizer) -> str:
    pipeline = _pipeline(tok)
    for style in STYLES:
        if _pipeline(_make_tokenizer({}, style)) == pipeline:
            return style
    return "custom"


class WordTokenizer:
    """Word-level tokenizer of query sentences (a ``tokenizers.Tokenizer`` with a WordLevel model).

    ``encode`` returns word ids only: no ``<S>``/``<E>`` are added (they exist for compatibility
    with LGI's vocabulary size). Words not in the vocabulary map to ``<UNK>`` (id 1).
    """

    PAD, UNK, BOS, EOS = "<PAD>", "<UNK>", "<S>", "<E>"
    SPECIALS = (PAD, UNK, BOS, EOS)
    pad_id = 0
    unk_id = 1
    bos_id = 2
    eos_id = 3

    def __init__(self, tokenizer: Tokenizer, style: str | None = None) -> None:
        """Wrap a ready ``tokenizers.Tokenizer``; prefer :meth:`build` or :meth:`from_file`."""
        model = json.loads(tokenizer.to_str()).get("model", {})
        if model.get("type") != "WordLevel":
            raise CheckpointError(f"tokenizer model is {model.get('type')!r}, expected 'WordLevel'")
        for i, special in enumerate(self.SPECIALS):
            if tokenizer.token_to_id(special) != i:
                raise CheckpointError(
                    f"tokenizer must have {special!r} at id {i}, found id {tokenizer.token_to_id(special)}"
                )
        if model.get("unk_token") != self.UNK:
            raise CheckpointError(f"tokenizer unk_token is {model.get('unk_token')!r}, expected {self.UNK!r}")
        ids = sorted(tokenizer.get_vocab().values())
        if ids != list(range(len(ids))) or tokenizer.get_vocab_size() != len(ids):
            wrong = [i for i in ids if not 0 <= i < len(ids)][:5] or ids[:5]
            raise CheckpointError(
                f"tokenizer vocabulary ids must be 0..{len(ids) - 1}, each once (the rows of the word embedding); "
                f"found ids such as {wrong}"
            )
        self._tok = tokenizer
        self._style = style if style is not None else _detect_style(tokenizer)
        if self._style == "custom":
            logger.info("tokenizer uses a normalization chain that is neither 'lgi' nor 'glove' style")

    # ------------------------------------------------------------------ construction / files
    @classmethod
    def build(cls, sentences: Iterable[str], min_count: int = 1, style: str = "lgi") -> WordTokenizer:
        """Build the vocabulary of a corpus: every word seen at least ``min_count`` times.

        Words are ordered by decreasing count, ties alphabetically, after the 4 special tokens.
        The words are counted with the same normalizer and pre-tokenizer that ``encode`` uses.
        """
        if style not in STYLES:
            raise ConfigError(f"unknown tokenizer style {style!r}; expected one of {STYLES}")
        if isinstance(min_count, bool) or not isinstance(min_count, int) or min_count < 1:
            raise ConfigError(f"min_count must be an integer >= 1, got {min_count!r}")
        if isinstance(sentences, str):
            raise ConfigError("sentences must be an iterable of sentences, not a single string")
        probe = _make_tokenizer({}, style)
        counts: Counter[str] = Counter()
        for sentence in sentences:
            counts.update(_words(probe, sentence))
        kept = sorted((w for w, c in counts.items() if c >= min_count), key=lambda w: (-counts[w], w))
        if not kept:
            raise ConfigError(
                f"no word occurs at least {min_count} times in the corpus ({len(counts)} distinct words)"
            )
        vocab = {w: i for i, w in enumerate(cls.SPECIALS)}
        for w in kept:
            vocab.setdefault(w, len(vocab))
        logger.info(
            "built %s-style vocabulary: %d of %d distinct words kept (min_count=%d) + %d special tokens",
            style, len(vocab) - len(cls.SPECIALS), len(counts), min_count, len(cls.SPECIALS),
        )
        return cls(_make_tokenizer(vocab, style), style=style)

    @classmethod
    def from_file(cls, path: str | os.PathLike) -> WordTokenizer:
        """Load a ``tokenizer.json`` (or a folder holding one); the style is read from its chain."""
        path = Path(path)
        if path.is_dir():
            path = path / TOKENIZER_FILE
        if not path.is_file():
            raise CheckpointError(f"tokenizer file not found: {path}")
        try:
            tok = Tokenizer.from_file(str(path))
        except Exception as exc:  # tokenizers raises a bare Exception on malformed JSON
            raise CheckpointError(f"{path} is not a valid tokenizer.json: {exc}") from exc
        try:
            return cls(tok)
        except CheckpointError as exc:
            raise CheckpointError(f"{path}: {exc}") from exc

    def save(self, path: str | os.PathLike) -> None:
        """Write ``tokenizer.json`` atomically (to ``path``, or inside it when it is a folder)."""
        path = Path(path)
        if path.is_dir():
            path = path / TOKENIZER_FILE
        from cmagrounding._io import atomic_path

        with atomic_path(path) as tmp:
            self._tok.save(str(tmp), pretty=True)

    # ------------------------------------------------------------------ properties
    @property
    def vocab_size(self) -> int:
        """Number of entries, special tokens included."""
        return self._tok.get_vocab_size()

    @property
    def style(self) -> str:
        """``"lgi"``, ``"glove"``, or ``"custom"`` for a foreign tokenizer.json."""
        return self._style

    @property
    def tokenizer(self) -> Tokenizer:
        """The underlying ``tokenizers.Tokenizer``."""
        return self._tok

    def vocab(self) -> list[str]:
        """All entries in id order (``vocab()[i]`` is the word of id ``i``)."""
        out = [""] * self.vocab_size
        for w, i in self._tok.get_vocab().items():
            out[i] = w
        return out

    # ------------------------------------------------------------------ encoding
    def words(self, sentence: str) -> list[str]:
        """The normalized words of a sentence, before vocabulary lookup (unknown words kept)."""
        _check_sentence(sentence)
        return _guarded(lambda: _words(self._tok, sentence), sentence)

    def encode(self, sentence: str) -> list[int]:
        """Word ids of a sentence; unknown words get ``unk_id``. May be empty (e.g. ``"?!"``)."""
        _check_sentence(sentence)
        return _guarded(lambda: self._tok.encode(sentence, add_special_tokens=False).ids, sentence)

    def unknown_words(self, sentence: str) -> list[str]:
        """The normalized words of ``sentence`` that are not in the vocabulary, in order."""
        vocab = self._tok.get_vocab()
        return [w for w in self.words(sentence) if w not in vocab]

    def encode_batch(self, sentences: Sequence[str], max_words: int) -> tuple[torch.Tensor, torch.Tensor]:
        """Pad a batch of sentences to ids ``(B, L)`` (int64) and mask ``(B, L)`` (bool, True = word).

        For training-side code that has already checked its sentences; the ``Grounder`` facade
        never calls it (it checks each user query once, refusing one with no word, and pads the
        ids of that result with :meth:`pad`). Each sentence keeps its first ``max_words`` words;
        ``L`` is the longest row after that truncation. A sentence with no word left after
        normalization (e.g. ``"..."`` in the ``"lgi"`` style) becomes a single ``<UNK>``, so
        every row has at least one valid token (the query encoder's pooling and the masked
        attention need one).
        """
        if isinstance(max_words, bool) or not isinstance(max_words, int) or max_words < 1:
            raise ConfigError(f"max_words must be an integer >= 1, got {max_words!r}")
        if isinstance(sentences, str):
            raise QueryError("encode_batch expects a sequence of sentences, not a single string")
        if len(sentences) == 0:
            raise QueryError("encode_batch got an empty batch of sentences")
        # One encode per sentence rather than Tokenizer.encode_batch: no Rust thread pool, so no
        # fork warning in DataLoader workers; batches here are ~100 short sentences.
        return self.pad([self.encode(s)[:max_words] or [self.unk_id] for s in sentences])

    def pad(self, rows: Sequence[Sequence[int]]) -> tuple[torch.Tensor, torch.Tensor]:
        """Word-id rows (each non-empty) -> ids ``(B, L)`` int64 padded with ``pad_id``, mask ``(B, L)`` bool."""
        import torch

        if not rows or any(len(r) == 0 for r in rows):
            raise QueryError("pad needs at least one row, and a word id in every row")
        length = max(len(r) for r in rows)
        ids = torch.full((len(rows), length), self.pad_id, dtype=torch.long)
        mask = torch.zeros((len(rows), length), dtype=torch.bool)
        for b, row in enumerate(rows):
            ids[b, : len(row)] = torch.tensor(row, dtype=torch.long)
            mask[b, : len(row)] = True
        return ids, mask

    def id_to_word(self, i: int) -> str:
        """The vocabulary entry of id ``i``; IndexError when out of range."""
        word = self._tok.id_to_token(int(i)) if 0 <= int(i) < self.vocab_size else None
        if word is None:
            raise IndexError(f"token id {i} is out of range for a vocabulary of {self.vocab_size}")
        return word

    def word_to_id(self, w: str) -> int:
        """The id of an (already normalized) word; ``unk_id`` when it is not in the vocabulary."""
        i = self._tok.token_to_id(w)
        return self.unk_id if i is None else i

    def __contains__(self, w: object) -> bool:
        return isinstance(w, str) and self._tok.token_to_id(w) is not None

    def __len__(self) -> int:
        return self.vocab_size

    def __repr__(self) -> str:
        return f"WordTokenizer(style={self._style!r}, vocab_size={self.vocab_size})"


def _check_sentence(sentence: object) -> None:
    if not isinstance(sentence, str):
        raise QueryError(f"a sentence must be a str, got {type(sentence).__name__}")
    try:
        sentence.encode("utf-8")
    except UnicodeEncodeError as e:  # a lone surrogate: from the API, or an invalid UTF-8 byte in argv
        bad = sentence[e.start:e.end]
        raise QueryError(f"query {sentence[:60]!r} is not valid Unicode: {bad!r} at character {e.start} is a lone "
                         "surrogate (an invalid UTF-8 byte on a command line becomes one)") from None


def _guarded(run, sentence: str):
    """``run()``, with the Rust side's failures as :class:`QueryError`: a tokenizer.json's regex can
    panic (onig's retry limit), and pyo3's PanicException derives from BaseException, which
    ``except Exception`` does not catch."""
    try:
        return run()
    except Exception as exc:  # noqa: BLE001 - tokenizers raises bare Exceptions
        raise QueryError(f"the tokenizer failed on query {sentence[:60]!r}: {exc}") from None
    except BaseException as exc:
        if type(exc).__name__ != "PanicException":
            raise
        raise QueryError(f"the tokenizer (tokenizer.json) panicked on query {sentence[:60]!r}: {exc}; its "
                         "normalizer or pre-tokenizer rule cannot handle this text") from None


def _words(tok: Tokenizer, sentence: str) -> list[str]:
    text = tok.normalizer.normalize_str(sentence) if tok.normalizer is not None else sentence
    if tok.pre_tokenizer is None:
        return text.split()
    return [w for w, _ in tok.pre_tokenizer.pre_tokenize_str(text)]
