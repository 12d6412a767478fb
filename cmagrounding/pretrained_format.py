"""The pretrained folder format: file names, ``config.json``'s schema, and strict checks.

A pretrained model is a folder (docs/pretrained-format.md)::

    config.json        {"format_version": 1, "model": CMAConfig, "video": VideoConfig, "text": {...}, ...}
    model.safetensors  the CMA network's state dict, word embeddings included
                       (and the extractor's, under "extractor.", when it is embedded)
    tokenizer.json     the word tokenizer (a `tokenizers` file)
    README.md          the model card

Nothing is unpickled: JSON and safetensors only. Every check here works on plain dicts and
shapes, so it raises the same errors whatever the network looks like:
:class:`MissingFileError`, :class:`FormatVersionError`, :class:`KeyMismatchError`,
:class:`ShapeMismatchError`, :class:`ExtractorMismatchError` (all :class:`CheckpointError`).
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any, Iterable, Mapping, Sequence

from cmagrounding.errors import (
    CheckpointError,
    ExtractorMismatchError,
    FormatVersionError,
    KeyMismatchError,
    MissingFileError,
    ShapeMismatchError,
)

FORMAT_VERSION = 1
SUPPORTED_FORMAT_VERSIONS = (1,)

CONFIG_FILE = "config.json"
WEIGHTS_FILE = "model.safetensors"
TOKENIZER_FILE = "tokenizer.json"
CARD_FILE = "README.md"
REQUIRED_FILES = (CONFIG_FILE, WEIGHTS_FILE, TOKENIZER_FILE)  # README.md is documentation only

# state-dict prefix of an extractor stored inside model.safetensors (weights="embedded")
EXTRACTOR_PREFIX = "extractor."

_REQUIRED_SECTIONS = ("model", "video", "text")

# Settings whose change makes features different (numbers, not just speed). Used when the video
# config has no compatibility_key(); the video side's own key wins when it exists.
_FALLBACK_COMPAT_FIELDS = (
    "extractor", "scheme", "fps", "clip_len", "stride", "num_clips", "resize", "crop",
    "weights", "weights_sha256", "feature_dim",
)


def check_files(folder: str | os.PathLike[str], required: Iterable[str] = REQUIRED_FILES) -> Path:
    """Raise :class:`MissingFileError` naming every required file absent from ``folder``."""
    folder = Path(folder)
    missing = [name for name in required if not (folder / name).is_file()]
    if missing:
        present = sorted(p.name for p in folder.iterdir()) if folder.is_dir() else []
        raise MissingFileError(
            f"pretrained folder {str(folder)!r} lacks {', '.join(missing)} "
            f"(it holds: {', '.join(present) or 'nothing'}); a complete folder has {', '.join(REQUIRED_FILES)}"
        )
    return folder


def read_config(folder: str | os.PathLike[str]) -> dict[str, Any]:
    """Read and validate ``config.json``: valid JSON, a known format version, the required sections."""
    path = Path(folder) / CONFIG_FILE
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError as e:
        raise MissingFileError(f"{str(path)!r} does not exist") from e
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise CheckpointError(f"{str(path)!r} is not valid JSON: {e}") from e
    if not isinstance(data, dict):
        raise CheckpointError(f"{str(path)!r} must hold a JSON object, found {type(data).__name__}")
    version = data.get("format_version")
    if version is None:
        raise FormatVersionError(f"{str(path)!r} has no 'format_version'; is it a cmagrounding model folder?")
    if version not in SUPPORTED_FORMAT_VERSIONS:
        raise FormatVersionError(
            f"{str(path)!r} has format_version {version!r}; this cmagrounding reads "
            f"{', '.join(map(str, SUPPORTED_FORMAT_VERSIONS))} (a newer library may have written it)"
        )
    missing = [s for s in _REQUIRED_SECTIONS if not isinstance(data.get(s), dict)]
    if missing:
        raise CheckpointError(f"{str(path)!r} lacks the section(s) {', '.join(missing)} (objects expected)")
    return data


def write_json(path: str | os.PathLike[str], data: Mapping[str, Any]) -> None:
    """Write ``data`` as indented, key-ordered JSON (stable diffs between saves)."""
    Path(path).write_text(json.dumps(data, indent=2, sort_keys=False) + "\n", encoding="utf-8")


def check_state_dict(
    expected: Mapping[str, Sequence[int]],
    found: Mapping[str, Sequence[int]],
    *,
    source: str = WEIGHTS_FILE,
    limit: int = 10,
) -> None:
    """Compare tensor names and shapes; raise the error that says what differs.

    ``expected`` and ``found`` map tensor names to shapes. Missing or unexpected names ->
    :class:`KeyMismatchError` (both lists in one message, so a renamed tensor shows as its old and
    new name); same names, other shapes -> :class:`ShapeMismatchError` naming each tensor.
    """
    missing = sorted(set(expected) - set(found))
    unexpected = sorted(set(found) - set(expected))
    if missing or unexpected:
        parts = []
        if missing:
            parts.append(f"missing {len(missing)} tensor(s): {_some(missing, limit)}")
        if unexpected:
            parts.append(f"unexpected {len(unexpected)} tensor(s): {_some(unexpected, limit)}")
        raise KeyMismatchError(
            f"{source} does not match the network its config.json describes: " + "; ".join(parts),
            missing=missing,
            unexpected=unexpected,
        )
    wrong = [
        f"{k}: expected {tuple(expected[k])}, found {tuple(found[k])}"
        for k in expected
        if tuple(expected[k]) != tuple(found[k])
    ]
    if wrong:
        raise ShapeMismatchError(
            f"{source} has {len(wrong)} tensor(s) of the wrong shape for the network its config.json "
            f"describes: {_some(wrong, limit)}"
        )


def safetensors_shapes(path: str | os.PathLike[str]) -> dict[str, tuple[int, ...]]:
    """Tensor names -> shapes of a safetensors file, read from its header (no tensor data loaded)."""
    from safetensors import safe_open

    try:
        with safe_open(os.fspath(path), framework="pt") as f:
            return {k: tuple(f.get_slice(k).get_shape()) for k in f.keys()}
    except FileNotFoundError as e:
        raise MissingFileError(f"{str(path)!r} does not exist") from e
    except Exception as e:  # safetensors raises its own SafetensorError for a corrupt header
        raise CheckpointError(f"{str(path)!r} is not a readable safetensors file: {e}") from e


def load_tensors(path: str | os.PathLike[str]) -> dict[str, Any]:
    """All tensors of a safetensors file, on CPU."""
    from safetensors.torch import load_file

    try:
        return load_file(os.fspath(path), device="cpu")
    except FileNotFoundError as e:
        raise MissingFileError(f"{str(path)!r} does not exist") from e
    except Exception as e:
        raise CheckpointError(f"{str(path)!r} is not a readable safetensors file: {e}") from e


def save_tensors(path: str | os.PathLike[str], tensors: Mapping[str, Any], metadata: Mapping[str, str] | None = None) -> None:
    """Save tensors to safetensors; each is detached, moved to CPU, cloned (no shared storage)."""
    from safetensors.torch import save_file

    clean = {k: v.detach().to("cpu").clone().contiguous() for k, v in tensors.items()}
    save_file(clean, os.fspath(path), metadata={"format": "pt", **dict(metadata or {})})


def compatibility_key(video_config: Any) -> dict[str, Any]:
    """The settings of a video config that change the features' values (not only their speed)."""
    key_fn = getattr(video_config, "compatibility_key", None)
    if callable(key_fn):
        return dict(key_fn())
    if isinstance(video_config, Mapping):
        d = dict(video_config)
    else:
        d = dict(video_config.to_dict())
    return {k: d.get(k) for k in _FALLBACK_COMPAT_FIELDS if k in d}


def check_extractor(expected: Any, found: Any, *, expected_what: str, found_what: str) -> None:
    """Raise :class:`ExtractorMismatchError` when two video configs give different features.

    ``expected``/``found`` are video configs (or their ``compatibility_key()`` dicts); the message
    names every differing setting with both values.
    """
    a = dict(expected) if isinstance(expected, Mapping) else compatibility_key(expected)
    b = dict(found) if isinstance(found, Mapping) else compatibility_key(found)
    diffs = [f"{k}: {a.get(k)!r} vs {b.get(k)!r}" for k in sorted(set(a) | set(b)) if a.get(k) != b.get(k)]
    if diffs:
        raise ExtractorMismatchError(
            f"{found_what} differ(s) from {expected_what} in the feature extraction settings: "
            + "; ".join(diffs)
            + ". Features must come from the extractor and settings the model was trained with."
        )


def _some(items: Sequence[str], limit: int) -> str:
    shown = ", ".join(items[:limit])
    return shown + (f", ... ({len(items) - limit} more)" if len(items) > limit else "")
