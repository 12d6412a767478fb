"""Save and load a module's weights as safetensors, strictly (nothing is unpickled)."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

import torch
from safetensors.torch import load_file, save_file
from torch import nn

from cmagrounding.errors import CheckpointError


def save_weights(module: nn.Module, path: str | Path, metadata: dict[str, str] | None = None) -> None:
    """Write ``module.state_dict()`` to ``path`` atomically (a temp file renamed into place)."""
    path = Path(path)
    state = {k: v.detach().contiguous().cpu() for k, v in module.state_dict().items()}
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=path.name, suffix=".tmp")
    os.close(fd)
    try:
        save_file(state, tmp, metadata=metadata)
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


def check_state_dict(module: nn.Module, state: dict[str, torch.Tensor], source: str) -> None:
    """Raise CheckpointError naming missing / unexpected keys and shape mismatches."""
    expected = module.state_dict()
    missing = sorted(set(expected) - set(state))
    unexpected = sorted(set(state) - set(expected))
    shapes = [
        f"{k}: file {tuple(state[k].shape)} vs model {tuple(expected[k].shape)}"
        for k in sorted(set(expected) & set(state))
        if tuple(state[k].shape) != tuple(expected[k].shape)
    ]
    problems = []
    if missing:
        problems.append(f"missing keys {missing}")
    if unexpected:
        problems.append(f"unexpected keys {unexpected}")
    if shapes:
        problems.append("wrong shapes " + "; ".join(shapes))
    if problems:
        raise CheckpointError(f"{source} does not match the model: " + "; ".join(problems))


def load_weights(module: nn.Module, path: str | Path) -> None:
    """Load safetensors weights into ``module`` strictly; errors name the file and the keys."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"weight file not found: {path}")
    try:
        state = load_file(str(path))
    except Exception as e:  # safetensors raises its own error types for corrupt headers
        raise CheckpointError(f"cannot read safetensors file {path}: {e}") from e
    check_state_dict(module, state, str(path))
    module.load_state_dict(state, strict=True)
