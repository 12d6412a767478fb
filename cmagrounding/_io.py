"""File and tensor I/O shared by every part of the library: the one place each of these lives.

* atomic writes (:func:`atomic_path`, :func:`write_text_atomic`, :func:`write_json_atomic`,
  :func:`save_npy_atomic`): a temporary file beside the target, renamed into place with
  ``os.replace`` (atomic on POSIX and Windows), so a reader never sees half a file and an
  interrupted job leaves the old file, or none;
* safetensors (:func:`save_safetensors`, :func:`load_safetensors`, :func:`safetensors_shapes`):
  nothing is ever unpickled;
* checksums (:func:`file_sha256`, :func:`state_dict_sha256`);
* JSON Lines reading with ``file:line`` in every error (:func:`jsonl_rows`);
* the strict state-dict check (:func:`check_state_dict`, :func:`load_state_dict_strict`): missing,
  unexpected and mis-shaped tensors, one message format, always the specific error class.

Private: the public API re-exports what users need from the modules that own each job.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import tempfile
from pathlib import Path
from typing import Any, Iterator, Mapping, Sequence

import numpy as np

from cmagrounding.errors import CheckpointError, KeyMismatchError, MissingFileError, ShapeMismatchError, shorten_list

# BatchNorm's step counters are training state, not weights: missing from older files (pytorch-i3d)
# and left out of checksums and strict checks alike.
IGNORED_SUFFIXES = ("num_batches_tracked",)


# ---------------------------------------------------------------- atomic writes


def _read_umask() -> int:
    mask = os.umask(0o022)  # the only portable way to read it: set, then restore at once
    os.umask(mask)
    return mask


_UMASK = _read_umask()  # read once at import (changing it later, from a thread, would race)


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike[str]) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; on success it replaces ``path``, on error it is removed.

    The parent folder is created. The temporary name keeps ``path``'s suffix (numpy and safetensors
    writers look at it) and starts with a dot, so folder scans skip it.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.stem}.", suffix=f".tmp{path.suffix}")
    os.close(fd)
    tmp_path = Path(tmp)
    try:
        yield tmp_path
        if tmp_path.exists():  # mkstemp makes 0600; a written file gets the usual mode (0666 less umask)
            os.chmod(tmp_path, 0o666 & ~_UMASK)
        os.replace(tmp_path, path)
    finally:
        tmp_path.unlink(missing_ok=True)


def remove_stale_temporaries(folder: str | os.PathLike[str], older_than: float = 3600.0) -> list[Path]:
    """Delete the temporary files :func:`atomic_path` left in ``folder`` when a process was killed
    (``kill -9`` skips its cleanup), once they are ``older_than`` seconds old: a younger one may
    belong to a writer still running (e.g. another extraction shard). Returns what was removed."""
    import time

    removed = []
    cutoff = time.time() - older_than
    for path in Path(folder).glob(".*.tmp*"):
        try:
            if path.is_file() and ".tmp" in path.name and path.stat().st_mtime < cutoff:
                path.unlink()
                removed.append(path)
        except OSError:
            continue  # gone already, or not ours to delete
    return removed


def write_text_atomic(path: str | os.PathLike[str], text: str) -> None:
    """Write ``text`` (UTF-8) to ``path`` atomically."""
    with atomic_path(path) as tmp:
        tmp.write_text(text, encoding="utf-8")


def write_json_atomic(path: str | os.PathLike[str], data: Any, *, indent: int = 2, sort_keys: bool = False) -> None:
    """Write ``data`` as JSON (indented, one trailing newline) to ``path`` atomically; NaN and
    infinity are refused (``NonFiniteError``), never written as the non-JSON ``NaN``."""
    from cmagrounding._strict_json import dumps

    write_text_atomic(path, dumps(data, where=str(path), indent=indent, sort_keys=sort_keys) + "\n")


def save_npy_atomic(path: str | os.PathLike[str], array: Any) -> None:
    """Save ``array`` as ``.npy`` to ``path`` atomically (no pickled objects)."""
    with atomic_path(path) as tmp:
        with open(tmp, "wb") as f:
            np.save(f, np.asarray(array), allow_pickle=False)


@contextlib.contextmanager
def locked(path: str | os.PathLike[str]) -> Iterator[None]:
    """Hold an exclusive lock on the file ``path`` (created, mode 0600) for the block: processes
    that build the same cached file wait for each other (POSIX ``flock``; no lock elsewhere)."""
    if os.name != "posix":
        yield
        return
    import fcntl

    Path(path).parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(os.fspath(path), os.O_RDWR | os.O_CREAT, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)  # closing releases the lock


# ---------------------------------------------------------------- safetensors


def save_safetensors(
    path: str | os.PathLike[str], tensors: Mapping[str, Any], metadata: Mapping[str, str] | None = None
) -> None:
    """Save tensors (torch or numpy) to a safetensors file atomically.

    Each tensor is detached, moved to the CPU and cloned contiguous (safetensors refuses shared
    storage); ``metadata`` is stored as strings with ``format: pt``.
    """
    import torch
    from safetensors.torch import save

    clean = {
        k: (v if isinstance(v, torch.Tensor) else torch.from_numpy(np.asarray(v))).detach().to("cpu").clone().contiguous()
        for k, v in tensors.items()
    }
    # serialized here and written by us: safetensors' save_file writes through a temporary file of
    # its own (.tmpXXXXXX, sized before its header is written), which a kill -9 left behind unnamed
    data = save(clean, metadata={"format": "pt", **{k: str(v) for k, v in (metadata or {}).items()}})
    with atomic_path(path) as tmp:
        with open(tmp, "wb") as f:
            f.write(data)


def load_safetensors(path: str | os.PathLike[str]) -> dict[str, Any]:
    """All tensors of a safetensors file, on the CPU; a missing or corrupt file raises the specific error."""
    from safetensors.torch import load_file

    try:
        return load_file(os.fspath(path), device="cpu")
    except FileNotFoundError as e:
        raise MissingFileError(f"{str(path)!r} does not exist") from e
    except Exception as e:  # safetensors raises its own SafetensorError for a corrupt header
        raise CheckpointError(f"{str(path)!r} is not a readable safetensors file: {e}") from e


def safetensors_shapes(path: str | os.PathLike[str]) -> dict[str, tuple[int, ...]]:
    """Tensor names -> shapes of a safetensors file, read from its header (no tensor data loaded)."""
    from safetensors import safe_open

    try:
        with safe_open(os.fspath(path), framework="pt") as f:
            return {k: tuple(f.get_slice(k).get_shape()) for k in f.keys()}
    except FileNotFoundError as e:
        raise MissingFileError(f"{str(path)!r} does not exist") from e
    except Exception as e:
        raise CheckpointError(f"{str(path)!r} is not a readable safetensors file: {e}") from e


def safetensors_header(path: str | os.PathLike[str]) -> dict[str, tuple[str, tuple[int, ...]]]:
    """Tensor names -> (safetensors dtype such as ``"F32"``, shape), from the header alone."""
    from safetensors import safe_open

    try:
        with safe_open(os.fspath(path), framework="pt") as f:
            return {k: (str(s.get_dtype()), tuple(s.get_shape())) for k in f.keys() for s in (f.get_slice(k),)}
    except FileNotFoundError as e:
        raise MissingFileError(f"{str(path)!r} does not exist") from e
    except Exception as e:
        raise CheckpointError(f"{str(path)!r} is not a readable safetensors file: {e}") from e


def safetensors_metadata(path: str | os.PathLike[str]) -> dict[str, str]:
    """The string metadata of a safetensors file's header."""
    from safetensors import safe_open

    try:
        with safe_open(os.fspath(path), framework="pt") as f:
            return dict(f.metadata() or {})
    except FileNotFoundError as e:
        raise MissingFileError(f"{str(path)!r} does not exist") from e
    except Exception as e:
        raise CheckpointError(f"{str(path)!r} is not a readable safetensors file: {e}") from e


# ---------------------------------------------------------------- checksums


def file_sha256(path: str | os.PathLike[str], chunk: int = 1 << 20) -> str:
    """sha256 of a file's bytes."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(chunk):
            h.update(block)
    return h.hexdigest()


def state_dict_sha256(state_dict: Mapping[str, Any]) -> str:
    """Content checksum of a state dict (numpy arrays or torch tensors).

    sha256 over, for each tensor in sorted name order, ``name|dtype|shape|`` and its raw
    little-endian bytes; BatchNorm step counters are left out. Taken over tensors, not file bytes,
    so the same weights written by another safetensors version, or held in another memory layout,
    match.
    """
    h = hashlib.sha256()
    for name in sorted(state_dict):
        if name.endswith(IGNORED_SUFFIXES):
            continue
        value = state_dict[name]
        if hasattr(value, "detach"):
            import torch

            value = value.detach().cpu().contiguous()
            dtype = str(value.dtype).replace("torch.", "")
            raw = (value.view(dtype=torch.int16) if dtype == "bfloat16" else value).numpy().tobytes()
            shape = tuple(value.shape)
        else:
            arr = np.ascontiguousarray(value)
            dtype, raw, shape = str(arr.dtype), arr.astype(arr.dtype.newbyteorder("<")).tobytes(), arr.shape
        h.update(f"{name}|{dtype}|{shape}|".encode())
        h.update(raw)
    return h.hexdigest()


# ---------------------------------------------------------------- strict state-dict check


def _shape(value: Any) -> tuple[int, ...]:
    shape = getattr(value, "shape", value)
    return tuple(int(s) for s in shape)


def check_state_dict(
    expected: Mapping[str, Any],
    found: Mapping[str, Any],
    *,
    source: str,
    target: str = "the network its config.json describes",
    ignore_suffixes: Sequence[str] = IGNORED_SUFFIXES,
    limit: int = 10,
) -> None:
    """Compare tensor names and shapes; raise the error that says what differs.

    ``expected`` and ``found`` map tensor names to tensors or shapes. Missing or unexpected names
    raise :class:`KeyMismatchError` (both lists in one message, so a renamed tensor shows as its old
    and new name); same names with other shapes raise :class:`ShapeMismatchError` naming each
    tensor. Names ending in ``ignore_suffixes`` are not compared. Messages read
    ``"<source> does not match <target>: ..."``.
    """
    exp = {k: v for k, v in expected.items() if not k.endswith(tuple(ignore_suffixes))}
    got = {k: v for k, v in found.items() if not k.endswith(tuple(ignore_suffixes))}
    missing = sorted(set(exp) - set(got))
    unexpected = sorted(set(got) - set(exp))
    if missing or unexpected:
        parts = []
        if missing:
            parts.append(f"missing {len(missing)} tensor(s): {some(missing, limit)}")
        if unexpected:
            parts.append(f"unexpected {len(unexpected)} tensor(s): {some(unexpected, limit)}")
        raise KeyMismatchError(f"{source} does not match {target}: " + "; ".join(parts), missing=missing, unexpected=unexpected)
    wrong = [f"{k}: expected {_shape(exp[k])}, found {_shape(got[k])}" for k in exp if _shape(exp[k]) != _shape(got[k])]
    if wrong:
        raise ShapeMismatchError(f"{source} does not match {target}: {len(wrong)} tensor(s) of the wrong shape: {some(wrong, limit)}")


def load_state_dict_strict(module: Any, state_dict: Mapping[str, Any], *, source: str, target: str | None = None,
                           assign: bool = False) -> None:
    """:func:`check_state_dict` against ``module.state_dict()``, then load every tensor.

    BatchNorm step counters absent from the file keep the module's own value.
    """
    target = target or f"the {type(module).__name__} it is loaded into"
    check_state_dict(module.state_dict(), state_dict, source=source, target=target)
    module.load_state_dict(dict(state_dict), strict=False, assign=assign)


def some(items: Sequence[str], limit: int = 10) -> str:
    """``a, b, c, ... (n more)``: the first ``limit`` items of a list for a message
    (:func:`cmagrounding.errors.shorten_list`, the one quoting rule)."""
    return shorten_list(items, limit)


# ---------------------------------------------------------------- JSON Lines


def jsonl_rows(path: str | os.PathLike[str], error: type[Exception], what: str = "file") -> Iterator[tuple[str, Any]]:
    """``(where, value)`` for each non-blank line of a JSON Lines file, ``where`` being ``path:line``.

    The file is read line by line (never held whole). A missing file, text that is not UTF-8 or a
    line that is not JSON raises ``error`` (the caller's class, e.g. ``DatasetError``) naming the
    file, or the file and line; ``what`` names the file in the not-found message (``"annotation
    file"``). Valid JSON is still refused, by a :class:`~cmagrounding.errors.JSONLimitError`
    subclass naming the line, when an object repeats a key, an integer has more than
    :data:`cmagrounding._strict_json.MAX_INT_DIGITS` digits, or the nesting is too deep to decode
    (the hooks and limits of :mod:`cmagrounding._strict_json`; NaN and Infinity pass, for the caller
    to refuse by field). What a value must hold is the caller's.
    """
    from cmagrounding._strict_json import ROWS, Refused
    from cmagrounding.errors import JSONDuplicateKeyError, JSONNumberTooLargeError, JSONTooDeepError

    refused = {"duplicate": JSONDuplicateKeyError, "number": JSONNumberTooLargeError}

    path = Path(path)
    try:
        f = open(path, encoding="utf-8")
    except FileNotFoundError:
        raise error(f"{path}: {what} not found") from None
    with f:
        lineno = 0
        while True:
            try:
                line = f.readline()
            except UnicodeDecodeError as e:
                raise error(f"{path}:{lineno + 1}: not UTF-8 text ({e})") from None
            if not line:
                break
            lineno += 1
            if not line.strip():
                continue
            where = f"{path}:{lineno}"
            try:
                value = ROWS.decode(line)
            except Refused as e:
                raise refused[e.kind](f"{where}: {e}") from None
            except json.JSONDecodeError as e:
                raise error(f"{where}: not JSON ({e.msg} at column {e.colno})") from None
            except RecursionError:
                raise JSONTooDeepError(f"{where}: nested too deeply to read ({len(line)} characters)") from None
            yield where, value
