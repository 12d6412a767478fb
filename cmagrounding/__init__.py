"""cmagrounding: language-guided video temporal grounding with Cross-Modality Attention.

    >>> from cmagrounding import Grounder
    >>> grounder = Grounder.from_pretrained("path/to/folder-or-hub-id")
    >>> start, end = grounder.localize("video.mp4", "person eating leftovers")  # seconds

The public names below are imported lazily so that ``import cmagrounding`` stays light:
training code, plotting and optional backbones load only when used.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from cmagrounding._version import __version__

# public name -> module that defines it
_LAZY = {
    "Grounder": "cmagrounding.grounder",
    "Moment": "cmagrounding.outputs",
    "ModelCard": "cmagrounding.model_card",
    "VideoFeatures": "cmagrounding.video.features",
    "CMAConfig": "cmagrounding.model.config",
    "CMANetwork": "cmagrounding.model.network",
    "CMAOutput": "cmagrounding.model.network",
    "VideoConfig": "cmagrounding.video.config",
}

__all__ = ["__version__", *_LAZY]

if TYPE_CHECKING:  # pragma: no cover
    from cmagrounding.grounder import Grounder
    from cmagrounding.model.config import CMAConfig
    from cmagrounding.model.network import CMANetwork, CMAOutput
    from cmagrounding.model_card import ModelCard
    from cmagrounding.outputs import Moment
    from cmagrounding.video.config import VideoConfig
    from cmagrounding.video.features import VideoFeatures


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'cmagrounding' has no attribute {name!r}")
    return getattr(importlib.import_module(module), name)


def __dir__() -> list[str]:
    return sorted(__all__)
