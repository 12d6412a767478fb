"""Checks on query sentences at the facade's boundary (STYLE.md, principle 7).

What happens to each kind of unusual query (docs/grounder.md lists the same):

* not a string (or a list holding a non-string) -> :class:`QueryTypeError`;
* empty, whitespace only, or no word left after normalization (``"?!"``) -> :class:`QueryError`;
* an empty list of queries -> :class:`QueryError`;
* more words than the model's ``max_words`` -> the first ``max_words`` are kept and a
  :class:`QueryWarning` names the dropped words;
* every word unknown to the vocabulary -> a :class:`QueryWarning` saying the model sees only
  ``<UNK>`` tokens (its answer then depends on the query's length alone); most of the words the
  model reads (more than half) unknown -> a :class:`QueryWarning` naming them and saying where
  the model's vocabulary comes from; fewer -> logged at INFO. Unknown words are always listed
  on the :class:`~cmagrounding.outputs.Moment`.

Each query is normalized and looked up once (:func:`prepare_query`); the network's word ids are
built from that result (:func:`pad_queries`), so the checks and the ids cannot disagree. Long
queries and word lists are quoted shortened (:func:`cmagrounding.errors.shorten`).
"""

from __future__ import annotations

import logging
import warnings
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Sequence

from cmagrounding.errors import QUOTE_WORDS, QueryError, QueryTypeError, QueryWarning, shorten, shorten_list

if TYPE_CHECKING:  # pragma: no cover
    import torch

    from cmagrounding.text.tokenizer import WordTokenizer

_logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class PreparedQuery:
    """A query as the network sees it."""

    text: str
    tokens: tuple[str, ...]  # normalized words after truncation; unknown ones as the UNK token
    unknown_words: tuple[str, ...]  # normalized words missing from the vocabulary (before truncation)
    truncated: bool
    ids: tuple[int, ...] = ()  # the tokens' vocabulary ids, what the network reads


def as_query_list(query: Any) -> tuple[list[str], bool]:
    """``(queries, single)``: a str becomes a one-item list with ``single=True``.

    Raises :class:`QueryTypeError` for anything but a str or a list/tuple of str, and
    :class:`QueryError` for an empty list or an empty / whitespace-only sentence.
    """
    if isinstance(query, str):
        queries, single = [query], True
    elif isinstance(query, (list, tuple)):
        queries, single = list(query), False
        if not queries:
            raise QueryError("got an empty list of queries; pass at least one sentence")
    else:
        raise QueryTypeError(f"a query must be a str or a list of str, got {type(query).__name__}")
    for i, q in enumerate(queries):
        where = "the query" if single else f"query {i}"
        if not isinstance(q, str):
            raise QueryTypeError(f"{where} must be a str, got {type(q).__name__}: {shorten(q)}")
        if not q.strip():
            raise QueryError(f"{where} is empty or whitespace only ({q!r}); describe the moment in words")
    return queries, single


def prepare_query(tokenizer: WordTokenizer, text: str, max_words: int, vocabulary: str = "") -> PreparedQuery:
    """Normalize, truncate and look up one query, warning as the module docstring says.

    ``vocabulary`` (the model card's note on where its vocabulary comes from) is quoted in the
    warning about unknown words.
    """
    words = tokenizer.words(text)
    if not words:
        raise QueryError(
            f"query {shorten(text)} has no words after the tokenizer's normalization ({tokenizer.style!r} style); "
            "describe the moment in words"
        )
    unknown = tuple(w for w in words if w not in tokenizer)
    kept = words[:max_words]
    truncated = len(words) > max_words
    if truncated:
        warnings.warn(
            f"query {shorten(text)} has {len(words)} words; the model reads at most {max_words}, so "
            f"{shorten(' '.join(words[max_words:]))} is dropped",
            QueryWarning,
            stacklevel=user_stacklevel(),
        )
    tokens = tuple(w if w in tokenizer else tokenizer.UNK for w in kept)
    unseen = [w for w in kept if w not in tokenizer]
    where = f" ({vocabulary})" if vocabulary else ""
    if len(unseen) == len(tokens):
        warnings.warn(
            f"no word of query {shorten(text)} is in the model's vocabulary of {tokenizer.vocab_size} words{where}; "
            f"the model sees only {_tokens(tokens)} and its answer carries no meaning from the query",
            QueryWarning,
            stacklevel=user_stacklevel(),
        )
    elif 2 * len(unseen) > len(tokens):
        warnings.warn(
            f"{len(unseen)} of the {len(tokens)} words the model reads of query {shorten(text)} are not in its "
            f"vocabulary of {tokenizer.vocab_size} words{where}: {shorten_list(unseen)}; they are read as "
            f"{tokenizer.UNK}, so its answer carries little meaning from the query",
            QueryWarning,
            stacklevel=user_stacklevel(),
        )
    elif unknown:
        _logger.info("query %s: unknown word(s) %s are read as %s", shorten(text), shorten_list(unknown), tokenizer.UNK)
    ids = tuple(tokenizer.word_to_id(t) for t in tokens)
    return PreparedQuery(text=text, tokens=tokens, unknown_words=unknown, truncated=truncated, ids=ids)


def _tokens(tokens: Sequence[str]) -> str:
    """The tokens the model sees, for a message: all of them when few, else their count."""
    return " ".join(tokens) if len(tokens) <= QUOTE_WORDS else f"{len(tokens)} tokens: {shorten(' '.join(tokens))}"


def user_stacklevel() -> int:
    """The stacklevel of the first frame outside this package, so a warning points at the caller."""
    import sys
    from pathlib import Path

    package = str(Path(__file__).resolve().parent)
    frame, level = sys._getframe(1), 1
    while frame is not None and str(Path(frame.f_code.co_filename).resolve()).startswith(package):
        frame, level = frame.f_back, level + 1
    return level


def pad_queries(tokenizer: WordTokenizer, prepared: Sequence[PreparedQuery]) -> tuple[torch.Tensor, torch.Tensor]:
    """The network's word input from prepared queries: ``(ids (B, L) int64, mask (B, L) bool)``."""
    return tokenizer.pad([q.ids for q in prepared])


def encode_queries(
    tokenizer: WordTokenizer, queries: Sequence[str], max_words: int, vocabulary: str = ""
) -> tuple[torch.Tensor, torch.Tensor, list[PreparedQuery]]:
    """Check and encode a batch: ``(ids (B, L) int64, mask (B, L) bool, prepared)``."""
    prepared = [prepare_query(tokenizer, q, max_words, vocabulary) for q in queries]
    ids, mask = pad_queries(tokenizer, prepared)
    return ids, mask, prepared
