"""Resumable training checkpoints: safetensors for tensors, JSON for the rest; nothing is pickled.

Layout under ``<output>/checkpoints/``::

    epoch-0007/model.safetensors       the network after epoch 7
    epoch-0007/optimizer.safetensors   the optimizer's tensors (Adam moments, steps)
    epoch-0007/best_model.safetensors  the best network on validation so far
    epoch-0007/state.json              epoch, optimizer hyper-parameters, grad-scaler, best score, history
    latest                             the name of the newest complete checkpoint ("epoch-0007")

Atomicity: a checkpoint is written into a temporary folder that is renamed to ``epoch-XXXX`` once
complete, and only then does ``latest`` (replaced with ``os.replace``, itself atomic) point to it.
A crash at any moment leaves ``latest`` naming a complete checkpoint. Older checkpoints are
removed after the pointer moved.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from cmagrounding._io import load_safetensors, save_safetensors, write_text_atomic
from cmagrounding._strict_json import loads as strict_loads
from cmagrounding.errors import CheckpointError

_logger = logging.getLogger(__name__)

__all__ = ["TrainingState", "save_checkpoint", "load_checkpoint", "latest_checkpoint"]

MODEL_FILE = "model.safetensors"
OPTIMIZER_FILE = "optimizer.safetensors"
BEST_FILE = "best_model.safetensors"
STATE_FILE = "state.json"
POINTER = "latest"


@dataclass
class TrainingState:
    """What a checkpoint restores: weights, optimizer, scaler and bookkeeping."""

    epoch: int  # epochs completed
    model: dict[str, torch.Tensor]
    best_model: dict[str, torch.Tensor]
    optimizer: dict[str, Any]  # torch optimizer state_dict
    scaler: dict[str, Any] | None
    info: dict[str, Any]  # best score/epoch, history, configs (JSON)


def _split_optimizer(sd: dict[str, Any]) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    """Optimizer state_dict -> (flat tensors ``state.<param>.<name>``, JSON rest)."""
    tensors: dict[str, torch.Tensor] = {}
    scalars: dict[str, dict[str, Any]] = {}
    for pid, st in sd["state"].items():
        for name, value in st.items():
            if torch.is_tensor(value):
                tensors[f"state.{pid}.{name}"] = value.detach().to("cpu").contiguous()
            else:
                scalars.setdefault(str(pid), {})[name] = value
    return tensors, {"param_groups": sd["param_groups"], "scalars": scalars}


def _join_optimizer(tensors: dict[str, torch.Tensor], meta: dict[str, Any]) -> dict[str, Any]:
    state: dict[int, dict[str, Any]] = {}
    for key, value in tensors.items():
        _, pid, name = key.split(".", 2)
        state.setdefault(int(pid), {})[name] = value
    for pid, values in meta.get("scalars", {}).items():
        state.setdefault(int(pid), {}).update(values)
    return {"state": state, "param_groups": meta["param_groups"]}


def save_checkpoint(folder: str | Path, state: TrainingState, keep: int = 1) -> Path:
    """Write ``state`` as ``<folder>/epoch-XXXX`` atomically, point ``latest`` at it, prune old ones."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    name = f"epoch-{state.epoch:04d}"
    final = folder / name
    tmp = folder / f".{name}.tmp{os.getpid()}"
    if tmp.exists():
        shutil.rmtree(tmp)
    tmp.mkdir()
    opt_tensors, opt_meta = _split_optimizer(state.optimizer)
    save_safetensors(tmp / MODEL_FILE, state.model)  # detached, on the CPU, contiguous
    save_safetensors(tmp / BEST_FILE, state.best_model)
    save_safetensors(tmp / OPTIMIZER_FILE, opt_tensors)
    info = {"epoch": state.epoch, "optimizer": opt_meta, "scaler": state.scaler, **state.info}
    (tmp / STATE_FILE).write_text(  # inside the temporary folder: its rename below is the atomic step
        json.dumps(info, indent=2, sort_keys=True) + "\n", encoding="utf-8")
    for f in tmp.iterdir():  # make the files durable before the rename publishes them
        with open(f, "rb") as fh:
            os.fsync(fh.fileno())
    if final.exists():  # the same epoch written again (a rerun); replace it
        shutil.rmtree(final)
    os.replace(tmp, final)
    write_text_atomic(folder / POINTER, name + "\n")
    done = sorted(p for p in folder.glob("epoch-*") if p.is_dir() and p.name != name)
    for old in done[: max(0, len(done) - (keep - 1))]:
        shutil.rmtree(old, ignore_errors=True)
    _logger.debug("checkpoint %s written", final)
    return final


def latest_checkpoint(folder: str | Path) -> Path | None:
    """The newest complete checkpoint under ``folder`` (``None`` when there is none)."""
    pointer = Path(folder) / POINTER
    if not pointer.is_file():
        return None
    path = Path(folder) / pointer.read_text(encoding="utf-8").strip()
    if not (path / STATE_FILE).is_file():
        raise CheckpointError(f"{pointer} names {path.name}, which is not a complete checkpoint")
    return path


def load_checkpoint(path: str | Path) -> TrainingState:
    """Read a checkpoint folder written by :func:`save_checkpoint`."""
    path = Path(path)
    try:
        info = strict_loads((path / STATE_FILE).read_bytes(), str(path / STATE_FILE), CheckpointError)
        model = load_safetensors(path / MODEL_FILE)
        best = load_safetensors(path / BEST_FILE)
        opt_tensors = load_safetensors(path / OPTIMIZER_FILE)
    except FileNotFoundError as e:  # MissingFileError (from load_safetensors) is one too
        raise CheckpointError(f"{path}: incomplete checkpoint ({e.filename or e} missing)") from None
    except (OSError, ValueError, CheckpointError) as e:
        raise CheckpointError(f"{path}: unreadable checkpoint ({e})") from None
    optimizer = _join_optimizer(opt_tensors, info.pop("optimizer"))
    epoch = int(info.pop("epoch"))
    scaler = info.pop("scaler", None)
    return TrainingState(epoch, model, best, optimizer, scaler, info)
