"""Checks on query sentences at the facade's boundary (STYLE.md, principle 7).

What happens to each kind of unusual query (docs/grounder.md lists the same):

* not a string (or a list holding a non-string) -> :class:`QueryTypeError`;
* empty, whitespace only, or no word left after normalization (``"?!"``) -> :class:`QueryError`;
* an empty list of queries -> :class:`QueryError`;
* more words than the model's ``max_words`` -> the first ``max_words`` are kept and a
  :class:`QueryWarning` names the dropped words;
* every word unknown to the vocabulary -> a :class:`QueryWarning` saying the model sees only
  ``<UNK>`` tokens (its answer then depends on the query's length alone); some words unknown ->
  logged at INFO and listed on the :class:`~cmagrounding.outputs.Moment`.
"""

from __future__ import annotations

import logging
import warnings
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Sequence

from cmagrounding.errors import QueryError, QueryTypeError, QueryWarning

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
            raise QueryTypeError(f"{where} must be a str, got {type(q).__name__}: {q!r}")
        if not q.strip():
            raise QueryError(f"{where} is empty or whitespace only ({q!r}); describe the moment in words")
    return queries, single


def prepare_query(tokenizer: WordTokenizer, text: str, max_words: int) -> PreparedQuery:
    """Normalize, truncate and look up one query, warning as the module docstring says."""
    words = tokenizer.words(text)
    if not words:
        raise QueryError(
            f"query {text!r} has no words after the tokenizer's normalization ({tokenizer.style!r} style); "
            "describe the moment in words"
        )
    unknown = tuple(w for w in words if w not in tokenizer)
    kept = words[:max_words]
    truncated = len(words) > max_words
    if truncated:
        warnings.warn(
            f"query {text!r} has {len(words)} words; the model reads at most {max_words}, so "
            f"{' '.join(words[max_words:])!r} is dropped",
            QueryWarning,
            stacklevel=user_stacklevel(),
        )
    tokens = tuple(w if w in tokenizer else tokenizer.UNK for w in kept)
    if all(t == tokenizer.UNK for t in tokens):
        warnings.warn(
            f"no word of query {text!r} is in the model's vocabulary of {tokenizer.vocab_size} words; "
            f"the model sees only {' '.join(tokens)} and its answer carries no meaning from the query",
            QueryWarning,
            stacklevel=user_stacklevel(),
        )
    elif unknown:
        _logger.info("query %r: unknown word(s) %s are read as %s", text, list(unknown), tokenizer.UNK)
    return PreparedQuery(text=text, tokens=tokens, unknown_words=unknown, truncated=truncated)


def user_stacklevel() -> int:
    """The stacklevel of the first frame outside this package, so a warning points at the caller."""
    import sys
    from pathlib import Path

    package = str(Path(__file__).resolve().parent)
    frame, level = sys._getframe(1), 1
    while frame is not None and str(Path(frame.f_code.co_filename).resolve()).startswith(package):
        frame, level = frame.f_back, level + 1
    return level


def encode_queries(
    tokenizer: WordTokenizer, queries: Sequence[str], max_words: int
) -> tuple[torch.Tensor, torch.Tensor, list[PreparedQuery]]:
    """Check and encode a batch: ``(ids (B, L) int64, mask (B, L) bool, prepared)``."""
    prepared = [prepare_query(tokenizer, q, max_words) for q in queries]
    ids, mask = tokenizer.encode_batch(list(queries), max_words)
    return ids, mask, prepared
