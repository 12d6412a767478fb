"""Each registered extractor's preset (the ``VideoConfig`` fields its weights expect), by name.

A table filled by :func:`cmagrounding.video.registry.register` (each family registers itself when
imported) and read by ``VideoConfig.for_extractor``: the config reads presets without importing
the registry or the families, whose builders take a ``VideoConfig`` (no import cycle).
"""

from __future__ import annotations

from typing import Any, Collection

from cmagrounding.errors import ConfigError

PRESETS: dict[str, dict[str, Any]] = {}


def check_name(name: str, known: Collection[str]) -> None:
    """``ConfigError`` for "precomputed" (no extractor runs) and names not in ``known``."""
    if name == "precomputed":
        raise ConfigError(
            "extractor 'precomputed' means the features come from elsewhere: no extractor can run on a video; "
            "pass features (VideoFeatures or an array) instead of a video file"
        )
    if name not in known:
        raise ConfigError(f"unknown extractor {name!r}; registered: {', '.join(sorted(known))}")


def preset(name: str) -> dict[str, Any]:
    """The ``VideoConfig`` fields of extractor ``name``'s preset (a fresh dict, ``extractor`` included)."""
    check_name(name, PRESETS)
    return {"extractor": name, **PRESETS[name]}
