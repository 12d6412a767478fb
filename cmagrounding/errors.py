"""Exceptions raised at the library's boundaries. Each names the file or value and what is wrong.

Messages quote user values through :func:`shorten` (a long query or list is shown by its first
words or items and its count, never in full).
"""

from __future__ import annotations

from typing import Any, Iterable


class CMAGroundingError(Exception):
    """Base class of every error this library raises on purpose."""


class ConfigError(CMAGroundingError, ValueError):
    """A configuration value is invalid or inconsistent with another."""


class VideoError(CMAGroundingError):
    """A video file cannot be used. The message names the file and the problem."""


class VideoNotFoundError(VideoError, FileNotFoundError):
    """The video file does not exist."""


class VideoIsFolderError(VideoError, IsADirectoryError):
    """A video path names a folder, not a video file."""


class VideoDecodeError(VideoError):
    """The file is not a readable video: not a container, no video stream, zero frames, truncated."""


class VideoTooShortError(VideoError):
    """The video is shorter than one clip of the extractor."""


class VideoNoStreamError(VideoDecodeError):
    """The file is a readable container without a video stream (e.g. audio only)."""


class VideoEmptyError(VideoDecodeError):
    """The video stream decodes to zero frames."""


class VideoTruncatedError(VideoDecodeError):
    """The file ends (or stops decoding) well before the duration its header announces."""


class VideoDamagedError(VideoDecodeError):
    """Too many frames inside the video fail to decode (corrupt data) for it to be used."""


class MissingDependencyError(CMAGroundingError, ImportError):
    """An optional dependency is not installed; the message names the ``pip install`` that fixes it."""


class QueryError(CMAGroundingError, ValueError):
    """A query sentence is empty, not a string, or otherwise unusable."""


class CheckpointError(CMAGroundingError):
    """A pretrained folder or weight file is missing, incomplete or does not match its config."""


class ExtractorMismatchError(CheckpointError):
    """Features come from another extractor or other extraction settings than the model's."""


class WeightsError(CheckpointError):
    """Extractor weights are missing, unconvertible, or do not match their recorded checksum."""


class DatasetError(CMAGroundingError, ValueError):
    """An annotation or feature file is malformed."""


class NoGroundTruthError(DatasetError):
    """A split without ground-truth windows (QVHighlights test) was asked to be scored."""


class FeaturesMissingError(DatasetError):
    """The features do not cover every annotated video; the message lists the first missing ids and the count."""


# --- pretrained folders and queries (added by the Grounder facade; see docs/pretrained-format.md) ---


class PretrainedNotFoundError(CheckpointError, FileNotFoundError):
    """A model name is neither a local folder nor a hub id that can be fetched (or is cached offline)."""


class MissingFileError(CheckpointError, FileNotFoundError):
    """A pretrained folder lacks one of its files (config.json, model.safetensors, tokenizer.json)."""


class FormatVersionError(CheckpointError):
    """config.json declares a format version this library does not know."""


class KeyMismatchError(CheckpointError):
    """model.safetensors has missing and/or unexpected tensor names; ``missing``/``unexpected`` list them."""

    def __init__(self, message: str, missing: list[str] | None = None, unexpected: list[str] | None = None):
        super().__init__(message)
        self.missing = list(missing or [])
        self.unexpected = list(unexpected or [])


class ShapeMismatchError(CheckpointError):
    """A tensor in model.safetensors has another shape than the config's network expects."""


class QueryTypeError(QueryError, TypeError):
    """A query is not a string (or a list of strings)."""


class QueryWarning(UserWarning):
    """A query was changed before the model saw it: truncated, or mostly (> half) unknown words."""


class ShortVideoWarning(UserWarning):
    """A video is shorter than one clip of the extractor: its only clip is padded with the last frame."""


# --- untrusted files and outputs (docs/security.md) ---


class OutputPathError(CMAGroundingError, ValueError):
    """An output path would replace an input of the same command, or cannot be written there."""


class WeightsValueError(CheckpointError):
    """Stored weights hold NaN / infinity, or a dtype other than the one the network records."""


class LimitError(CheckpointError, ValueError):
    """A pretrained folder's config.json asks for a size past its documented bound, or of the wrong
    type (docs/security.md); raised before anything is allocated."""


class NonFiniteError(CMAGroundingError, ValueError):
    """A number that must be finite (a prediction, an output value) is NaN or infinite."""


class CacheTrustError(CMAGroundingError):
    """A cache folder for executed artifacts is not private to this user (group/world-writable or
    owned by someone else); nothing is loaded from it or written into it."""


class CacheTrustWarning(UserWarning):
    """A cached artifact that would be executed or deserialized was not used: it is not provably
    this user's own (folder not private, owner or checksum wrong); the warning names the file."""


class MachineRecordWarning(UserWarning):
    """A figure recorded for this machine in the cache (a precision probe, runtime speeds) was
    ignored: the file is not a record as the library writes it; the warning names it."""


# --- predictions files (cmagrounding.training.predictions; see docs/evaluation.md) ---


class PredictionsError(DatasetError):
    """A predictions file has a bad, duplicate or unmatched row, or misses annotations; names file:line."""


# --- JSON text that decodes but must not be used (cmagrounding._io.jsonl_rows) ---


class JSONLimitError(DatasetError):
    """A JSON Lines row is valid JSON that is refused: a duplicated key, a huge number, deep nesting."""


class JSONDuplicateKeyError(JSONLimitError):
    """An object in a row names the same key twice (JSON keeps the last silently; we refuse)."""


class JSONNumberTooLargeError(JSONLimitError):
    """A row holds an integer of more digits than any time, score or id needs."""


class JSONTooDeepError(JSONLimitError):
    """A row nests arrays or objects deeper than the decoder's recursion allows."""


# --- quoting user values in messages ---

#: how many words of a text, or items of a list, a message quotes before it says how many there are
QUOTE_WORDS = 12
QUOTE_ITEMS = 10


def shorten(text: Any, words: int = QUOTE_WORDS, chars: int = 160) -> str:
    """``repr`` of ``text`` for a message, shortened: ``'first words ...' (500 words)``.

    A text of at most ``words`` words and ``chars`` characters is quoted whole (exactly its
    ``repr``); anything that is not a str is quoted by its ``repr`` cut to ``chars`` characters.
    """
    if not isinstance(text, str):
        r = repr(text)
        return r if len(r) <= chars else r[: chars - 5] + " ...>"
    split = text.split()
    if len(split) <= words and len(text) <= chars:
        return repr(text)
    head = " ".join(split[:words])
    if len(head) > chars:
        head = head[:chars]
    return f"{head + ' ...'!r} ({len(split)} words, {len(text)} characters)"


def shorten_list(items: Iterable[Any], limit: int = QUOTE_ITEMS) -> str:
    """``a, b, c, ... (n more)``: the first ``limit`` items of a list for a message."""
    items = [str(i) for i in items]
    shown = ", ".join(items[:limit])
    return shown + (f", ... ({len(items) - limit} more)" if len(items) > limit else "")
