"""Exceptions raised at the library's boundaries. Each names the file or value and what is wrong."""

from __future__ import annotations


class CMAGroundingError(Exception):
    """Base class of every error this library raises on purpose."""


class ConfigError(CMAGroundingError, ValueError):
    """A configuration value is invalid or inconsistent with another."""


class VideoError(CMAGroundingError):
    """A video file cannot be used. The message names the file and the problem."""


class VideoNotFoundError(VideoError, FileNotFoundError):
    """The video file does not exist."""


class VideoDecodeError(VideoError):
    """The file is not a readable video: not a container, no video stream, zero frames, truncated."""


class VideoTooShortError(VideoError):
    """The video is shorter than one clip of the extractor."""


class QueryError(CMAGroundingError, ValueError):
    """A query sentence is empty, not a string, or otherwise unusable."""


class CheckpointError(CMAGroundingError):
    """A pretrained folder or weight file is missing, incomplete or does not match its config."""


class ExtractorMismatchError(CheckpointError):
    """Features come from another extractor or other extraction settings than the model's."""


class DatasetError(CMAGroundingError, ValueError):
    """An annotation or feature file is malformed."""
