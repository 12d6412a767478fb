"""Cached artifacts that are executed or deserialized are used only if this user made them.

A compiled extractor package (``.pt2``: native code that ``aoti_load_package`` ``dlopen``s) in a
shared cache would run whatever anyone who can write there put in it.
So such a file is used only when (docs/security.md):

* its folder is private: created 0700, owned by this process's user, not group- or
  world-writable (:func:`private_dir`, else :class:`~cmagrounding.errors.CacheTrustError`);
* the file is owned by this user and not group- or world-writable;
* its sha256 equals the one recorded when this library wrote it, in ``manifest.json`` in that
  folder (:func:`record`; updated under a lock, written atomically).

:func:`trusted` says whether a cached file passes, warning (:class:`CacheTrustWarning`, naming the
file) when one is present but fails, so the caller rebuilds it or runs the fused path. On
systems without POSIX owners (Windows) only the checksum is checked.

Private: ``cmagrounding.video.runtime`` calls :func:`trusted`, :func:`private_dir`, :func:`record`.
"""

from __future__ import annotations

import os
import stat
import warnings
from pathlib import Path

from cmagrounding.errors import CacheTrustError, CacheTrustWarning

MANIFEST = "manifest.json"
_LOCK = ".manifest.lock"
_POSIX = os.name == "posix"


def _owner_problem(st: os.stat_result) -> str | None:
    if not _POSIX:
        return None
    if st.st_uid != os.geteuid():
        return f"owned by uid {st.st_uid}, not this user (uid {os.geteuid()})"
    if st.st_mode & (stat.S_IWGRP | stat.S_IWOTH):
        return f"writable by others (mode {stat.S_IMODE(st.st_mode):04o})"
    return None


def private_dir(folder: str | os.PathLike[str]) -> Path:
    """Create ``folder`` (mode 0700) if missing; raise :class:`CacheTrustError` unless it is this
    user's and not writable by group or others."""
    folder = Path(folder)
    folder.parent.mkdir(parents=True, exist_ok=True)
    try:
        folder.mkdir(mode=0o700)
    except FileExistsError:
        pass
    st = os.stat(folder)
    if not stat.S_ISDIR(st.st_mode):
        raise CacheTrustError(f"cache folder {str(folder)!r} is not a folder")
    problem = _owner_problem(st)
    if problem:
        raise CacheTrustError(f"cache folder {str(folder)!r} is {problem}: compiled or exported models are neither "
                              "loaded from it nor written into it (set CMAGROUNDING_CACHE to a folder of your own)")
    return folder


def _sha256(path: Path) -> str:
    from cmagrounding._io import file_sha256

    return file_sha256(path)


def _read_manifest(folder: Path) -> dict[str, str]:
    path = folder / MANIFEST
    try:
        st = os.stat(path)
    except FileNotFoundError:
        return {}
    if _owner_problem(st):
        raise CacheTrustError(f"{str(path)!r} is {_owner_problem(st)}")
    from cmagrounding._strict_json import read

    try:
        data = read(path, CacheTrustError, "cache manifest")
    except CacheTrustError:
        return {}  # unreadable or refused: every entry counts as unrecorded (files are rebuilt, then recorded)
    files = data.get("files") if isinstance(data, dict) else None
    return {k: v for k, v in files.items() if isinstance(k, str) and isinstance(v, str)} if isinstance(files, dict) else {}


def _locked(folder: Path):
    from cmagrounding._io import locked

    return locked(folder / _LOCK)


def record(path: str | os.PathLike[str]) -> str:
    """Record ``path``'s sha256 in its (private) folder's manifest; returns the checksum."""
    from cmagrounding._io import write_json_atomic

    path = Path(path)
    folder = private_dir(path.parent)
    with _locked(folder):
        files = _read_manifest(folder)
        files[path.name] = _sha256(path)
        write_json_atomic(folder / MANIFEST, {"files": dict(sorted(files.items()))}, indent=1)
        os.chmod(folder / MANIFEST, 0o600)
    return files[path.name]


def trusted(path: str | os.PathLike[str]) -> bool:
    """Whether the cached ``path`` may be loaded (module docstring); a present file that fails
    is reported by a :class:`CacheTrustWarning` naming it and why. An absent file is just False."""
    path = Path(path)
    if not path.exists():
        return False
    try:
        folder = private_dir(path.parent)
        problem = _owner_problem(os.stat(path))
        if problem is None:
            recorded = _read_manifest(folder).get(path.name)
            if recorded is None:
                problem = f"not recorded in {MANIFEST} (this library did not write it)"
            elif recorded != _sha256(path):
                problem = f"its sha256 differs from the one recorded in {MANIFEST} when it was written"
    except CacheTrustError as e:
        problem = str(e)
    except OSError as e:
        problem = f"unreadable ({e.strerror})"
    if problem is None:
        return True
    warnings.warn(f"not loading the cached file {str(path)!r}: {problem}; it is rebuilt, or the fused path runs",
                  CacheTrustWarning, stacklevel=2)
    return False
